// svckit/varlink.hpp — svckit's own varlink server engine, with the dynamic (untyped JSON) handler API.
//
// A Server runs on an EventLoop and serves listening sockets (it accepts with acceptConnection and the
// socket's SocketSpec) and already-connected sockets (Accept=yes). Each interface is one table of methods; a
// handler gets a Call: the method name, the parameters as a JsonView, the flags, the caller's PeerIdentity
// (taken once per connection) and any fds passed with the call, and answers with
// reply()/replyContinues()/error(), each taking a function that writes the parameters' members with a
// JsonWriter. To answer later, a handler takes call.defer(); replies still go out strictly in call order.
// Behaviour follows sd-varlink, the reference (tests/integration/varlink_conformance.py compares the two, and
// docs/varlink-conformance.md lists where they differ): malformed messages close the connection after the
// replies to the calls before them, unknown interfaces and methods get MethodNotFound, a method that needs
// `more` gets ExpectedMore without it, org.varlink.service (GetInfo, GetInterfaceDescription) is built in. A
// method that supports `upgrade` can hand its connection over to another protocol after its reply.
//
// For a service's life cycle the server tells when it has had no connection for a while (setIdleCallback, for
// exit-on-idle), stops accepting on request (stopAccepting) and tells when every call has been answered
// (whenDrained), for a graceful stop.
//
// Typed bindings generated from .varlink files sit on top of this API. Everything here runs on the loop's
// thread.
#pragma once

#include <svckit/export.hpp>
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
inline constexpr std::string_view errorExpectedUpgrade = "org.varlink.service.ExpectedUpgrade";
inline constexpr std::string_view errorSystem = "io.systemd.System";

namespace detail {
class Connection;
enum class ReplyKind { Final, Continues, Error };
using WriteFn = void (*)(void* context, JsonWriter& writer);

template <typename F>
void invokeWriter(void* context, JsonWriter& writer) {
    (*static_cast<std::remove_reference_t<F>*>(context))(writer);
}
} // namespace detail

// A connection handed over by an upgrade (see Replies::upgrade): the socket (still non-blocking), the bytes
// the client sent after the upgrading call that the server had already read (the start of the new protocol's
// data; the rest is still in the socket), and the caller's identity. While `hold` lives, the server counts
// the connection as one of its own (Server::connectionCount(), the idle callback): keep it (or the whole
// struct) as long as the connection is served, or exit-on-idle and an Accept=yes instance stop under it.
struct UpgradedConnection {
    UniqueFd fd;
    std::string pending;
    PeerIdentity peer;
    std::shared_ptr<void> hold;
};
using UpgradeHandler = std::function<void(UpgradedConnection)>;

namespace detail {
// The reply functions of Call and DeferredCall, written once: each forwards to Derived::send() or
// sendUpgrade(). A reply whose writer writes no member has no "parameters" at all (as sd-varlink sends it).
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

    // The final reply to a call made with `upgrade` to a method that supports it, after which the connection
    // leaves varlink: once this reply and every reply before it have been written, `then` gets the socket
    // (from the loop, outside this call). Nothing after the call is read as varlink. EBADRQC for a call
    // without `upgrade`, or to a method without Method::supportsUpgrade. When the client goes away before the
    // reply is written, `then` is not called.
    template <typename F>
    requires std::invocable<F&, JsonWriter&> Result<void> upgrade(F&& write, UpgradeHandler then) {
        return self().sendUpgrade(&invokeWriter<F>, &write, std::move(then));
    }
    Result<void> upgrade(UpgradeHandler then) {
        return self().sendUpgrade(nullptr, nullptr, std::move(then));
    }

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};
} // namespace detail

struct CallFlags {
    bool oneway = false;  // no reply is wanted (replies are dropped)
    bool more = false;    // the caller accepts several replies (replyContinues)
    bool upgrade = false; // the caller asks to take the connection over to another protocol after the reply
};

class DeferredCall;

// One method call, valid while the handler runs. Reply functions return an Error (EALREADY) when the call has
// already been answered, EBADRQC for replyContinues() without `more`, EBUSY after defer(); ENOBUFS ("no
// room") when the reply would take the connection's unsent output past ServerOptions::outputHardLimit: the
// reply is dropped and the connection closed (counted in ServerCounters::overflowCloses), so every later
// reply gets ENOTCONN. A handler that streams checks writable() and waits for room (DeferredCall::
// whenWritable) rather than meet that limit.
class SVCKIT_EXPORT Call : public detail::Replies<Call> {
public:
    [[nodiscard]] std::string_view method() const noexcept { return method_; } // "iface.Method"
    [[nodiscard]] JsonView parameters() const noexcept { return parameters_; } // an object, or missing
    [[nodiscard]] const CallFlags& flags() const noexcept { return flags_; }
    [[nodiscard]] const PeerIdentity& peer() const noexcept { return *peer_; }
    // fds received with the call, when the socket and the method accept them; a handler may move them out.
    // Those left here are closed by svckit, off the loop thread, after the handler returns. One moved out is
    // the handler's: close it with closeAsync() (svckit/unique_fd.hpp), since a caller's fd can block
    // close().
    [[nodiscard]] std::span<UniqueFd> fds() noexcept { return fds_; }
    [[nodiscard]] bool answered() const noexcept { return finished_; }
    // Whether the connection has room for more replies: its unsent output is within
    // ServerOptions::outputSoftLimit. A streaming handler that finds none defers the call and goes on from
    // DeferredCall::whenWritable().
    [[nodiscard]] bool writable() const noexcept;

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
    Result<void> sendUpgrade(detail::WriteFn write, void* context, UpgradeHandler then);

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

// A call answered later. Move-only; replies to a connection that has gone are dropped (ENOTCONN is returned);
// the caller's hang-up closes the connection at once, even while nothing is being sent (connected() turns
// false). A reply past the output hard limit gets ENOBUFS as with Call. A writer that throws ends the call:
// io.systemd.System (the exception's errno, EIO by default) goes out in its place and the reply function
// returns that errno; the exception does not propagate.
class SVCKIT_EXPORT DeferredCall : public detail::Replies<DeferredCall> {
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
    // Whether the connection is open and has room for more replies (unsent output within
    // ServerOptions::outputSoftLimit).
    [[nodiscard]] bool writable() const noexcept;
    // Calls `then` once, from the loop, when the connection has room again (soon, if it has room now): how a
    // streaming handler waits for a peer that reads slowly instead of buffering without bound. If the
    // connection closes first, `then` is destroyed without being called (and whatever it owns with it). Does
    // nothing once the call has its final reply.
    void whenWritable(std::function<void()> then);

private:
    friend class Call;
    friend class detail::Replies<DeferredCall>;
    DeferredCall(std::weak_ptr<detail::Connection> connection, uint64_t id, CallFlags flags) noexcept
        : connection_(std::move(connection)), id_(id), flags_(flags) {}
    Result<void> send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write, void* context);
    Result<void> sendUpgrade(detail::WriteFn write, void* context, UpgradeHandler then);
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
    // A call with `upgrade` may be answered with upgrade(): after such a call nothing more is read from the
    // connection as varlink until the handler answers (a plain reply resumes varlink). Without this,
    // `upgrade` is ignored and the call is answered as any other (as sd-varlink does).
    bool supportsUpgrade = false;
    bool requiresUpgrade = false; // called without `upgrade`: org.varlink.service.ExpectedUpgrade
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

// There is no per-connection idle timeout, as in sd-varlink: a client may keep an idle connection (or a
// `more` call waiting for events) open as long as it likes; connection slots are bounded by the limits below.
struct ServerOptions {
    ServerInfo info{};
    // At most this many bytes are buffered without a NUL: a message is at most maxMessageSize - 1 bytes and
    // its NUL; longer input closes the connection (sd-varlink's 16 MiB input buffer).
    size_t maxMessageSize = 16 * 1024 * 1024;
    // At most this many bytes of input are held for incomplete messages on all connections together
    // (sd-varlink has no such budget: each connection may hold maxMessageSize). Past it, the connection that
    // holds the most is closed as for a protocol error (counted in ServerCounters::inputBudgetCloses); the
    // others are served on. Complete messages do not count: they are read into one buffer the server shares
    // and parsed there. Keep it at least maxMessageSize, or a message of the largest size cannot arrive.
    // 0: no budget.
    size_t maxInputBytesTotal = 64 * 1024 * 1024;
    size_t outputSoftLimit = 1024 * 1024;      // unsent replies above this: stop reading from that peer
    size_t outputHardLimit = 64 * 1024 * 1024; // a reply past this: refused (ENOBUFS), the connection closed
    // Calls read from one connection and not answered yet (waiting behind a deferred one, or deferred
    // themselves): at this many the server stops reading from that peer until some are answered (sd-varlink
    // reads no call while one is pending).
    size_t maxQueuedCalls = 1024;
    unsigned maxConnections = 4096;       // sd-varlink's default
    unsigned maxConnectionsPerUid = 1024; // sd-varlink's default; 0 = no limit
    AcceptedPolicy acceptedPolicy = AcceptedPolicy::Repair;
};

// At most this many fds are held for one call, and so per connection: the fds that arrive before a message's
// NUL wait for it, and a connection that passes more is closed (counted in ServerCounters::fdLimitCloses).
// The kernel passes at most SCM_MAX_FD (253) fds with one sendmsg(), and sd-varlink takes fds only with the
// first byte of a message, so no sd-varlink client passes more with one call (docs/security.md).
inline constexpr size_t maxFdsPerCall = 253;

struct ServerCounters {
    uint64_t connectionsAccepted = 0;
    uint64_t connectionsRefused = 0;  // over a connection limit, or no peer identity
    uint64_t connectionsClosed = 0;   // also those handed over by an upgrade
    uint64_t connectionsUpgraded = 0; // handed over to another protocol (Replies::upgrade)
    uint64_t calls = 0;
    uint64_t protocolErrors = 0;  // malformed or oversized messages (each closed its connection)
    uint64_t overflowCloses = 0;  // connections closed at outputHardLimit (a reply got ENOBUFS)
    uint64_t handlerFailures = 0; // exceptions thrown by handlers, and handlers that did not answer
    ConnectionCounters sockets;   // what acceptConnection and receiveMessage did
    uint64_t fdLimitCloses = 0;   // connections closed for passing more than maxFdsPerCall fds
    // Connections closed over maxInputBytesTotal (each the one holding the most incomplete input then).
    uint64_t inputBudgetCloses = 0;
    // A level, not a count: bytes held now for incomplete input, on all connections (what the budget limits).
    uint64_t inputBytesHeld = 0;
};

class ServerImpl;

class SVCKIT_EXPORT Server {
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

    // Stops accepting: removes the listening sockets from the loop and closes them (socket activation:
    // systemd keeps its copy and queues new clients for the next start; a socket of its own refuses them at
    // once); connections already accepted are still served.
    void stopAccepting() noexcept;
    // Calls `onIdle` each time the server has had no connection for `after` (the timer starts when the count
    // drops to zero, or now if it is zero, and stops when a connection arrives; a connection waiting in a
    // listening socket's queue postpones it). For exit-on-idle. An empty function removes the callback.
    [[nodiscard]] Result<void> setIdleCallback(std::chrono::microseconds after, std::function<void()> onIdle);
    // Calls `onDrained` once, when no call is in flight (every deferred call answered) and every reply has
    // been written: right away if that is so now, otherwise from the loop. For a graceful stop, after
    // stopAccepting(). Connections stay open; calls that arrive meanwhile are served and waited for too.
    void whenDrained(std::function<void()> onDrained);

    [[nodiscard]] const ServerCounters& counters() const noexcept;
    // Open connections, and upgraded ones whose UpgradedConnection::hold lives.
    [[nodiscard]] size_t connectionCount() const noexcept;
    // A client waits in the queue of a listening socket: about to be a connection (not idle).
    [[nodiscard]] bool connectionWaiting() const noexcept;
    // Calls deferred and not answered yet (on connections that are still open).
    [[nodiscard]] size_t callsInFlight() const noexcept;

private:
    explicit Server(std::unique_ptr<ServerImpl> impl) noexcept;
    std::unique_ptr<ServerImpl> impl_;
};

} // namespace svckit::varlink
