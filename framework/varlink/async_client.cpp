#include <svckit/varlink_async_client.hpp>

#include <svckit/log.hpp>
#include <svckit/message.hpp>

#include "varlink/framing.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <format>
#include <utility>

namespace svckit::varlink {
namespace detail {

// The state of one connection, shared with the PendingCall handles (weakly) so that a handle outliving its
// client is harmless. Replies are matched to calls by order: the front of `pending_` gets the next reply.
class AsyncConnection : public std::enable_shared_from_this<AsyncConnection> {
public:
    AsyncConnection(EventLoop& loop, UniqueFd fd, AsyncClientOptions options, bool connecting)
        : loop_(loop), fd_(std::move(fd)), options_(options), connecting_(connecting) {}

    Result<void> start() {
        auto io = loop_.addIo(fd_.get(), EPOLLIN | (connecting_ ? EPOLLOUT : 0u),
                              [this](uint32_t revents) { onIo(revents); });
        if (!io)
            return std::unexpected(io.error());
        io_ = std::move(*io);
        auto flush = loop_.addDefer([this] { onFlush(); });
        if (!flush)
            return std::unexpected(flush.error());
        flush_ = std::move(*flush);
        auto timer = loop_.addTimer(std::chrono::microseconds(0), [this] { onTimer(); });
        if (!timer)
            return std::unexpected(timer.error());
        timer_ = std::move(*timer);
        (void)timer_.setEnabled(false);
        return {};
    }

    Result<uint64_t> enqueue(std::string_view method, WriteFn write, void* context, std::string_view json,
                             CallFlags flags, ReplyCallback done, const CallOptions& options) {
        if (!fd_)
            return fail(ENOTCONN, "The varlink connection is closed: cannot call {}", method);
        bool present = true;
        if (!write)
            if (auto ok = checkParametersJson(method, json, &present); !ok)
                return std::unexpected(ok.error());
        if (options.fds.size() > maxFdsPerMessage)
            return fail(EINVAL, "At most {} fds can be passed with one call", maxFdsPerMessage);
        std::vector<UniqueFd> fds;
        fds.reserve(options.fds.size());
        for (int fd : options.fds) {
            UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
            if (!copy)
                return failErrno("Failed to duplicate fd {} to send with {}", fd, method);
            fds.push_back(std::move(copy));
        }
        size_t start = out_.size();
        if (auto ok = beginCall(out_, method, flags); !ok) {
            out_.resize(start);
            return std::unexpected(ok.error());
        }
        if (write) {
            out_.append(",\"parameters\":{");
            JsonWriter w(out_);
            write(context, w);
            out_.push_back('}');
        } else if (present) {
            out_.append(",\"parameters\":");
            out_.append(json);
        }
        endCall(out_, flags);
        if (!fds.empty())
            attachments_.push_back(Attachment{.offset = start, .fds = std::move(fds)});
        (void)flush_.enableOnce(); // every call queued in this iteration goes out with one send

        if (flags.oneway)
            return uint64_t{0};
        uint64_t id = nextId_++;
        pending_.push_back(Pending{.id = id,
                                   .callback = std::move(done),
                                   .deadline = deadlineAfter(options.timeout),
                                   .timeout = options.timeout,
                                   .more = flags.more,
                                   .cancelled = false});
        armTimer(pending_.back().deadline);
        return id;
    }

    void cancel(uint64_t id) noexcept {
        if (Pending* p = find(id)) {
            p->cancelled = true;
            p->callback = nullptr; // not while it runs: dispatch moves it out first
        }
    }
    bool isPending(uint64_t id) const noexcept {
        const Pending* p = const_cast<AsyncConnection*>(this)->find(id);
        return p && !p->cancelled;
    }
    // The client was destroyed: nothing more is called.
    void abandon() noexcept {
        pending_.clear();
        shutDown();
    }
    void close(int code, std::string_view why) { failAll(code, why); }
    bool connected() const noexcept { return bool(fd_); }
    size_t pendingCalls() const noexcept { return pending_.size(); }

private:
    struct Pending {
        uint64_t id;
        ReplyCallback callback;
        std::chrono::microseconds deadline; // CLOCK_MONOTONIC; max: none
        std::chrono::microseconds timeout;
        bool more;
        bool cancelled;
    };
    // fds to send with the message that starts at `offset` of out_.
    struct Attachment {
        size_t offset;
        std::vector<UniqueFd> fds;
    };

    Pending* find(uint64_t id) noexcept {
        // Ids grow by one per call and only the front is ever removed: the index is the difference.
        if (id == 0 || pending_.empty() || id < pending_.front().id)
            return nullptr;
        size_t index = id - pending_.front().id;
        return index < pending_.size() ? &pending_[index] : nullptr;
    }

    // Deadlines are read from the clock itself, not from the loop's time of its last wake-up: a call may be
    // made long after it (from outside the loop, say).
    static std::chrono::microseconds now() noexcept {
        return std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now().time_since_epoch());
    }
    static std::chrono::microseconds deadlineAfter(std::chrono::microseconds timeout) noexcept {
        if (timeout == noTimeout)
            return noTimeout;
        return now() + timeout;
    }
    // The timer fires at the earliest deadline it was given; when it fires it looks at every call (one that
    // set it may have been answered since) and re-arms for the earliest left.
    void armTimer(std::chrono::microseconds deadline) {
        if (deadline == noTimeout || (timerArmed_ && deadline >= timerAt_))
            return;
        timerAt_ = deadline;
        timerArmed_ = true;
        // Relative to the loop's cached time, which is not later than now(): if anything it fires early, and
        // onTimer() arms it again.
        auto left = deadline - now();
        (void)timer_.rearmTimer(std::max(left, std::chrono::microseconds(1)));
    }

    void onTimer() {
        auto keep = shared_from_this();
        timerArmed_ = false;
        auto time = now();
        std::chrono::microseconds earliest = noTimeout;
        bool expired = false;
        for (const Pending& p : pending_) {
            if (p.deadline <= time)
                expired = true;
            earliest = std::min(earliest, p.deadline);
        }
        if (expired) {
            // A reply that comes after its call gave up could be taken for the next call's: the connection
            // cannot be used any more (sd-varlink closes it too).
            failAll(ECONNABORTED, "The varlink connection was closed after a call on it timed out", time,
                    "Timed out waiting for the reply of the varlink server");
            return;
        }
        armTimer(earliest);
    }

    void onIo(uint32_t revents) {
        auto keep = shared_from_this();
        if (connecting_ && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            int error = 0;
            socklen_t length = sizeof(error);
            if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &length) < 0)
                error = errno;
            if (error != 0) {
                failAll(error, "Failed to connect to the varlink server");
                return;
            }
            connecting_ = false;
        }
        // Replies first: a server that answered and closed has its answers delivered before a send finds
        // the connection gone.
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
            readAndDispatch();
        if (fd_ && (revents & EPOLLOUT))
            onFlush();
    }

    void onFlush() {
        if (!fd_ || connecting_)
            return;
        auto keep = shared_from_this(); // a callback run from here (a failure) may destroy the client
        while (sent_ < out_.size()) {
            size_t end = out_.size();
            // A message with fds starts a sendmsg of its own, which carries them.
            auto attachment = attachments_.begin();
            if (attachment != attachments_.end() && attachment->offset > sent_)
                end = attachment->offset;
            iovec iov{.iov_base = out_.data() + sent_, .iov_len = end - sent_};
            msghdr header{};
            header.msg_iov = &iov;
            header.msg_iovlen = 1;
            alignas(cmsghdr) std::byte control[CMSG_SPACE(sizeof(int) * maxFdsPerMessage)];
            bool withFds = attachment != attachments_.end() && attachment->offset == sent_;
            if (withFds) {
                size_t count = attachment->fds.size();
                header.msg_control = control;
                header.msg_controllen = CMSG_SPACE(sizeof(int) * count);
                cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
                for (size_t i = 0; i < count; ++i) {
                    int fd = attachment->fds[i].get();
                    std::memcpy(CMSG_DATA(cmsg) + i * sizeof(int), &fd, sizeof(int));
                }
            }
            ssize_t n = ::sendmsg(fd_.get(), &header, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    (void)io_.setIoEvents(EPOLLIN | EPOLLOUT);
                    return;
                }
                int code = errno == EPIPE ? ECONNRESET : errno;
                readAndDispatch(); // replies that came before the server left are still delivered
                if (fd_)
                    failAll(code, "Failed to send a call to the varlink server");
                return;
            }
            if (withFds)
                attachments_.erase(attachment); // the kernel has its own references now
            sent_ += static_cast<size_t>(n);
        }
        out_.clear();
        sent_ = 0;
        (void)io_.setIoEvents(EPOLLIN);
    }

    void readAndDispatch() {
        for (int reads = 0; reads < 16 && fd_; ++reads) {
            makeRoom(in_, inBegin_, inScanned_, inEnd_, readChunk);
            auto received = receiveMessage(
                fd_.get(), std::as_writable_bytes(std::span(in_.data() + inEnd_, in_.size() - inEnd_)),
                ReceiveOptions{.acceptFds = options_.acceptFds,
                               .maxFds = std::min(options_.maxFdsPerReply + 1, maxFdsPerMessage),
                               .nonblocking = true});
            if (!received) {
                int code = received.error().code();
                if (code == EAGAIN)
                    break;
                if (code == EPIPE)
                    code = ECONNRESET;
                dispatchComplete();
                failAll(code, "The varlink server closed the connection");
                return;
            }
            if (received->eof) {
                dispatchComplete();
                failAll(ECONNRESET, inBegin_ != inEnd_
                                        ? "The varlink server closed the connection in the middle of a reply"
                                        : "The varlink server closed the connection");
                return;
            }
            inEnd_ += received->size;
            for (UniqueFd& fd : received->fds)
                fds_.push_back(std::move(fd));
            // fds wait for the NUL of their reply: a server that keeps sending fds without finishing a reply
            // would otherwise fill this process's fd table.
            if (fds_.size() > options_.maxFdsPerReply) {
                closeAsync(fds_);
                fds_.clear();
                failAll(EPROTO, std::format("The varlink server sent more than {} fds with one reply",
                                            options_.maxFdsPerReply));
                return;
            }
            bool shortRead = received->size < in_.size() - (inEnd_ - received->size);
            if (!dispatchComplete())
                return;
            if (shortRead)
                break; // the socket is drained
        }
    }

    // Hands every complete message of the input to its call. False when the connection was closed.
    bool dispatchComplete() {
        while (fd_ && inScanned_ < inEnd_) {
            auto* nul = static_cast<char*>(std::memchr(in_.data() + inScanned_, 0, inEnd_ - inScanned_));
            if (!nul) {
                inScanned_ = inEnd_;
                if (inEnd_ - inBegin_ > maxMessageSize) {
                    failAll(EMSGSIZE, "A varlink reply is longer than the 16 MiB limit");
                    return false;
                }
                break;
            }
            std::string_view text(in_.data() + inBegin_, static_cast<size_t>(nul - (in_.data() + inBegin_)));
            inBegin_ = inScanned_ = static_cast<size_t>(nul - in_.data()) + 1;
            std::vector<UniqueFd> fds = std::move(fds_);
            fds_.clear();
            auto reply = parseReply(text, std::move(fds));
            if (!reply) {
                failAll(EBADMSG, reply.error().message());
                return false;
            }
            if (pending_.empty()) {
                failAll(EBADMSG, "The varlink server sent a reply to no call");
                return false;
            }
            deliver(std::move(*reply));
        }
        if (inBegin_ == inEnd_)
            inBegin_ = inScanned_ = inEnd_ = 0;
        return bool(fd_);
    }

    void deliver(ReplyMessage reply) {
        Pending& front = pending_.front();
        bool continues = reply.continues() && !reply.error();
        if (continues && !front.more) {
            failAll(EBADMSG, "The varlink server sent a reply that continues to a call without more");
            return;
        }
        if (!continues) {
            Pending done = std::move(front);
            pending_.pop_front();
            if (!done.cancelled)
                invoke(done.callback, std::move(reply));
            return;
        }
        // A reply of a `more` call that goes on: the call stays at the front, its callback runs outside it
        // (it may cancel the call, or close the client).
        uint64_t id = front.id;
        front.deadline = deadlineAfter(front.timeout);
        armTimer(front.deadline);
        if (front.cancelled)
            return;
        ReplyCallback callback = std::move(front.callback);
        invoke(callback, std::move(reply));
        if (Pending* p = find(id); p && !p->cancelled)
            p->callback = std::move(callback);
    }

    static void invoke(ReplyCallback& callback, Result<ReplyMessage> reply) noexcept {
        if (!callback)
            return;
        try {
            callback(std::move(reply));
        } catch (const std::exception& e) {
            logError("Unhandled exception in a varlink reply callback: {}", e.what());
        } catch (...) {
            logError("Unhandled exception in a varlink reply callback");
        }
    }

    // Closes the connection and fails every pending call with `code` — or, for one whose deadline is at or
    // before `expiredBy` (a timeout), with ETIMEDOUT and `expiredWhy`.
    void failAll(int code, std::string_view why, std::chrono::microseconds expiredBy = {},
                 std::string_view expiredWhy = {}) {
        shutDown();
        std::deque<Pending> failed = std::move(pending_);
        pending_.clear();
        for (Pending& p : failed) {
            if (p.cancelled)
                continue;
            bool expired = !expiredWhy.empty() && p.deadline <= expiredBy;
            invoke(p.callback, std::unexpected(expired ? Error(ETIMEDOUT, std::string(expiredWhy))
                                                       : Error::fromErrno(code, why)));
        }
    }

    void shutDown() noexcept {
        io_.reset();
        flush_.reset();
        timer_.reset();
        fd_.reset();
        out_.clear();
        sent_ = 0;
        attachments_.clear();
        closeAsync(fds_); // the server's: never closed on the loop thread (a close can block)
        fds_.clear();
    }

    static constexpr size_t readChunk = 64 * 1024;

    EventLoop& loop_;
    UniqueFd fd_;
    AsyncClientOptions options_;
    bool connecting_;
    EventSource io_;
    EventSource flush_;
    EventSource timer_;
    bool timerArmed_ = false;
    std::chrono::microseconds timerAt_{};

    std::deque<Pending> pending_;
    uint64_t nextId_ = 1;

    std::string out_; // queued calls; [0, sent_) already sent (the capacity is reused)
    size_t sent_ = 0;
    std::deque<Attachment> attachments_;

    std::vector<char> in_; // received bytes: [inBegin_, inEnd_) not yet dispatched
    size_t inBegin_ = 0;
    size_t inScanned_ = 0;
    size_t inEnd_ = 0;
    std::vector<UniqueFd> fds_; // received, not yet handed out with a reply
};

} // namespace detail

void PendingCall::cancel() noexcept {
    if (auto connection = connection_.lock())
        connection->cancel(id_);
    connection_.reset();
    id_ = 0;
}

void PendingCall::detach() noexcept {
    connection_.reset();
    id_ = 0;
}

bool PendingCall::pending() const noexcept {
    auto connection = connection_.lock();
    return connection && connection->isPending(id_);
}

namespace {

Result<AsyncClient> start(EventLoop& loop, UniqueFd fd, AsyncClientOptions options, bool connecting,
                          auto make) {
    auto connection = std::make_shared<detail::AsyncConnection>(loop, std::move(fd), options, connecting);
    if (auto started = connection->start(); !started)
        return std::unexpected(started.error());
    return make(std::move(connection));
}

} // namespace

Result<AsyncClient> AsyncClient::connect(EventLoop& loop, std::string_view address,
                                         AsyncClientOptions options) {
    auto sa = detail::parseAddress(address);
    if (!sa)
        return std::unexpected(sa.error());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        return failErrno("Failed to create a socket for '{}'", address);
    int r;
    do
        r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa->sockaddr), sa->length);
    while (r < 0 && errno == EINTR);
    bool connecting = false;
    if (r < 0) {
        if (errno != EINPROGRESS)
            return failErrno("Failed to connect to '{}'", address);
        connecting = true;
    }
    return start(loop, std::move(fd), options, connecting, [](auto c) { return AsyncClient(std::move(c)); });
}

Result<AsyncClient> AsyncClient::adopt(EventLoop& loop, UniqueFd connected, AsyncClientOptions options) {
    int flags = ::fcntl(connected.get(), F_GETFL);
    if (flags < 0 || ::fcntl(connected.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make the varlink connection non-blocking");
    return start(loop, std::move(connected), options, false,
                 [](auto c) { return AsyncClient(std::move(c)); });
}

AsyncClient::AsyncClient(std::shared_ptr<detail::AsyncConnection> connection) noexcept
    : connection_(std::move(connection)) {}
AsyncClient::AsyncClient(AsyncClient&&) noexcept = default;
AsyncClient& AsyncClient::operator=(AsyncClient&& other) noexcept {
    if (this != &other) {
        if (connection_)
            connection_->abandon();
        connection_ = std::move(other.connection_);
    }
    return *this;
}
AsyncClient::~AsyncClient() {
    if (connection_)
        connection_->abandon();
}

Result<PendingCall> AsyncClient::enqueue(std::string_view method, detail::WriteFn write, void* context,
                                         std::string_view parametersJson, CallFlags flags, ReplyCallback done,
                                         const CallOptions& options) {
    if (!connection_)
        return fail(ENOTCONN, "The varlink client has no connection");
    auto id = connection_->enqueue(method, write, context, parametersJson, flags, std::move(done), options);
    if (!id)
        return std::unexpected(id.error());
    if (*id == 0)
        return PendingCall();
    return PendingCall(connection_, *id);
}

Result<PendingCall> AsyncClient::call(std::string_view method, std::string_view parametersJson,
                                      ReplyCallback done, const CallOptions& options) {
    return enqueue(method, nullptr, nullptr, parametersJson, CallFlags{}, std::move(done), options);
}

Result<PendingCall> AsyncClient::callMore(std::string_view method, std::string_view parametersJson,
                                          ReplyCallback each, const CallOptions& options) {
    return enqueue(method, nullptr, nullptr, parametersJson, CallFlags{.more = true}, std::move(each),
                   options);
}

Result<void> AsyncClient::oneway(std::string_view method, std::string_view parametersJson,
                                 const CallOptions& options) {
    auto queued = enqueue(method, nullptr, nullptr, parametersJson, CallFlags{.oneway = true}, {}, options);
    return queued ? Result<void>() : std::unexpected(queued.error());
}

void AsyncClient::close() {
    if (connection_)
        connection_->close(ECANCELED, "The varlink client was closed");
}

bool AsyncClient::connected() const noexcept {
    return connection_ && connection_->connected();
}

size_t AsyncClient::pendingCalls() const noexcept {
    return connection_ ? connection_->pendingCalls() : 0;
}

} // namespace svckit::varlink
