// svckit/internal/accept_pause.hpp — what a listening socket's owner does when accept4() fails for want of
// resources (EMFILE, ENFILE, ENOBUFS, ENOMEM). Never installed.
//
// The listening socket stays readable while a client waits in its queue, and its source is level-triggered:
// returning from the handler and trying again on the next wake-up spins the loop at full CPU for as long as
// the fd table stays full. Instead the owner pauses: its listening sources are turned off until one of its
// connections closes (an fd is free again) or a timer runs out (the fds may be freed elsewhere in the
// process), with a backoff from 100 ms to 1 s while the episode lasts. One warning per episode, not one per
// wake-up; the episode ends when accept4() finds the queue empty with an fd to spare.
#pragma once

#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/log.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace svckit {

// A client waits in the queue of a listening socket (it is readable): about to be a connection, so not idle.
[[nodiscard]] bool clientQueued(int listeningFd) noexcept;

class AcceptPause {
public:
    // `setAccepting(false)` turns every listening source of the owner off, `setAccepting(true)` on again.
    // `what` names the owner in the warning ("varlink", "raw").
    AcceptPause(EventLoop& loop, std::string what, std::function<void(bool on)> setAccepting)
        : loop_(loop), what_(std::move(what)), setAccepting_(std::move(setAccepting)) {}

    // Whether accept4() (or what the accepted connection needs next) failed for want of fds or memory.
    [[nodiscard]] static bool exhausted(int code) noexcept {
        return code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
    }

    // One wake-up of a listening socket: accepts up to `max` connections (acceptConnection: accept4 and the
    // spec's checks) and hands each to `add` (Result<void>(UniqueFd)). Returns when the queue is empty, when
    // out of fds or memory (then paused: the client stays queued), or when `listening()` turns false after an
    // `add` (the owner stopped). A connection refused by its checks is counted in `*refused` and skipped; an
    // accepted one whose own fds (its pidfd) did not fit is lost, and the rest wait for the pause to end.
    template <class Add, class Listening>
    void acceptBatch(int listeningFd, const SocketSpec& spec, AcceptedPolicy policy,
                     ConnectionCounters* counters, int max, uint64_t* refused, Add&& add,
                     Listening&& listening) {
        for (int i = 0; i < max; ++i) {
            auto fd = acceptConnection(listeningFd, spec, policy, counters);
            if (!fd) {
                int code = fd.error().code();
                if (code == EAGAIN) {
                    hadRoom();
                    return;
                }
                if (exhausted(code)) {
                    // The client stays in the queue and the socket readable: retrying at the next wake-up
                    // would spin.
                    pause(fd.error());
                    return;
                }
                if (refused)
                    ++*refused;
                logDebug("{}: {}", what_, fd.error().message());
                if (code == EPROTO || code == ECONNABORTED || code == EPERM)
                    continue; // this connection was refused; others may be waiting
                return;
            }
            if (auto added = add(std::move(*fd)); !added) {
                logDebug("{}: {}", what_, added.error().message());
                if (exhausted(added.error().code())) {
                    pause(added.error());
                    return;
                }
            }
            if (!listening())
                return;
        }
    }

    // Creates the retry timer, off: once the fd table is full there may be no fd left for sd-event's timerfd.
    [[nodiscard]] Result<void> init();
    // Stops accepting after `error` (exhausted(error.code())) until resume() or the retry timer.
    void pause(const Error& error);
    // A connection of the owner closed: accept again at once if paused.
    void resume();
    // accept4() found the queue empty (EAGAIN): it had an fd to spare, so the episode (if any) is over and
    // the next one is logged again. (Not a connection accepted: with the table full again right after it, the
    // next accept4() fails with EMFILE even when no one waits.)
    void hadRoom() noexcept {
        if (episode_) {
            episode_ = false;
            backoff_ = firstBackoff;
        }
    }
    [[nodiscard]] bool paused() const noexcept { return paused_; }
    [[nodiscard]] unsigned pauses() const noexcept { return pauses_; }

    static constexpr std::chrono::milliseconds firstBackoff{100};
    static constexpr std::chrono::milliseconds lastBackoff{1000};

private:
    EventLoop& loop_;
    std::string what_;
    std::function<void(bool)> setAccepting_;
    EventSource retry_;
    std::chrono::milliseconds backoff_ = firstBackoff;
    bool paused_ = false;
    bool episode_ = false;
    unsigned pauses_ = 0;
};

} // namespace svckit
