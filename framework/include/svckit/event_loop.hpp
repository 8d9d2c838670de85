// svckit/event_loop.hpp — the one event loop of a service: sd-event with owned sources and C++ handlers.
//
// Every source is an EventSource that removes itself from the loop when destroyed; handlers are std::function
// objects that the trampolines call inside a try block, so no exception ever crosses into sd-event (one that
// escapes a handler is logged and the loop goes on). One EventLoop per thread.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <sys/signalfd.h>

struct sd_event;
struct sd_event_source;

namespace svckit {

// An owned sd_event_source: disabled and released when destroyed or reset.
class SVCKIT_EXPORT EventSource {
public:
    EventSource() noexcept = default;
    explicit EventSource(sd_event_source* source) noexcept : source_(source) {}
    EventSource(const EventSource&) = delete;
    EventSource& operator=(const EventSource&) = delete;
    EventSource(EventSource&& other) noexcept : source_(std::exchange(other.source_, nullptr)) {}
    EventSource& operator=(EventSource&& other) noexcept {
        if (this != &other)
            reset(std::exchange(other.source_, nullptr));
        return *this;
    }
    ~EventSource() { reset(); }

    void reset(sd_event_source* source = nullptr) noexcept;
    [[nodiscard]] sd_event_source* get() const noexcept { return source_; }
    explicit operator bool() const noexcept { return source_ != nullptr; }

    // Turns the source on or off (SD_EVENT_ON / SD_EVENT_OFF); one-shot timers re-arm with enable(true).
    Result<void> setEnabled(bool on);
    // For I/O sources: the epoll events to wait for (EPOLLIN, EPOLLOUT, ...).
    Result<void> setIoEvents(uint32_t events);
    // For timers: fire `after` from now (and enable as one-shot).
    Result<void> rearmTimer(std::chrono::microseconds after);
    // Enables the source for one dispatch (SD_EVENT_ONESHOT): a defer source runs once in the next iteration.
    // Calling it again before then changes nothing. No syscall: cheap enough for every call of a hot path.
    Result<void> enableOnce();

private:
    sd_event_source* source_ = nullptr;
};

class SVCKIT_EXPORT EventLoop {
public:
    using IoHandler = std::function<void(uint32_t revents)>;
    using TimerHandler = std::function<void()>;
    using SignalHandler = std::function<void(const signalfd_siginfo&)>;
    using DeferHandler = std::function<void()>;

    // A new loop (sd_event_new). Watchdog pings are sent automatically when the service manager asks for
    // them.
    static Result<EventLoop> create();

    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    EventLoop(EventLoop&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
    EventLoop& operator=(EventLoop&& other) noexcept;
    ~EventLoop();

    [[nodiscard]] sd_event* get() const noexcept { return event_; }

    [[nodiscard]] Result<EventSource> addIo(int fd, uint32_t events, IoHandler handler);
    // A one-shot timer on CLOCK_MONOTONIC, `after` from now; rearm it with EventSource::rearmTimer. The
    // accuracy lets sd-event coalesce wake-ups (its own default is 250 ms; timeouts can afford more).
    [[nodiscard]] Result<EventSource>
    addTimer(std::chrono::microseconds after, TimerHandler handler,
             std::chrono::microseconds accuracy = std::chrono::milliseconds(1));
    // Blocks the signal for the process and handles it in the loop.
    [[nodiscard]] Result<EventSource> addSignal(int signal, SignalHandler handler);
    // Runs once per loop iteration before waiting, while enabled (for batched flushing). A post source is
    // marked due when another source is dispatched, so one enabled during a dispatch waits for the next one.
    [[nodiscard]] Result<EventSource> addPost(DeferHandler handler);
    // Created off: runs once in the next iteration each time EventSource::enableOnce() is called on it (work
    // queued from any callback, done without waiting for another event).
    [[nodiscard]] Result<EventSource> addDefer(DeferHandler handler);

    // Runs until exit() is called; returns the exit code.
    [[nodiscard]] Result<int> run();
    void exit(int code) noexcept;
    // CLOCK_MONOTONIC now, as the loop sees it (cached per iteration).
    [[nodiscard]] std::chrono::microseconds now() const noexcept;

private:
    explicit EventLoop(sd_event* event) noexcept : event_(event) {}
    sd_event* event_ = nullptr;
};

} // namespace svckit
