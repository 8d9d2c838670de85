// framework/varlink/connection.hpp — one client connection of the varlink server: the input it holds (only
// incomplete messages: complete ones are parsed in the server's shared read buffer), its output buffer, the
// queue that keeps replies in call order, deferred calls, the hand-over of an upgrade.
//
// State. A connection is in exactly one of these states (sd-varlink keeps one state per connection too):
//
//   Open             reads, dispatches, answers.
//   AwaitingUpgrade  a call with "upgrade" to a method that supports it is unanswered: nothing after it is
//                    read as varlink (the bytes may be the next protocol's).
//   Draining         nothing more is read: the peer shut down its side (EOF), or broke the protocol. The
//                    replies to the calls before go out (deferred ones included), then it closes.
//   HandingOver      the upgrade reply was given: once it and every reply before it are written, the socket
//                    goes to the upgrade handler.
//   Closed           the socket is closed (or handed over); the object lives on only while something holds it
//                    (a DeferredCall's weak pointer, a pass of the IoBatch).
//
//   Open ──upgrade call──▶ AwaitingUpgrade ──answered without upgrade──▶ Open
//                          AwaitingUpgrade ──upgrade reply──▶ HandingOver ──replies written──▶ Closed
//   Open ──EOF, protocol error──▶ Draining ──replies written──▶ Closed
//   any ──read/send error, a reply past the output hard limit, the peer's hang-up (once its input is read)──▶
//         Closed
//
// Orthogonal to the state: `inputHeld_` (processing stopped before the end of the input buffer, because the
// unsent output passed the soft limit, ServerOptions::maxQueuedCalls calls are unanswered, or a call may
// upgrade; service() resumes it when the state is Open and roomForInput()) and the IoBatch's dirty mark
// (queued for service()).
#pragma once

#include "base/private.hpp"

#include <svckit/error.hpp>
#include <svckit/identity.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>

#include <svckit/internal/io_batch.hpp>

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::varlink {
class ServerImpl;
}

namespace svckit::varlink::detail {

class Connection final : public IoBatch::Handler, public std::enable_shared_from_this<Connection> {
public:
    enum class State : uint8_t { Open, AwaitingUpgrade, Draining, HandingOver, Closed };

    Connection(ServerImpl& server, UniqueFd fd, bool acceptFds, bool plainReads, PeerIdentity peer)
        : server_(server), fd_(std::move(fd)), acceptFds_(acceptFds), plainReads_(plainReads),
          peer_(std::move(peer)) {}

    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    Result<void> start();
    // IoBatch::Handler: the socket is ready; and (once per pass when marked dirty) flush output, resume input
    // held back, update the epoll events.
    void onIo(uint32_t revents) override;
    void service() override;
    void close();

    Result<void> emit(uint64_t id, const CallFlags& flags, ReplyKind kind, std::string_view name,
                      WriteFn write, void* context);
    Result<void> emitUpgrade(uint64_t id, const CallFlags& flags, WriteFn write, void* context,
                             UpgradeHandler then);
    // A call was deferred (pins its place in the reply order), and a deferred call got its final reply.
    void deferred(uint64_t id, const CallFlags& flags);
    void deferredDone() noexcept;
    void abandon(uint64_t id, const CallFlags& flags) noexcept;
    // The writer of a deferred call's reply threw: answers io.systemd.System, ends the call; returns the
    // errno.
    Result<void> writerFailed(uint64_t id, const CallFlags& flags, std::exception_ptr failure) noexcept;

    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] bool closed() const noexcept { return state_ == State::Closed; }
    [[nodiscard]] uid_t uid() const noexcept { return peer_.uid; }
    // Room for more replies: the unsent output is within the soft limit (the point where input is held back).
    [[nodiscard]] bool writable() const noexcept;
    // Calls `then` once, from the loop, when the connection is writable(); dropped uncalled if it closes
    // first.
    void whenWritable(std::function<void()> then);
    // Every reply written, none awaited, no hand-over pending.
    [[nodiscard]] bool drained() const noexcept {
        return outBegin_ == out_.size() && slots_.empty() && deferredCount_ == 0 &&
               state_ != State::HandingOver;
    }

    static std::string_view stateName(State state) noexcept;

    // Bytes this connection holds for incomplete input (its share of ServerCounters::inputBytesHeld).
    [[nodiscard]] size_t inputHeldBytes() const noexcept { return inputCharged_; }
    // Closes the connection for holding the most incomplete input when all of it passed the server's budget
    // (its input is dropped at once; replies to the calls before still go out, as after a protocol error).
    void dropInputOverBudget();

private:
    struct Slot {
        uint64_t id;
        std::string buffered; // replies written before this call reached the head of the queue
        bool finished = false;
    };

    void setState(State state) noexcept;
    void readInput();
    // What a read brought (`size` bytes at the start of the server's read buffer): with nothing held, the
    // messages are parsed where they were read and only what remains of an incomplete one is kept; otherwise
    // it is added to what is held.
    void takeInput(const char* read, size_t size);
    void keepRemainder(const char* read);
    void appendInput(const char* data, size_t size);
    void releaseInput() noexcept;
    void chargeInput() noexcept;
    // The messages in [inBegin_, inEnd_) of base: the read buffer, or in_.
    void processInput(const char* base);
    void handleMessage(const char* data, size_t size);
    void dispatch(std::string_view method, JsonView parameters, CallFlags flags);
    // The handler threw, or returned without answering: io.systemd.System in its place.
    void handlerFailed(Call& call, std::exception_ptr failure) noexcept;
    // A reply would take the unsent output past the hard limit: closes the connection, returns ENOBUFS.
    Result<void> overflow();
    // The peer has closed its socket (EPOLLHUP): closes once nothing more is to be read.
    void hungUp();
    // Another call may be read: the unsent output is within the soft limit, and fewer than
    // ServerOptions::maxQueuedCalls calls are unanswered.
    [[nodiscard]] bool roomForInput() const noexcept;
    void flush();
    void releaseOutput() noexcept;
    void protocolError(std::string_view what);
    // Draining: nothing more is read, the input and its fds are dropped; the replies before still go out.
    void stopReading();
    void handOver();
    void advanceQueue();
    [[nodiscard]] size_t pendingOutput() const noexcept { return out_.size() - outBegin_ + slotBytes_; }
    [[nodiscard]] bool outputDone() const noexcept { return outBegin_ == out_.size() && slots_.empty(); }
    void markDirty();
    void notifyWritable();

    ServerImpl& server_;
    UniqueFd fd_;
    bool acceptFds_;
    // A stream that takes no fds and carries no per-message identity (SO_PASSCRED and SO_PASSPIDFD are off):
    // read with plain recv(), without a control buffer. fds a peer sends anyway are dropped by the kernel
    // before they reach this process (and where SO_PASSRIGHTS is off, the peer's sendmsg() already fails).
    bool plainReads_;
    State state_ = State::Open;
    bool inputHeld_ = false; // see the top of this file
    PeerIdentity peer_;

    // Held input: what remains of an incomplete message (and complete ones held back), or nothing (no storage
    // either: an idle connection holds no input buffer). While a read is parsed where it was read (in the
    // server's buffer), the offsets are into that buffer and in_ is empty.
    std::vector<char> in_;
    size_t inBegin_ = 0;   // start of the first unprocessed message
    size_t inScanned_ = 0; // no NUL before this offset
    size_t inEnd_ = 0;
    size_t inputCharged_ = 0; // in_'s capacity as counted in ServerCounters::inputBytesHeld

    std::string out_;
    size_t outBegin_ = 0;
    std::deque<Slot> slots_; // calls answered out of order wait here; empty in the common case
    size_t slotBytes_ = 0;
    std::vector<UniqueFd> fds_;     // received, not yet given to a call; at most maxFdsPerCall
    std::vector<UniqueFd> callFds_; // the running call's; what its handler leaves goes to closeAsync()
    uint64_t nextId_ = 1;
    uint64_t upgradeId_ = 0;                          // AwaitingUpgrade: the call that may upgrade
    UpgradeHandler upgradeHandler_;                   // HandingOver: who gets the socket
    size_t deferredCount_ = 0;                        // deferred calls without their final reply
    std::vector<std::function<void()>> whenWritable_; // streaming handlers waiting for room (whenWritable)
};

} // namespace svckit::varlink::detail
