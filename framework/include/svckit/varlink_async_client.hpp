// svckit/varlink_async_client.hpp — an asynchronous varlink client on the service's EventLoop: a handler can
// call another service and answer when the reply comes, while the loop goes on serving everyone else.
//
// An AsyncClient connects without blocking to "/path", "@abstract" or "unix:/path" and sends calls whose
// replies come to callbacks on the loop: call() (one reply), callMore() (a callback per reply, until one that
// does not continue), oneway() (no reply). Calls may be pipelined; the connection answers them in order, as
// varlink does. A callback gets Result<ReplyMessage>: a failed Result is a transport error (ETIMEDOUT, the
// server gone: ECONNRESET, a malformed reply: EBADMSG), a reply with error() is the method's error — as the
// blocking Client (svckit/varlink_client.hpp, kept for tools and tests) reports them.
//
// - Timeouts, per call (45 s by default, sd-varlink's): the call whose reply is late gets ETIMEDOUT, and,
// since
//   replies are ordered and a late one can no longer be matched, the connection is closed as sd-varlink does:
//   the other pending calls get ECONNABORTED. For a `more` call the timeout is for each next reply.
// - A disconnect fails every pending call with ECONNRESET; later calls fail at once with ENOTCONN.
// - Cancelling: destroying (or cancel() on) the PendingCall that call() returns drops its callback (a reply
//   still due is read and discarded); destroying the AsyncClient drops every callback and closes the socket.
// - Callbacks run on the loop and may call, cancel, or destroy the client; an exception escaping one is
//   caught and logged, never crossing into sd-event.
// - fds sent by the server are closed unless AsyncClientOptions::acceptFds asks for them (then they come with
//   the ReplyMessage). fds sent with a call (CallOptions::fds) are duplicated when the call is queued.
// Generated interfaces have a typed AsyncClient on top of this one (docs/varlink-codegen.md). Everything here
// runs on the loop's thread.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>
#include <svckit/varlink_client.hpp>
#include <svckit/varlink_json.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

namespace svckit::varlink {

// sd-varlink's default timeout of a call (SD_VARLINK_DEFAULT_TIMEOUT_USEC).
inline constexpr std::chrono::microseconds defaultCallTimeout = std::chrono::seconds(45);
// No timeout: a `more` call that waits for events as long as they take.
inline constexpr std::chrono::microseconds noTimeout = std::chrono::microseconds::max();

struct CallOptions {
    // How long to wait for the reply (for a `more` call: for each next reply).
    std::chrono::microseconds timeout = defaultCallTimeout;
    // Sent with the call as SCM_RIGHTS; duplicated (F_DUPFD_CLOEXEC) when the call is queued.
    std::span<const int> fds = {};
};

struct AsyncClientOptions {
    // Keep fds the server sends with a reply (ReplyMessage::fds); otherwise they are closed on receipt.
    bool acceptFds = false;
    // With acceptFds: the most fds one reply may bring; a server that sends more (also spread over the writes
    // of one unfinished reply) fails every call on the connection (EPROTO) and its fds are closed.
    size_t maxFdsPerReply = 16;
};

// Called with each reply: a failed Result for a transport error, otherwise the reply (which may be an error
// reply: ReplyMessage::error()).
using ReplyCallback = std::function<void(Result<ReplyMessage>)>;

namespace detail {
class AsyncConnection;
}

// A call waiting for its reply. Move-only; destroying it cancels the call (its callback is not called). A
// call whose last reply came, or that failed, is no longer pending.
class [[nodiscard]] SVCKIT_EXPORT PendingCall {
public:
    PendingCall() noexcept = default;
    PendingCall(PendingCall&& other) noexcept
        : connection_(std::move(other.connection_)), id_(std::exchange(other.id_, 0)) {}
    PendingCall& operator=(PendingCall&& other) noexcept {
        if (this != &other) {
            cancel();
            connection_ = std::move(other.connection_);
            id_ = std::exchange(other.id_, 0);
        }
        return *this;
    }
    PendingCall(const PendingCall&) = delete;
    PendingCall& operator=(const PendingCall&) = delete;
    ~PendingCall() { cancel(); }

    // Drops the callback; the reply, when it comes, is discarded.
    void cancel() noexcept;
    // Lets the call go on without this handle (its callback is still called).
    void detach() noexcept;
    // Whether a reply is still due to the callback.
    [[nodiscard]] bool pending() const noexcept;

private:
    friend class AsyncClient;
    PendingCall(std::weak_ptr<detail::AsyncConnection> connection, uint64_t id) noexcept
        : connection_(std::move(connection)), id_(id) {}
    std::weak_ptr<detail::AsyncConnection> connection_;
    uint64_t id_ = 0;
};

class SVCKIT_EXPORT AsyncClient {
public:
    // Starts connecting (non-blocking) to "/path", "@abstract" or "unix:/path", "unix:@abstract". Calls may
    // be made at once; they go out when the connection is up. ECONNREFUSED, ENOENT: nothing listens there;
    // EAGAIN: the server's listening queue is full.
    [[nodiscard]] static Result<AsyncClient> connect(EventLoop& loop, std::string_view address,
                                                     AsyncClientOptions options = {});
    // Uses an already-connected stream socket (made non-blocking).
    [[nodiscard]] static Result<AsyncClient> adopt(EventLoop& loop, UniqueFd connected,
                                                   AsyncClientOptions options = {});

    AsyncClient(AsyncClient&&) noexcept;
    AsyncClient& operator=(AsyncClient&&) noexcept;
    AsyncClient(const AsyncClient&) = delete;
    AsyncClient& operator=(const AsyncClient&) = delete;
    // Closes the connection; pending calls are cancelled (no callback).
    ~AsyncClient();

    // A call with one reply. The parameters' members are written by `write`, `[&](JsonWriter& w) {...}`
    // (straight into the output buffer), or given as a serialized JSON object (empty or null: none). EINVAL
    // for parameters that are not an object, ENOTCONN once the connection is closed.
    template <typename F>
    requires std::invocable<F&, JsonWriter&>
    [[nodiscard]] Result<PendingCall> call(std::string_view method, F&& write, ReplyCallback done,
                                           const CallOptions& options = {}) {
        return enqueue(method, &detail::invokeWriter<F>, &write, {}, CallFlags{}, std::move(done), options);
    }
    [[nodiscard]] Result<PendingCall> call(std::string_view method, std::string_view parametersJson,
                                           ReplyCallback done, const CallOptions& options = {});

    // A call with `more`: `each` gets every reply; the last is the one whose continues() is false (or an
    // error reply, or a transport error).
    template <typename F>
    requires std::invocable<F&, JsonWriter&>
    [[nodiscard]] Result<PendingCall> callMore(std::string_view method, F&& write, ReplyCallback each,
                                               const CallOptions& options = {}) {
        return enqueue(method, &detail::invokeWriter<F>, &write, {}, CallFlags{.more = true}, std::move(each),
                       options);
    }
    [[nodiscard]] Result<PendingCall> callMore(std::string_view method, std::string_view parametersJson,
                                               ReplyCallback each, const CallOptions& options = {});

    // A call with `oneway`: no reply. Queued; it fails only when it cannot be queued.
    template <typename F>
    requires std::invocable<F&, JsonWriter&>
    [[nodiscard]] Result<void> oneway(std::string_view method, F&& write, const CallOptions& options = {}) {
        auto queued =
            enqueue(method, &detail::invokeWriter<F>, &write, {}, CallFlags{.oneway = true}, {}, options);
        return queued ? Result<void>() : std::unexpected(queued.error());
    }
    [[nodiscard]] Result<void> oneway(std::string_view method, std::string_view parametersJson,
                                      const CallOptions& options = {});

    // Closes the connection now: pending calls get ECANCELED.
    void close();
    // Whether the connection is up or being set up (false once closed, by either side).
    [[nodiscard]] bool connected() const noexcept;
    // Calls waiting for a reply (cancelled ones whose reply is still due included).
    [[nodiscard]] size_t pendingCalls() const noexcept;

private:
    explicit AsyncClient(std::shared_ptr<detail::AsyncConnection> connection) noexcept;
    // write == nullptr: parametersJson is the parameters (checked).
    Result<PendingCall> enqueue(std::string_view method, detail::WriteFn write, void* context,
                                std::string_view parametersJson, CallFlags flags, ReplyCallback done,
                                const CallOptions& options);

    std::shared_ptr<detail::AsyncConnection> connection_;
};

} // namespace svckit::varlink
