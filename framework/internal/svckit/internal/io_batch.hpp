// svckit/internal/io_batch.hpp — batched I/O for many fds on one EventLoop, shared by the protocols svckit
// serves (the varlink server; a D-Bus or raw protocol can use it the same way). Never installed.
//
// sd-event dispatches one source per loop iteration, each iteration with an epoll_wait of its own: with one
// source per connection, N ready connections cost N iterations. An IoBatch keeps its fds in an epoll instance
// of its own, which the loop watches as ONE source. One wake-up is one pass:
//
//   1. one epoll_wait takes up to 64 ready fds, and each one's Handler::onIo() runs (a handler marked dirty
//      during its own onIo() is serviced right after it, without being queued);
//   2. every handler marked dirty from elsewhere (another handler's callback, a timer, a reply given later)
//   is
//      serviced once, at the end of the pass: its output goes out with one send however many replies it got;
//   3. the graveyard (objects retired during the pass, e.g. closed connections whose code may still be on the
//      stack) is emptied, then the owner's afterPass callback runs.
//
// Work marked outside a pass (from another source's callback) runs in a pass of its own, from a defer source
// that is enabled only when there is such work (a post source would run after every wake-up).
//
// A handler removed (remove()) during a pass gets no further onIo() in that pass, even if epoll had reported
// it ready. Handlers are owned by shared_ptr: the dirty list keeps them alive until they are serviced.
#pragma once

#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/unique_fd.hpp>

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace svckit {

class IoBatch {
public:
    // What an IoBatch calls. One fd per handler (epoll reports it with the handler's address).
    class Handler {
    public:
        Handler() = default;
        Handler(const Handler&) = delete;
        Handler& operator=(const Handler&) = delete;

        // The fd is ready (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR as epoll reports them). EPOLLHUP and
        // EPOLLERR come whatever the mask, until remove().
        virtual void onIo(uint32_t revents) = 0;
        // Marked dirty: called once per pass (flush output, re-arm events, ...). dirty() is false again when
        // it runs, so it may mark itself dirty anew for another round at the end of the pass.
        virtual void service() = 0;

        [[nodiscard]] bool dirty() const noexcept { return dirty_; }
        [[nodiscard]] int fd() const noexcept { return fd_; }
        [[nodiscard]] uint32_t events() const noexcept { return events_; }

    protected:
        ~Handler() = default;

    private:
        friend class IoBatch;
        int fd_ = -1;         // the watched fd, -1 when not added
        uint32_t events_ = 0; // what epoll waits for on fd_ (besides EPOLLHUP and EPOLLERR)
        bool dirty_ = false;  // queued for service() (or serviced right after its own onIo())
    };

    // `afterPass` (may be empty) runs at the end of every pass, after the graveyard is emptied.
    static Result<std::unique_ptr<IoBatch>> create(EventLoop& loop, std::function<void()> afterPass = {});
    IoBatch(const IoBatch&) = delete;
    IoBatch& operator=(const IoBatch&) = delete;
    ~IoBatch();

    // Watches `fd` for `events` on behalf of `handler` (which must outlive the registration).
    Result<void> add(Handler& handler, int fd, uint32_t events);
    // Changes the events. 0 leaves the fd in the epoll instance with an empty mask: epoll still reports
    // EPOLLHUP and EPOLLERR (level-triggered: on every wake-up until the handler removes the fd), which is
    // how a handler that waits for nothing learns that its peer has gone.
    Result<void> modify(Handler& handler, uint32_t events) {
        if (events == handler.events_)
            return {}; // the common case on a hot path: nothing to tell the kernel
        return update(handler, events);
    }
    // Stops watching (with the fd still open: the caller closes or hands it on afterwards). A ready event of
    // this pass that was not dispatched yet is dropped. Dirty marks stay (the handler decides what service()
    // does for a removed fd); call it before the fd is closed.
    void remove(Handler& handler) noexcept;

    // Queues `handler` for service() at the end of the pass (or, outside a pass, in a pass of its own).
    // Marking it again before then does nothing.
    // H derives from Handler and from std::enable_shared_from_this (the queue holds a reference). Marking the
    // handler whose onIo() runs costs no reference: it is serviced right after, not queued.
    template <typename H>
    void markDirty(H& handler) {
        Handler& base = handler;
        if (base.dirty_)
            return;
        base.dirty_ = true;
        if (&base != current_)
            queue(handler.shared_from_this());
    }
    // Keeps `object` alive until the end of the current pass (or of the next one, outside a pass): for a
    // handler closed while its own code, or a caller's, may still be on the stack.
    void retire(std::shared_ptr<void> object);

    [[nodiscard]] bool inPass() const noexcept { return inPass_; }

private:
    explicit IoBatch(EventLoop& loop, std::function<void()> afterPass) noexcept
        : loop_(loop), afterPass_(std::move(afterPass)) {}
    Result<void> init();
    Result<void> update(Handler& handler, uint32_t events);
    void queue(std::shared_ptr<Handler> handler);
    void onReady();
    void endPass();
    void wake();

    // Ready events taken per epoll_wait (the rest stay ready for the next wake-up: level-triggered).
    static constexpr int readyPerWakeup = 64;

    EventLoop& loop_;
    std::function<void()> afterPass_;
    UniqueFd poll_;
    EventSource pollSource_;
    EventSource wake_;
    bool inPass_ = false;
    Handler* current_ = nullptr; // whose onIo() runs: marking it dirty needs no queue
    epoll_event ready_[readyPerWakeup]{};
    int readyCount_ = 0;
    int readyNext_ = 0; // the index of the next ready event to dispatch
    std::vector<std::shared_ptr<Handler>> dirty_;
    std::vector<std::shared_ptr<void>> graveyard_;
};

} // namespace svckit
