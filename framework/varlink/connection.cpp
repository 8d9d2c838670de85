// One client connection of the varlink server (see connection.hpp for its states).
#include "varlink/connection.hpp"

#include "varlink/framing.hpp"
#include "varlink/server_internal.hpp"

#include <svckit/log.hpp>
#include <svckit/message.hpp>

#include <svckit/internal/varlink_protocol.hpp>

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <utility>

namespace svckit::varlink::detail {
namespace {

// Reads per wake-up before other connections get their turn (level-triggered: the rest is read next time).
constexpr int readsPerWakeup = 16;
// An output buffer with more room than this is released once it has been sent: a connection keeps the room of
// its small replies (no allocation per call), not of its largest.
constexpr size_t outputKept = 4096;

} // namespace

std::string_view Connection::stateName(State state) noexcept {
    switch (state) {
    case State::Open:
        return "open";
    case State::AwaitingUpgrade:
        return "awaiting-upgrade";
    case State::Draining:
        return "draining";
    case State::HandingOver:
        return "handing-over";
    case State::Closed:
        return "closed";
    }
    return "?";
}

void Connection::setState(State state) noexcept {
    // Not on the path of a plain call: a call changes no state unless it upgrades, or the peer leaves.
    if (state_ == state)
        return;
    logDebug("varlink: connection of pid {}: {} → {}", peer_.pid, stateName(state_), stateName(state));
    state_ = state;
}

Connection::~Connection() {
    // Normally empty here (close() released them); a connection dropped without close() too.
    closeAsync(fds_);
    closeAsync(callFds_);
}

Result<void> Connection::start() {
    return server_.batch_->add(*this, fd_.get(), EPOLLIN);
}

void Connection::onIo(uint32_t revents) {
    if (state_ == State::Closed)
        return;
    if (revents & EPOLLOUT)
        flush();
    if (state_ != State::Closed && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        readInput();
    if (state_ != State::Closed && (revents & (EPOLLHUP | EPOLLERR)))
        hungUp();
    // The IoBatch calls service() right after this (a handler marked during its own onIo() is not queued).
    if (state_ != State::Closed)
        server_.batch_->markDirty(*this);
}

void Connection::readInput() {
    for (int round = 0; round < readsPerWakeup && state_ == State::Open && !inputHeld_; ++round) {
        std::span<char> read = server_.readBuffer();
        size_t space = read.size();
        size_t size = 0;
        if (plainReads_) {
            // recv() costs measurably less than recvmsg() with its message header (~0.3 µs here).
            ssize_t n;
            do
                n = ::recv(fd_.get(), read.data(), space, MSG_DONTWAIT);
            while (n < 0 && errno == EINTR);
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                logDebug("varlink: failed to receive: {}", std::strerror(errno));
                close();
                return;
            }
            if (n == 0) {
                setState(State::Draining);
                break;
            }
            size = static_cast<size_t>(n);
        } else {
            auto received = receiveMessage(fd_.get(), std::as_writable_bytes(std::span(read.data(), space)),
                                           ReceiveOptions{.acceptFds = acceptFds_,
                                                          .maxFds = acceptFds_ ? maxFdsPerCall : 16,
                                                          .nonblocking = true},
                                           &server_.counters_.sockets);
            if (!received) {
                if (received.error().code() == EAGAIN)
                    break;
                logDebug("varlink: {}", received.error().message());
                close();
                return;
            }
            if (received->eof) {
                closeAsync(received->fds);
                setState(State::Draining);
                break;
            }
            size = received->size;
            for (UniqueFd& fd : received->fds)
                fds_.push_back(std::move(fd));
            // fds wait for the NUL of their call: a connection holds at most one call's worth (fd hoarding,
            // docs/security.md).
            if (fds_.size() > maxFdsPerCall) {
                ++server_.counters_.fdLimitCloses;
                logDebug("varlink: connection of pid {} passed more than {} fds for one call; closing it",
                         peer_.pid, maxFdsPerCall);
                stopReading();
                break;
            }
        }
        takeInput(read.data(), size);
        // A short read drained the socket: skip the read that would only say EAGAIN.
        if (size < space)
            break;
    }
    if (state_ == State::Draining) {
        // Replies to what was read are still sent (the peer may have only shut down its writing side).
        flush();
        if (state_ == State::Draining && outputDone())
            close();
    }
}

void Connection::hungUp() {
    // The peer has closed its socket (epoll reports it whatever the events asked for, and on every wake-up):
    // nobody reads replies any more. What it sent before is still read and dispatched (oneway calls too);
    // once nothing more will be read, the connection closes, whatever its calls still wait for: a deferred
    // call's replies then go nowhere (ENOTCONN), a waiting stream is dropped, an upgrade does not happen.
    if (state_ == State::Open && !inputHeld_)
        return; // more input than one wake-up reads: the next one goes on (level-triggered)
    logDebug("varlink: the peer of pid {} has gone; closing its connection", peer_.pid);
    close();
}

bool Connection::roomForInput() const noexcept {
    // Calls read and not answered are capped too (each may hold a slot, a deferred call, a handler's state):
    // sd-varlink reads no call while one is pending; svckit reads ahead up to ServerOptions::maxQueuedCalls.
    return pendingOutput() <= server_.options_.outputSoftLimit &&
           slots_.size() < server_.options_.maxQueuedCalls &&
           deferredCount_ < server_.options_.maxQueuedCalls;
}

void Connection::takeInput(const char* read, size_t size) {
    if (inBegin_ != inEnd_) [[unlikely]] {
        appendInput(read, size);
        processInput(in_.data());
        return;
    }
    // Parsed where it was read; in_ holds no storage meanwhile (nothing is held).
    inBegin_ = inScanned_ = 0;
    inEnd_ = size;
    processInput(read);
    if (inBegin_ != inEnd_) [[unlikely]]
        keepRemainder(read);
}

void Connection::keepRemainder(const char* read) {
    // To storage of its own, as large as what remains: an idle caller that sent half a message holds that
    // half.
    size_t begin = inBegin_;
    size_t size = inEnd_ - begin;
    inScanned_ -= begin;
    inBegin_ = inEnd_ = 0;
    appendInput(read + begin, size);
}

void Connection::appendInput(const char* data, size_t size) {
    // Held input fills in_ exactly (in_.size() == inEnd_); what was processed goes first.
    if (inBegin_ > 0) {
        in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(inBegin_));
        inEnd_ -= inBegin_;
        inScanned_ -= inBegin_;
        inBegin_ = 0;
    }
    size_t before = in_.capacity();
    in_.insert(in_.end(), data, data + size);
    inEnd_ += size;
    if (in_.capacity() == before)
        return;
    if (before >= largeInput)
        server_.trimAfterPass(); // the old storage of a large message was freed
    chargeInput();
    size_t budget = server_.options_.maxInputBytesTotal;
    if (budget != 0 && server_.counters_.inputBytesHeld > budget)
        server_.enforceInputBudget();
}

void Connection::chargeInput() noexcept {
    size_t now = in_.capacity();
    server_.counters_.inputBytesHeld = server_.counters_.inputBytesHeld - inputCharged_ + now;
    inputCharged_ = now;
}

void Connection::releaseInput() noexcept {
    inBegin_ = inScanned_ = inEnd_ = 0;
    if (in_.capacity() >= largeInput)
        server_.trimAfterPass();
    std::vector<char>().swap(in_);
    chargeInput();
}

void Connection::dropInputOverBudget() {
    logDebug(
        "varlink: connection of pid {} holds the most incomplete input ({} bytes) when all of it passed the "
        "budget of {} bytes; closing it",
        peer_.pid, inputCharged_, server_.options_.maxInputBytesTotal);
    stopReading();
}

void Connection::processInput(const char* base) {
    while (state_ == State::Open && inScanned_ < inEnd_) {
        if (!roomForInput()) {
            inputHeld_ = true;
            return;
        }
        auto* end = static_cast<const char*>(std::memchr(base + inScanned_, 0, inEnd_ - inScanned_));
        if (!end) {
            inScanned_ = inEnd_;
            if (inEnd_ - inBegin_ >= server_.options_.maxMessageSize)
                protocolError("message over the size limit");
            break;
        }
        size_t size = static_cast<size_t>(end - (base + inBegin_));
        size_t next = static_cast<size_t>(end - base) + 1;
        if (size >= server_.options_.maxMessageSize) {
            protocolError("message over the size limit");
            return;
        }
        handleMessage(base + inBegin_, size);
        // The parser keeps the memory of its largest document: after a large one, it gives it back.
        if (size >= largeInput) [[unlikely]]
            server_.releaseParserMemory();
        if (state_ == State::Draining || state_ == State::Closed)
            return; // a protocol error dropped the input; or the connection is gone
        inBegin_ = inScanned_ = next;
        // Behind a call that may upgrade the connection the bytes may not be varlink: stop until it is
        // answered.
        if (state_ != State::Open)
            inputHeld_ = true;
    }
    if (inBegin_ == inEnd_) {
        inBegin_ = inScanned_ = inEnd_ = 0;
        if (in_.capacity() != 0)
            releaseInput(); // nothing held: no storage held either
    }
}

void Connection::handleMessage(const char* data, size_t size) {
    auto message = protocol::parseCall(std::string_view(data, size), server_.allocator_.get());
    if (!message) {
        protocolError(message.error());
        return;
    }
    dispatch(message->method, message->parameters, message->flags);
}

void Connection::dispatch(std::string_view method, JsonView parameters, CallFlags flags) {
    ++server_.counters_.calls;
    uint64_t id = nextId_++;
    // Behind a call that is still unanswered, this one's replies wait in its own slot.
    if (!slots_.empty() && !flags.oneway)
        slots_.push_back(Slot{.id = id, .buffered = {}, .finished = false});

    const Method* target = server_.findMethod(method);

    if (target && target->acceptsFds)
        callFds_.swap(fds_);
    if (!fds_.empty()) {
        server_.counters_.sockets.unwantedFdsClosed += fds_.size();
        closeAsync(fds_); // never on the loop thread: a caller's fd can make close() block
        fds_.clear();
    }

    Call call(this, id, method, parameters, flags, &peer_, callFds_);
    if (!target) {
        (void)call.error(errorMethodNotFound, [&](JsonWriter& w) { w.field("method", method); });
    } else if (target->requiresMore && !flags.more) {
        (void)call.error(errorExpectedMore);
    } else if (target->requiresUpgrade && !flags.upgrade) {
        (void)call.error(errorExpectedUpgrade);
    } else {
        if (target->supportsUpgrade && flags.upgrade) {
            upgradeId_ = id; // until it is answered, nothing after it is read as varlink
            setState(State::AwaitingUpgrade);
        }
        std::exception_ptr failure;
        try {
            target->handler(call);
        } catch (...) {
            failure = std::current_exception();
        }
        if (state_ != State::Closed && (failure || (!call.answered() && !call.deferred_ && !flags.oneway)))
            handlerFailed(call, failure);
    }
    if (!callFds_.empty()) {
        closeAsync(callFds_); // those the handler did not take
        callFds_.clear();
    }
}

void Connection::handlerFailed(Call& call, std::exception_ptr failure) noexcept {
    ++server_.counters_.handlerFailures;
    int code = failure ? protocol::errnoOfException(failure) : EIO;
    logDebug("varlink: handler of {} {}", call.method(), failure ? "threw" : "returned without replying");
    if (call.answered() || call.deferred_)
        return;
    try {
        (void)call.error(errorSystem, [&](JsonWriter& w) { protocol::writeSystemError(w, code); });
    } catch (...) {
        close(); // out of memory: the call cannot be answered, and its place in the order cannot be kept
    }
}

Result<void> Connection::emit(uint64_t id, const CallFlags& flags, ReplyKind kind, std::string_view name,
                              WriteFn write, void* context) {
    if (state_ == State::Closed)
        return fail(ENOTCONN, "The connection has been closed");
    if (state_ == State::AwaitingUpgrade && kind != ReplyKind::Continues && id == upgradeId_) {
        upgradeId_ = 0; // answered without an upgrade: varlink goes on
        setState(State::Open);
        markDirty();
    }
    if (flags.oneway)
        return {}; // no reply is sent to a oneway call
    Slot* slot = nullptr;
    std::string* sink = &out_;
    if (!slots_.empty()) {
        // Slots are queued in call order: ids ascend (answered out of order, a search stays logarithmic).
        auto it = std::ranges::lower_bound(slots_, id, {}, &Slot::id);
        if (it != slots_.end() && it->id == id) {
            slot = &*it;
            if (it != slots_.begin())
                sink = &slot->buffered;
        }
    }
    size_t before = sink->size();
    protocol::writeReply(*sink, kind, name, write, context);
    size_t added = sink->size() - before;
    size_t pending = pendingOutput() + (sink == &out_ ? 0 : added); // out_ has it already
    if (pending > server_.options_.outputHardLimit) {
        sink->resize(before);
        return overflow();
    }
    if (sink != &out_)
        slotBytes_ += added;
    if (kind != ReplyKind::Continues && slot) {
        slot->finished = true;
        advanceQueue();
    }
    markDirty();
    return {};
}

Result<void> Connection::overflow() {
    // As sd-varlink's enqueue (-ENOBUFS past its output buffer's maximum): the reply is refused, and the
    // connection, whose peer does not read what it has, is closed rather than grown.
    ++server_.counters_.overflowCloses;
    logDebug("varlink: closing the connection of pid {}: its unread replies would pass {} bytes", peer_.pid,
             server_.options_.outputHardLimit);
    close();
    return fail(ENOBUFS, "No room for the reply: the caller does not read its replies");
}

Result<void> Connection::emitUpgrade(uint64_t id, const CallFlags& flags, WriteFn write, void* context,
                                     UpgradeHandler then) {
    if (state_ == State::Closed)
        return fail(ENOTCONN, "The connection has been closed");
    if (state_ != State::AwaitingUpgrade || id != upgradeId_)
        return fail(EBADRQC, "The call was not made with 'upgrade' to a method that supports it");
    if (auto r = emit(id, flags, ReplyKind::Final, {}, write, context); !r)
        return r;
    upgradeHandler_ = std::move(then);
    setState(State::HandingOver);
    return {};
}

void Connection::advanceQueue() {
    while (!slots_.empty() && slots_.front().finished) {
        slots_.pop_front();
        if (!slots_.empty()) {
            Slot& head = slots_.front();
            slotBytes_ -= head.buffered.size();
            out_.append(head.buffered);
            std::string().swap(head.buffered);
        }
    }
}

void Connection::deferred(uint64_t id, const CallFlags& flags) {
    ++deferredCount_;
    ++server_.callsInFlight_;
    // Only a call dispatched with an empty queue has no slot yet, and then it is the head.
    if (!flags.oneway && slots_.empty())
        slots_.push_back(Slot{.id = id, .buffered = {}, .finished = false});
}

void Connection::deferredDone() noexcept {
    if (state_ == State::Closed || deferredCount_ == 0)
        return;
    --deferredCount_;
    --server_.callsInFlight_;
}

void Connection::abandon(uint64_t id, const CallFlags& flags) noexcept {
    try {
        auto write = [](JsonWriter& w) { protocol::writeSystemError(w, ECANCELED); };
        (void)emit(id, flags, ReplyKind::Error, errorSystem, &invokeWriter<decltype(write)&>, &write);
    } catch (...) {
        close();
    }
    deferredDone();
}

Result<void> Connection::writerFailed(uint64_t id, const CallFlags& flags,
                                      std::exception_ptr failure) noexcept {
    // As for a handler that throws: the call ends with io.systemd.System, and keeps its place in the order.
    ++server_.counters_.handlerFailures;
    int code = protocol::errnoOfException(failure);
    logDebug("varlink: the writer of a deferred reply threw");
    try {
        auto write = [code](JsonWriter& w) { protocol::writeSystemError(w, code); };
        (void)emit(id, flags, ReplyKind::Error, errorSystem, &invokeWriter<decltype(write)&>, &write);
    } catch (...) {
        close();
    }
    deferredDone();
    return fail(code, "The reply's writer threw");
}

void Connection::markDirty() {
    // Replies written while this connection's own onIo() runs are sent by the service() right after it.
    server_.batch_->markDirty(*this);
}

void Connection::flush() {
    if (state_ == State::Closed || outBegin_ == out_.size())
        return;
    ssize_t n;
    do
        n = ::send(fd_.get(), out_.data() + outBegin_, out_.size() - outBegin_, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN)
            return;
        logDebug("varlink: failed to send: {}", std::strerror(errno));
        close();
        return;
    }
    outBegin_ += static_cast<size_t>(n);
    if (outBegin_ == out_.size()) {
        outBegin_ = 0;
        if (out_.capacity() <= outputKept) [[likely]]
            out_.clear(); // keeps its capacity: no allocation for the next replies
        else
            releaseOutput();
    } else if (outBegin_ > out_.size() / 2) {
        out_.erase(0, outBegin_);
        outBegin_ = 0;
    }
}

void Connection::releaseOutput() noexcept {
    if (out_.capacity() >= largeInput)
        server_.trimAfterPass();
    std::string().swap(out_);
}

void Connection::service() {
    for (int round = 0; round < 4 && state_ != State::Closed; ++round) {
        flush();
        if (state_ == State::Closed)
            return;
        if (state_ == State::HandingOver && outputDone()) {
            handOver();
            return;
        }
        if (!inputHeld_ || state_ != State::Open || !roomForInput())
            break;
        inputHeld_ = false;
        processInput(in_.data());
    }
    notifyWritable(); // nothing waits on a closed connection: close() drops the waiters
    if (state_ == State::Closed)
        return;
    // No check of outputHardLimit here: emit() refuses the reply that would pass it (overflow()), and every
    // reply goes through emit().
    if (state_ == State::Draining && outputDone()) {
        close();
        return;
    }
    uint32_t events = 0;
    if (state_ == State::Open && !inputHeld_)
        events |= EPOLLIN;
    if (outBegin_ != out_.size())
        events |= EPOLLOUT;
    if (auto r = server_.batch_->modify(*this, events); !r) {
        logDebug("varlink: {}", r.error().message());
        close();
    }
}

bool Connection::writable() const noexcept {
    return state_ != State::Closed && pendingOutput() <= server_.options_.outputSoftLimit;
}

void Connection::whenWritable(std::function<void()> then) {
    if (state_ == State::Closed || !then)
        return;
    whenWritable_.push_back(std::move(then));
    markDirty(); // service() calls it, at once if there is room already
}

void Connection::notifyWritable() {
    if (whenWritable_.empty() || !writable())
        return;
    // Each waiter runs once; one that finds no room again registers anew. What they send goes out with the
    // flush below (and, if the connection was marked dirty again, in another service()).
    auto waiting = std::exchange(whenWritable_, {});
    for (auto& then : waiting) {
        if (state_ == State::Closed)
            break;
        try {
            then();
        } catch (const std::exception& e) {
            logDebug("varlink: a whenWritable callback threw: {}", e.what());
        } catch (...) {
            logDebug("varlink: a whenWritable callback threw");
        }
    }
    flush();
}

void Connection::protocolError(std::string_view what) {
    ++server_.counters_.protocolErrors;
    logDebug("varlink: protocol error from pid {}: {}; closing the connection", peer_.pid, what);
    stopReading();
}

void Connection::stopReading() {
    // As sd-varlink: the calls before the bad message are still answered, nothing after it is read, and the
    // connection closes once those replies are out.
    setState(State::Draining);
    inBegin_ = inScanned_ = inEnd_ = 0;
    releaseInput();
    closeAsync(fds_);
    fds_.clear();
    if (outputDone())
        close();
    else
        markDirty();
}

void Connection::handOver() {
    UpgradeHandler then = std::exchange(upgradeHandler_, nullptr);
    // Out of the server's epoll while the fd is still ours to name: close() cannot remove it once it is moved
    // out, and epoll would go on reporting the handed-over socket for this (soon freed) connection.
    server_.batch_->remove(*this);
    UpgradedConnection upgraded{.fd = std::move(fd_),
                                .pending = std::string(in_.data() + inBegin_, inEnd_ - inBegin_),
                                .peer = {},
                                .hold =
                                    server_.holdUpgraded()}; // before close(): the server never looks idle
    ++server_.counters_.connectionsUpgraded;
    close(); // the socket has been taken out: it stays open
    upgraded.peer = std::move(peer_);
    try {
        then(std::move(upgraded));
    } catch (const std::exception& e) {
        logDebug("varlink: the upgrade handler threw: {}", e.what());
    } catch (...) {
        logDebug("varlink: the upgrade handler threw");
    }
}

void Connection::close() {
    if (state_ == State::Closed)
        return;
    setState(State::Closed);
    // This connection may be the one being served right now: the IoBatch frees it at the end of the pass
    // (ServerImpl::closed() retires it there). It leaves the epoll instance first, with fd_ still set (see
    // handOver()).
    server_.batch_->remove(*this);
    closeAsync(fds_);
    fds_.clear();
    slots_.clear();
    slotBytes_ = 0;
    upgradeHandler_ = nullptr;
    fd_.reset();
    // The buffers go with the object at the end of the pass (a handler on the stack may still read the
    // message it was called with); the input stops counting against the budget now.
    if (in_.capacity() >= largeInput || out_.capacity() >= largeInput)
        server_.trimAfterPass();
    server_.counters_.inputBytesHeld -= inputCharged_;
    inputCharged_ = 0;
    server_.callsInFlight_ -= deferredCount_;
    deferredCount_ = 0;
    // Waiters are dropped uncalled: what they own (a DeferredCall) is released, its replies go nowhere.
    auto waiting = std::exchange(whenWritable_, {});
    server_.closed(*this);
    waiting.clear();
}

} // namespace svckit::varlink::detail
