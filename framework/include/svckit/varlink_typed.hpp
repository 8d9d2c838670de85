// svckit/varlink_typed.hpp — the runtime of the typed varlink bindings that tools/varlink-codegen generates
// from .varlink files (docs/varlink-codegen.md).
//
// A generated interface has a struct per type and per method input and output, an abstract Server whose
// handlers take their decoded input and a MethodContext and return a Reply, and a Client. This header holds
// what they share:
// - ErrorReply: a typed error reply (full error name + serialized parameters); generated error structs
//   convert to it, and back with `X::from(errorReply)`;
// - Reply<Out>: what a handler returns — its output, an error (`return calc::Overflow{};`), or `deferred`
//   after ctx.defer();
// - MethodContext<Out> and DeferredReply<Out>: the call as a handler sees it (peer, fds, `more`, further
//   replies, streaming that waits for room) and an answer given later;
// - MethodSettings: one method's settings (fds, `more`, a Policy); a generated interface's `Settings` struct
//   has one member per method, so a misspelt method does not compile;
// - codec: what decoding into the structs needs (its decoders are in svckit/varlink_codec.hpp, which only
//   generated sources include), and encoding with JsonWriter; the dispatch glue of generated servers and
//   clients.
// - AsyncReply<Out> and the callbacks of generated AsyncClients (a call, and a call with `more`).
// Everything runs on the engine's dynamic API (Call, DeferredCall, JsonWriter), the blocking Client and the
// AsyncClient.
#pragma once

#include <svckit/export.hpp>
#include <svckit/authorization.hpp>
#include <svckit/error.hpp>
#include <svckit/identity.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>
#include <svckit/varlink_async_client.hpp>
#include <svckit/varlink_client.hpp>
#include <svckit/varlink_json.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace svckit::varlink {

// A generated error struct: `static constexpr std::string_view errorName` and `writeMembers(JsonWriter&)`.
template <typename E>
concept ErrorType = requires(const E& error, JsonWriter& writer) {
    { E::errorName } -> std::convertible_to<std::string_view>;
    error.writeMembers(writer);
};

// A typed error reply: the full error name and its parameters as a serialized JSON object.
class SVCKIT_EXPORT ErrorReply {
public:
    // parametersJson must be a serialized JSON object; anything else is sent as {}.
    ErrorReply(std::string name, std::string parametersJson = "{}")
        : name_(std::move(name)), parametersJson_(std::move(parametersJson)) {}
    // Generated error structs convert implicitly: `return Overflow{};`.
    template <ErrorType E>
    ErrorReply(const E& error) : name_(E::errorName), parametersJson_() {
        JsonWriter w(parametersJson_);
        w.beginObject();
        error.writeMembers(w);
        w.endObject();
    }

    // org.varlink.service.InvalidParameter {"parameter": parameter}
    [[nodiscard]] static ErrorReply invalidParameter(std::string_view parameter);
    // org.varlink.service.PermissionDenied {}
    [[nodiscard]] static ErrorReply permissionDenied();
    // io.systemd.System {"origin": "linux", "errno": N, "errnoName": "EIO"}, as sd-varlink 262 sends for a
    // failing method.
    [[nodiscard]] static ErrorReply system(int errnoValue);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& parametersJson() const noexcept { return parametersJson_; }
    // Writes the members of the parameters object (into an object the caller opened).
    void writeMembers(JsonWriter& writer) const;

    bool operator==(const ErrorReply&) const = default;

private:
    std::string name_;
    std::string parametersJson_ = "{}";
};

// Returned by a handler that took ctx.defer() and answers later: `return svckit::varlink::deferred;`.
struct Deferred {};
inline constexpr Deferred deferred{};

// Passed to a generated client's method for a oneway call: `client.Echo(in, svckit::varlink::oneway)`.
struct Oneway {};
inline constexpr Oneway oneway{};

// Passed to a generated async client's method for a call with `more`:
// `client.Count(in, svckit::varlink::more, [](auto reply, bool continues) { ... })`.
struct More {};
inline constexpr More more{};

// What the callback of a generated AsyncClient's call gets: a failed Result for a transport error (ETIMEDOUT,
// ECONNRESET, ...), otherwise the method's output or its error reply (generated `X::from(error)` types it).
template <typename Out>
using AsyncReply = Result<std::expected<Out, ErrorReply>>;
template <typename Out>
using AsyncCallback = std::function<void(AsyncReply<Out>)>;
// A `more` call's callback: every reply, and whether more follow (false for the last one, an error reply or a
// transport error).
template <typename Out>
using AsyncMoreCallback = std::function<void(AsyncReply<Out>, bool continues)>;

// What a typed handler returns: its output, an error, or `deferred`. The generated header names it per method
// (`calc::ApplyReply` for Reply<calc::ApplyOut>). A handler returns an error as a value, the one way to do
// so:
//   return calc::DivisionByZero{};                      an error of the interface (a generated error struct)
//   return ErrorReply::invalidParameter("n");          one of org.varlink.service, or io.systemd.System
// A std::expected<Out, E> (E an error struct or ErrorReply) converts too, to pass on what a helper returned.
template <typename Out>
class Reply {
public:
    Reply(Out out) : value_(std::in_place_index<0>, std::move(out)) {}
    Reply(ErrorReply error) : value_(std::in_place_index<1>, std::move(error)) {}
    template <ErrorType E>
    Reply(const E& error) : value_(std::in_place_index<1>, ErrorReply(error)) {}
    template <typename E>
    requires std::constructible_from<ErrorReply, E> Reply(std::expected<Out, E> result)
        : value_(result ? Value(std::in_place_index<0>, std::move(*result))
                        : Value(std::in_place_index<1>, ErrorReply(std::move(result).error()))) {}
    Reply(Deferred) : value_(std::in_place_index<2>) {}

    [[nodiscard]] Out* out() noexcept { return std::get_if<0>(&value_); }
    [[nodiscard]] const Out* out() const noexcept { return std::get_if<0>(&value_); }
    [[nodiscard]] const ErrorReply* error() const noexcept { return std::get_if<1>(&value_); }
    [[nodiscard]] bool isDeferred() const noexcept { return value_.index() == 2; }

private:
    using Value = std::variant<Out, ErrorReply, Deferred>;
    Value value_;
};

// A call answered later, typed. Move-only; destroyed unanswered, the caller gets io.systemd.System ECANCELED.
// Replies to a connection that has gone return ENOTCONN.
template <typename Out>
class DeferredReply {
public:
    DeferredReply() = default;
    explicit DeferredReply(DeferredCall call) noexcept : call_(std::move(call)) {}

    // A reply with "continues": true (only when the call has `more`: EBADRQC otherwise). When it fails the
    // stream is over (ENOTCONN: the caller has gone): stop producing, and drop this handle.
    [[nodiscard]] Result<void> send(const Out& out) {
        return call_.replyContinues([&](JsonWriter& w) { out.writeMembers(w); });
    }
    // The final reply.
    Result<void> reply(const Out& out) {
        return call_.reply([&](JsonWriter& w) { out.writeMembers(w); });
    }
    Result<void> error(const ErrorReply& error) {
        return call_.error(error.name(), [&](JsonWriter& w) { error.writeMembers(w); });
    }
    [[nodiscard]] bool connected() const noexcept { return call_.connected(); }
    [[nodiscard]] bool answered() const noexcept { return call_.answered(); }
    [[nodiscard]] const CallFlags& flags() const noexcept { return call_.flags(); }
    [[nodiscard]] bool more() const noexcept { return call_.flags().more; }
    // Whether the connection has room for another reply (DeferredCall::writable).
    [[nodiscard]] bool writable() const noexcept { return call_.writable(); }
    // Calls `then` once, from the loop, when there is room again; dropped uncalled if the caller goes away
    // (DeferredCall::whenWritable).
    void whenWritable(std::function<void()> then) { call_.whenWritable(std::move(then)); }

private:
    DeferredCall call_;
};

// What MethodContext::stream() takes: fills the next reply and returns whether more follow (false: this one
// is the last, sent as the final reply).
template <typename Next, typename Out>
concept StreamProducer = std::move_constructible<Next> && requires(Next& next, Out& out) {
    { next(out) } -> std::same_as<bool>;
};

namespace detail {
template <typename Out, typename Next>
void resumeStream(DeferredReply<Out> reply, Next next);
} // namespace detail

// The call as a typed handler sees it, valid while the handler runs. The generated header names it per method
// (`calc::FibonacciContext` for MethodContext<calc::FibonacciOut>).
template <typename Out>
class MethodContext {
public:
    explicit MethodContext(Call& call) noexcept : call_(call) {}
    MethodContext(const MethodContext&) = delete;
    MethodContext& operator=(const MethodContext&) = delete;

    [[nodiscard]] const PeerIdentity& peer() const noexcept { return call_.peer(); }
    // The fd passed with the call at `index` (as the IDL's parameters number them), borrowed for as long as
    // the handler runs (dup() it to keep it); nullopt when the call carried no fd there. Fds reach only
    // methods that accept them (MethodSettings::acceptFds), on sockets that accept them.
    [[nodiscard]] std::optional<int> fd(int64_t index) const noexcept {
        auto all = call_.fds();
        if (index < 0 || static_cast<uint64_t>(index) >= all.size() || !all[static_cast<size_t>(index)])
            return std::nullopt;
        return all[static_cast<size_t>(index)].get();
    }
    // Every fd passed with the call; a handler may move them out.
    [[nodiscard]] std::span<UniqueFd> fds() noexcept { return call_.fds(); }
    [[nodiscard]] const CallFlags& flags() const noexcept { return call_.flags(); }
    [[nodiscard]] bool more() const noexcept { return call_.flags().more; }

    // A further reply with "continues": true. Fails with EBADRQC when the call was made without `more`, and
    // ENOTCONN when the caller has gone; either way the stream is over: return (an error reply, which goes
    // nowhere if the caller has gone). A handler that streams more than a few replies uses stream() instead,
    // which also waits for a caller that reads slowly.
    [[nodiscard]] Result<void> send(const Out& out) {
        return call_.replyContinues([&](JsonWriter& w) { out.writeMembers(w); });
    }
    // Whether the connection has room for another reply (Call::writable): a streaming handler that finds none
    // defers the call and goes on from DeferredReply::whenWritable(). stream() does that.
    [[nodiscard]] bool writable() const noexcept { return call_.writable(); }
    // Streams the replies `next` produces: `next(out)` fills the next one and returns whether more follow.
    // Replies go out while the connection has room; when it has none (the caller reads slowly) the call is
    // deferred and `next` is called again when there is room, so the output buffer stays bounded. If the
    // caller goes away, `next` is dropped. Returns what the handler returns: `return ctx.stream(...)`.
    template <StreamProducer<Out> Next>
    [[nodiscard]] Reply<Out> stream(Next next) {
        for (;;) {
            if (!call_.writable()) {
                detail::resumeStream(defer(), std::move(next));
                return deferred;
            }
            Out out{};
            if (!next(out))
                return out;
            if (auto sent = send(out); !sent)
                return ErrorReply::system(sent.error().code());
        }
    }
    // Takes over the answer; the handler then returns svckit::varlink::deferred.
    [[nodiscard]] DeferredReply<Out> defer() { return DeferredReply<Out>(call_.defer()); }
    // The underlying dynamic call.
    [[nodiscard]] Call& call() noexcept { return call_; }

private:
    Call& call_;
};

namespace detail {
// The deferred part of MethodContext::stream(): sends while there is room, then waits for more.
template <typename Out, typename Next>
class Stream : public std::enable_shared_from_this<Stream<Out, Next>> {
public:
    Stream(DeferredReply<Out> reply, Next next) : reply_(std::move(reply)), next_(std::move(next)) {}

    void resume() {
        while (reply_.writable()) {
            Out out{};
            if (!next_(out)) {
                (void)reply_.reply(out);
                return;
            }
            if (auto sent = reply_.send(out); !sent)
                return; // the caller has gone: nobody to answer
        }
        // No room (or no connection: then whenWritable drops the callback, and this stream with it).
        reply_.whenWritable([self = this->shared_from_this()] { self->resume(); });
    }

private:
    DeferredReply<Out> reply_;
    Next next_;
};

template <typename Out, typename Next>
void resumeStream(DeferredReply<Out> reply, Next next) {
    std::make_shared<Stream<Out, Next>>(std::move(reply), std::move(next))->resume();
}
} // namespace detail

// The settings of one method of a generated interface. A generated interface has a `Settings` struct with one
// such member per method, in IDL order, which its Server's interface() takes; a misspelt method is a compile
// error (examples/calc, examples/identity):
//   addVarlink(interface({.SumFile = {.acceptFds = true}}));
//   addVarlink(interface({.Stats = {.policy = svckit::Policy::rootOnly()}}));
struct MethodSettings {
    // Calls may carry fds; they reach the handler as ctx.fds() (the socket must accept fds too).
    bool acceptFds = false;
    // Only calls with `more` are answered; others get org.varlink.service.ExpectedMore. A method whose doc
    // comment in the .varlink file has the line `[Requires 'more' flag]` (systemd's marker) requires `more`
    // whatever this says; prefer the marker, which `varlinkctl introspect` shows too.
    bool requireMore = false;
    // Callers the policy refuses get org.varlink.service.PermissionDenied and the handler does not run.
    std::optional<Policy> policy{};
};

// Decoding and encoding of generated types. Decoders (svckit/varlink_codec.hpp) read parsed values straight
// into C++ values and validate as sd-varlink does before a method handler runs (varlink-idl.c, then
// sd_json_dispatch): first every field in IDL order (missing or null when required, wrong type), then unknown
// keys in document order, then what only dispatching finds, in document order (a duplicate key, an int that
// passed the type check but does not fit int64 or a string that is no int). Generated code calls these; users
// do not.
namespace codec {

// How a value decoded. Late: the value has the right JSON type but cannot be converted — sd-varlink finds
// that after the unknown-key check, so it is reported after it.
enum class Status : uint8_t { Ok, Late, Invalid };

// Server input is strict; client-side replies tolerate unknown keys (a newer server may add fields).
enum class Mode : uint8_t { Strict, Lenient };

struct FieldInfo {
    std::string_view name; // wire name
    bool required;         // not ?T
};

// Tracks one object's fields while its members are read.
template <size_t N>
class ObjectDecoder {
public:
    explicit ObjectDecoder(Mode mode) noexcept : mode_(mode) {}

    // Whether this is the first occurrence of field k (a later one is a duplicate key).
    bool first(size_t k, std::string_view key) noexcept {
        if (seen_[k]) {
            late(key);
            return false;
        }
        seen_[k] = true;
        return true;
    }
    void set(size_t k, std::string_view key, Status status) noexcept {
        status_[k] = status;
        if (status == Status::Late)
            late(key);
    }
    void unknown(std::string_view key) noexcept {
        if (mode_ == Mode::Strict && !hasUnknown_) {
            hasUnknown_ = true;
            unknown_ = key;
        }
    }
    // The verdict, and the field to name in InvalidParameter.
    Status finish(const std::array<FieldInfo, N>& fields, std::string_view* bad) noexcept {
        for (size_t k = 0; k < N; ++k)
            if (status_[k] == Status::Invalid || (!seen_[k] && fields[k].required)) {
                if (bad)
                    *bad = fields[k].name;
                return Status::Invalid;
            }
        if (hasUnknown_) {
            if (bad)
                *bad = unknown_;
            return Status::Invalid;
        }
        if (hasLate_) {
            if (bad)
                *bad = late_;
            return Status::Late;
        }
        return Status::Ok;
    }

private:
    void late(std::string_view key) noexcept {
        if (!hasLate_) {
            hasLate_ = true;
            late_ = key;
        }
    }

    std::array<bool, N> seen_{};
    std::array<Status, N> status_{};
    std::string_view unknown_;
    std::string_view late_;
    bool hasUnknown_ = false;
    bool hasLate_ = false;
    Mode mode_;
};

// A generated struct: `static Status decode(const JsonNode* object, T& out, Mode, std::string_view* bad)`
// (object may be null: no members) and `void writeMembers(JsonWriter&) const`.
template <typename T>
concept Struct = requires(const JsonNode* v, T& out, const T& in, JsonWriter& w, std::string_view* bad) {
    { T::decode(v, out, Mode::Strict, bad) } -> std::same_as<Status>;
    in.writeMembers(w);
};
// A generated enum: `toString(E)` and `fromString(std::string_view, E&)`, found by argument-dependent lookup.
template <typename E>
concept Enum = std::is_enum_v<E> && requires(E e, std::string_view text) {
    { toString(e) } -> std::convertible_to<std::string_view>;
    { fromString(text, e) } -> std::same_as<bool>;
};

// Decodes a call's parameters (a missing view: no parameters, as absent and null are). On failure, *bad is
// the top-level field to name in InvalidParameter. Defined with the decoders in svckit/varlink_codec.hpp,
// which generated sources include: the templates below that decode are instantiated there.
template <Struct T>
[[nodiscard]] Status decodeParameters(JsonView parameters, T& out, Mode mode, std::string_view* bad);

inline void encode(JsonWriter& w, int64_t value) {
    w.value(value);
}
inline void encode(JsonWriter& w, double value) {
    w.value(value);
}
inline void encode(JsonWriter& w, bool value) {
    w.value(value);
}
inline void encode(JsonWriter& w, const std::string& value) {
    w.value(std::string_view(value));
}
inline void encode(JsonWriter& w, const JsonValue& value) {
    w.value(value);
}
template <Struct T>
void encode(JsonWriter& w, const T& value);
template <Enum E>
void encode(JsonWriter& w, E value);
template <typename T>
void encode(JsonWriter& w, const std::optional<T>& value);
template <typename T>
void encode(JsonWriter& w, const std::vector<T>& value);
template <typename T>
void encode(JsonWriter& w, const std::map<std::string, T, std::less<>>& value);

template <Struct T>
void encode(JsonWriter& w, const T& value) {
    w.beginObject();
    value.writeMembers(w);
    w.endObject();
}
template <Enum E>
void encode(JsonWriter& w, E value) {
    w.value(toString(value));
}
template <typename T>
void encode(JsonWriter& w, const std::optional<T>& value) {
    if (value)
        encode(w, *value);
    else
        w.null();
}
template <typename T>
void encode(JsonWriter& w, const std::vector<T>& value) {
    w.beginArray();
    for (const T& element : value)
        encode(w, element);
    w.endArray();
}
template <typename T>
void encode(JsonWriter& w, const std::map<std::string, T, std::less<>>& value) {
    w.beginObject();
    for (const auto& [key, element] : value) {
        w.key(key);
        encode(w, element);
    }
    w.endObject();
}

} // namespace codec

// Reads an error struct back from an ErrorReply (generated `X::from()`): nullopt when the name differs or the
// parameters do not decode.
template <typename E>
requires ErrorType<E> && codec::Struct<E>
[[nodiscard]] std::optional<E> decodeError(const ErrorReply& error) {
    if (error.name() != E::errorName)
        return std::nullopt;
    auto document = JsonDocument::parse(error.parametersJson());
    if (!document)
        return std::nullopt;
    E out{};
    std::string_view bad;
    if (codec::decodeParameters(document->root(), out, codec::Mode::Lenient, &bad) != codec::Status::Ok)
        return std::nullopt;
    return out;
}

namespace detail {

// Answers a call from what its typed handler returned.
template <typename Out>
void answer(Call& call, const Reply<Out>& reply) {
    if (const Out* out = reply.out())
        (void)call.reply([&](JsonWriter& w) { out->writeMembers(w); });
    else if (const ErrorReply* error = reply.error())
        (void)call.error(error->name(), [&](JsonWriter& w) { error->writeMembers(w); });
    // deferred: the handler holds a DeferredReply (if it took none, the engine answers with EIO).
}

// The dispatch of a generated Server's method: decode, call the handler, answer. No allocation beyond the
// decoded members themselves.
template <typename In, typename Out, typename Self>
void dispatch(Call& call, Self& self, Reply<Out> (Self::*handler)(In, MethodContext<Out>&)) {
    In in{};
    std::string_view bad;
    if (codec::decodeParameters(call.parameters(), in, codec::Mode::Strict, &bad) != codec::Status::Ok) {
        (void)call.invalidParameter(bad);
        return;
    }
    MethodContext<Out> context(call);
    answer(call, (self.*handler)(std::move(in), context));
}

// A generated Server's method (its name, handler and the flags its IDL gives) with its settings applied.
[[nodiscard]] SVCKIT_EXPORT Method method(Method generated, const MethodSettings& settings);

// The output of a reply that is no error; EBADMSG when its parameters do not decode.
template <typename Out>
Result<Out> decodeReply(const ReplyMessage& reply, std::string_view method) {
    Out out{};
    std::string_view bad;
    if (codec::decodeParameters(reply.parameters(), out, codec::Mode::Lenient, &bad) != codec::Status::Ok)
        return fail(EBADMSG, "The reply to {} has an invalid parameter '{}'", method, bad);
    return out;
}

// The ErrorReply of an error reply.
SVCKIT_EXPORT ErrorReply errorOf(const ReplyMessage& reply);

template <typename Out, typename In>
Result<std::expected<Out, ErrorReply>> call(Client& client, std::string_view method, const In& in,
                                            std::span<const int> fds) {
    auto sent = client.send(
        method, [&](JsonWriter& w) { in.writeMembers(w); }, CallFlags{}, fds);
    if (!sent)
        return std::unexpected(sent.error());
    auto reply = client.receive();
    if (!reply)
        return std::unexpected(reply.error());
    if (reply->error())
        return std::expected<Out, ErrorReply>(std::unexpect, errorOf(*reply));
    if (reply->continues())
        return fail(EBADMSG, "The reply to {} continues although the call did not ask for more", method);
    auto out = decodeReply<Out>(*reply, method);
    if (!out)
        return std::unexpected(out.error());
    return std::expected<Out, ErrorReply>(std::move(*out));
}

template <typename In>
Result<void> callOneway(Client& client, std::string_view method, const In& in, std::span<const int> fds) {
    return client.send(
        method, [&](JsonWriter& w) { in.writeMembers(w); }, CallFlags{.oneway = true}, fds);
}

template <typename Out, typename In>
Result<std::expected<void, ErrorReply>> callMore(Client& client, std::string_view method, const In& in,
                                                 const std::function<void(Out&&)>& each,
                                                 std::span<const int> fds) {
    auto sent = client.send(
        method, [&](JsonWriter& w) { in.writeMembers(w); }, CallFlags{.more = true}, fds);
    if (!sent)
        return std::unexpected(sent.error());
    for (;;) {
        auto reply = client.receive();
        if (!reply)
            return std::unexpected(reply.error());
        if (reply->error())
            return std::expected<void, ErrorReply>(std::unexpect, errorOf(*reply));
        auto out = decodeReply<Out>(*reply, method);
        if (!out)
            return std::unexpected(out.error());
        bool continues = reply->continues();
        if (each)
            each(std::move(*out));
        if (!continues)
            return {};
    }
}

// A reply as a generated AsyncClient's callback gets it.
template <typename Out>
AsyncReply<Out> asyncReply(Result<ReplyMessage>& reply, std::string_view method) {
    if (!reply)
        return std::unexpected(std::move(reply).error());
    if (reply->error())
        return std::expected<Out, ErrorReply>(std::unexpect, errorOf(*reply));
    auto out = decodeReply<Out>(*reply, method);
    if (!out)
        return std::unexpected(out.error());
    return std::expected<Out, ErrorReply>(std::move(*out));
}

// `method` is the generated code's string literal: it outlives the call.
template <typename Out, typename In>
Result<PendingCall> asyncCall(AsyncClient& client, std::string_view method, const In& in,
                              AsyncCallback<Out> done, const CallOptions& options) {
    return client.call(
        method, [&](JsonWriter& w) { in.writeMembers(w); },
        [done = std::move(done), method](Result<ReplyMessage> reply) {
            if (done)
                done(asyncReply<Out>(reply, method));
        },
        options);
}

template <typename In>
Result<void> asyncOneway(AsyncClient& client, std::string_view method, const In& in,
                         const CallOptions& options) {
    return client.oneway(
        method, [&](JsonWriter& w) { in.writeMembers(w); }, options);
}

template <typename Out, typename In>
Result<PendingCall> asyncCallMore(AsyncClient& client, std::string_view method, const In& in,
                                  AsyncMoreCallback<Out> each, const CallOptions& options) {
    return client.callMore(
        method, [&](JsonWriter& w) { in.writeMembers(w); },
        [each = std::move(each), method](Result<ReplyMessage> reply) {
            bool continues = reply && !reply->error() && reply->continues();
            if (each)
                each(asyncReply<Out>(reply, method), continues);
        },
        options);
}

} // namespace detail
} // namespace svckit::varlink
