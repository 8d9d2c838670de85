// svckit/varlink.hpp — svckit's own varlink server engine, with the dynamic (untyped JSON) handler API.
//
// A Server runs on an EventLoop and serves listening sockets (it accepts with acceptConnection and the
// socket's SocketSpec) and already-connected sockets (Accept=yes). Each interface is one table of methods; a
// handler gets a Call: the method name, the parameters as a JsonView, the flags, the caller's PeerIdentity
// (taken once per connection) and any fds passed with the call, and answers with
// reply()/replyContinues()/error(), each taking a function that writes the parameters' members with a
// JsonWriter. To answer later, a handler takes call.defer(); replies still go out strictly in call order.
// Behaviour follows sd-varlink, the reference: malformed messages close the connection, unknown interfaces
// and methods get MethodNotFound, a method that needs `more` gets ExpectedMore without it,
// org.varlink.service (GetInfo, GetInterfaceDescription) is built in.
//
// Typed bindings generated from .varlink files sit on top of this API. Everything here runs on the loop's
// thread.
#pragma once

#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/identity.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink_json.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::varlink {

// Error names of org.varlink.service, and the one svckit uses for a handler that failed (as sd-varlink does
// for a method callback that returns -errno: io.systemd.System with {"errno": N, "errnoName": "EIO"}).
inline constexpr std::string_view errorInterfaceNotFound = "org.varlink.service.InterfaceNotFound";
inline constexpr std::string_view errorMethodNotFound = "org.varlink.service.MethodNotFound";
inline constexpr std::string_view errorMethodNotImplemented = "org.varlink.service.MethodNotImplemented";
inline constexpr std::string_view errorInvalidParameter = "org.varlink.service.InvalidParameter";
inline constexpr std::string_view errorPermissionDenied = "org.varlink.service.PermissionDenied";
inline constexpr std::string_view errorExpectedMore = "org.varlink.service.ExpectedMore";
inline constexpr std::string_view errorSystem = "io.systemd.System";

namespace detail {
class Connection;
enum class ReplyKind { Final, Continues, Error };
using WriteFn = void (*)(void* context, JsonWriter& writer);

template <typename F>
void invokeWriter(void* context, JsonWriter& writer) {
    (*static_cast<std::remove_reference_t<F>*>(context))(writer);
}

// The reply functions of Call and DeferredCall, written once: each forwards to Derived::send().
template <typename Derived>
class Replies {
public:
    // The final reply; `write` writes the members of the reply's parameters: `[&](JsonWriter& w) { ... }`.
    template <typename F>
    requires std::invocable<F&, JsonWriter&> Result<void> reply(F&& write) {
        return self().send(ReplyKind::Final, {}, &invokeWriter<F>, &write);
    }
    Result<void> reply() { return self().send(ReplyKind::Final, {}, nullptr, nullptr); }
    // A reply with "continues": true (only for calls with `more`).
    template <typename F>
    requires std::invocable<F&, JsonWriter&> Result<void> replyContinues(F&& write) {
        return self().send(ReplyKind::Continues, {}, &invokeWriter<F>, &write);
    }
    // The final reply as an error; `write` writes the members of the error's parameters.
    template <typename F>
    requires std::invocable<F&, JsonWriter&> Result<void> error(std::string_view name, F&& write) {
        return self().send(ReplyKind::Error, name, &invokeWriter<F>, &write);
    }
    Result<void> error(std::string_view name) {
        return self().send(ReplyKind::Error, name, nullptr, nullptr);
    }
    // InvalidParameter {"parameter": name}.
    Result<void> invalidParameter(std::string_view parameter);

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};
} // namespace detail

struct CallFlags {
    bool oneway = false;  // no reply is wanted (replies are dropped)
    bool more = false;    // the caller accepts several replies (replyContinues)
    bool upgrade = false; // the caller asks to upgrade the connection (not supported yet: only reported)
};

class DeferredCall;

// One method call, valid while the handler runs. Reply functions return an Error (EALREADY) when the call has
// already been answered, EBADRQC for replyContinues() without `more`, EBUSY after defer().
class Call : public detail::Replies<Call> {
public:
    [[nodiscard]] std::string_view method() const noexcept { return method_; } // "iface.Method"
    [[nodiscard]] JsonView parameters() const noexcept { return parameters_; } // an object, or missing
    [[nodiscard]] const CallFlags& flags() const noexcept { return flags_; }
    [[nodiscard]] const PeerIdentity& peer() const noexcept { return *peer_; }
    // fds received with the call, when the socket and the method accept them; a handler may move them out.
    [[nodiscard]] std::span<UniqueFd> fds() noexcept { return fds_; }
    [[nodiscard]] bool answered() const noexcept { return finished_; }

    // Takes over the answer: the returned handle replies later (from any callback of the same loop). The call
    // keeps its place in the connection's reply order until the handle sends a final reply or is destroyed
    // (then io.systemd.System with ECANCELED is sent). Parameters and fds are not kept: copy what is needed.
    [[nodiscard]] DeferredCall defer();

    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

private:
    friend class detail::Connection;
    friend class detail::Replies<Call>;
    Call(detail::Connection* connection, uint64_t id, std::string_view method, JsonView parameters,
         CallFlags flags, const PeerIdentity* peer, std::span<UniqueFd> fds) noexcept
        : connection_(connection), id_(id), method_(method), parameters_(parameters), flags_(flags),
          peer_(peer), fds_(fds) {}
    Result<void> send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write, void* context);

    detail::Connection* connection_;
    uint64_t id_;
    std::string_view method_;
    JsonView parameters_;
    CallFlags flags_;
    const PeerIdentity* peer_;
    std::span<UniqueFd> fds_;
    bool finished_ = false;
    bool deferred_ = false;
};

// A call answered later. Move-only; replies to a connection that has gone are dropped (ENOTCONN is returned).
class DeferredCall : public detail::Replies<DeferredCall> {
public:
    DeferredCall() = default;
    DeferredCall(DeferredCall&& other) noexcept;
    DeferredCall& operator=(DeferredCall&& other) noexcept;
    DeferredCall(const DeferredCall&) = delete;
    DeferredCall& operator=(const DeferredCall&) = delete;
    ~DeferredCall();

    [[nodiscard]] const CallFlags& flags() const noexcept { return flags_; }
    [[nodiscard]] bool answered() const noexcept { return finished_; }
    [[nodiscard]] bool connected() const noexcept;

private:
    friend class Call;
    friend class detail::Replies<DeferredCall>;
    DeferredCall(std::weak_ptr<detail::Connection> connection, uint64_t id, CallFlags flags) noexcept
        : connection_(std::move(connection)), id_(id), flags_(flags) {}
    Result<void> send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write, void* context);
    void abandon() noexcept;

    std::weak_ptr<detail::Connection> connection_;
    uint64_t id_ = 0;
    CallFlags flags_{};
    bool finished_ = true;
};

template <typename Derived>
Result<void> detail::Replies<Derived>::invalidParameter(std::string_view parameter) {
    return error(errorInvalidParameter, [&](JsonWriter& w) { w.field("parameter", parameter); });
}

// A handler. An exception it throws becomes io.systemd.System {"errno": EIO (or a std::system_error's
// errno)}; returning without replying and without defer() does too (EIO), so a caller never waits forever.
using Handler = std::function<void(Call&)>;

struct Method {
    std::string name; // "Echo"
    Handler handler;
    bool requiresMore = false; // called without `more`: org.varlink.service.ExpectedMore
    bool acceptsFds = false;   // fds passed with the call reach the handler (if the socket accepts fds)
};

struct Interface {
    std::string name;        // "io.example.Calc"
    std::string description; // the interface's .varlink text, served by GetInterfaceDescription
    std::vector<Method> methods;
};

struct ServerInfo {
    std::string vendor;
    std::string product;
    std::string version;
    std::string url;
};

struct ServerOptions {
    ServerInfo info{};
    size_t maxMessageSize = 16 * 1024 * 1024;  // a longer message closes the connection (sd-varlink: 16 MiB)
    size_t outputSoftLimit = 1024 * 1024;      // unsent replies above this: stop reading from that peer
    size_t outputHardLimit = 64 * 1024 * 1024; // unsent replies above this: close the connection
    unsigned maxConnections = 4096;            // sd-varlink's default
    unsigned maxConnectionsPerUid = 1024;      // sd-varlink's default; 0 = no limit
    AcceptedPolicy acceptedPolicy = AcceptedPolicy::Repair;
};

struct ServerCounters {
    uint64_t connectionsAccepted = 0;
    uint64_t connectionsRefused = 0; // over a connection limit, or no peer identity
    uint64_t connectionsClosed = 0;
    uint64_t calls = 0;
    uint64_t protocolErrors = 0;  // malformed or oversized messages (each closed its connection)
    uint64_t overflowCloses = 0;  // connections closed over outputHardLimit
    uint64_t handlerFailures = 0; // exceptions thrown by handlers, and handlers that did not answer
    ConnectionCounters sockets;   // what acceptConnection and receiveMessage did
};

class ServerImpl;

class Server {
public:
    [[nodiscard]] static Result<Server> create(EventLoop& loop, ServerOptions options = {});

    Server(Server&&) noexcept;
    Server& operator=(Server&&) noexcept;
    ~Server();

    // Registers an interface. EEXIST when one of that name exists; EINVAL for a bad interface or method name.
    [[nodiscard]] Result<void> addInterface(Interface interface);
    // Serves a listening socket: every connection is accepted with acceptConnection(fd, spec, ...).
    [[nodiscard]] Result<void> listen(UniqueFd listeningFd, SocketSpec spec);
    // Serves one already-connected socket (Accept=yes), checked with checkAcceptedSocket.
    [[nodiscard]] Result<void> serveConnection(UniqueFd connectedFd, SocketSpec spec);

    // Stops accepting connections on every listening socket (for a graceful stop); served connections go on.
    void stopAccepting() noexcept;
    // Calls still waiting for their final reply (deferred), plus connections with replies not yet sent.
    [[nodiscard]] size_t pendingCalls() const noexcept;

    [[nodiscard]] const ServerCounters& counters() const noexcept;
    [[nodiscard]] size_t connectionCount() const noexcept;

private:
    explicit Server(std::unique_ptr<ServerImpl> impl) noexcept;
    std::unique_ptr<ServerImpl> impl_;
};

} // namespace svckit::varlink
