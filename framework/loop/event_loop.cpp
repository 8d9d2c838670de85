#include <svckit/event_loop.hpp>

#include <svckit/log.hpp>

#include <systemd/sd-event.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <memory>

namespace svckit {
namespace {

// The handler lives on the heap, owned by the source: sd-event's destroy callback frees it when the source
// goes.
template <typename Handler>
void destroyHandler(void* userdata) noexcept {
    delete static_cast<Handler*>(userdata);
}

template <typename Fn>
void callCatching(const char* what, Fn&& fn) noexcept {
    try {
        fn();
    } catch (const std::exception& e) {
        logError("Unhandled exception in {} handler: {}", what, e.what());
    } catch (...) {
        logError("Unhandled exception in {} handler", what);
    }
}

int onIo(sd_event_source*, int, uint32_t revents, void* userdata) noexcept {
    callCatching("I/O", [&] { (*static_cast<EventLoop::IoHandler*>(userdata))(revents); });
    return 0;
}

int onTimer(sd_event_source*, uint64_t, void* userdata) noexcept {
    callCatching("timer", [&] { (*static_cast<EventLoop::TimerHandler*>(userdata))(); });
    return 0;
}

int onSignal(sd_event_source*, const signalfd_siginfo* info, void* userdata) noexcept {
    callCatching("signal", [&] { (*static_cast<EventLoop::SignalHandler*>(userdata))(*info); });
    return 0;
}

// Post and defer sources.
int onPost(sd_event_source*, void* userdata) noexcept {
    callCatching("deferred", [&] { (*static_cast<EventLoop::DeferHandler*>(userdata))(); });
    return 0;
}

// Takes ownership of `handler` once the source exists; frees it if creating the source failed.
template <typename Handler>
Result<EventSource> adopt(int r, sd_event_source* source, Handler* handler, const char* what) {
    if (r < 0) {
        delete handler;
        return std::unexpected(Error::fromErrno(-r, std::format("Failed to add {} event source", what)));
    }
    sd_event_source_set_destroy_callback(source, destroyHandler<Handler>);
    return EventSource(source);
}

} // namespace

void EventSource::reset(sd_event_source* source) noexcept {
    sd_event_source* old = std::exchange(source_, source);
    if (old)
        sd_event_source_disable_unref(old);
}

Result<void> EventSource::setEnabled(bool on) {
    int r = sd_event_source_set_enabled(source_, on ? SD_EVENT_ON : SD_EVENT_OFF);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to enable event source"));
    return {};
}

Result<void> EventSource::setIoEvents(uint32_t events) {
    int r = sd_event_source_set_io_events(source_, events);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to change I/O events"));
    return {};
}

Result<void> EventSource::rearmTimer(std::chrono::microseconds after) {
    int r = sd_event_source_set_time_relative(source_, static_cast<uint64_t>(after.count()));
    if (r >= 0)
        r = sd_event_source_set_enabled(source_, SD_EVENT_ONESHOT);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to re-arm timer"));
    return {};
}

Result<void> EventSource::enableOnce() {
    int r = sd_event_source_set_enabled(source_, SD_EVENT_ONESHOT);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to enable event source"));
    return {};
}

Result<EventLoop> EventLoop::create() {
    sd_event* event = nullptr;
    int r = sd_event_new(&event);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to create event loop"));
    EventLoop loop(event);
    // With WATCHDOG_USEC set by the service manager, sd-event sends WATCHDOG=1 at half the interval.
    r = sd_event_set_watchdog(event, true);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to enable watchdog pings"));
    return loop;
}

EventLoop& EventLoop::operator=(EventLoop&& other) noexcept {
    if (this != &other) {
        if (event_)
            sd_event_unref(event_);
        event_ = std::exchange(other.event_, nullptr);
    }
    return *this;
}

EventLoop::~EventLoop() {
    if (event_)
        sd_event_unref(event_);
}

Result<EventSource> EventLoop::addIo(int fd, uint32_t events, IoHandler handler) {
    auto* h = new IoHandler(std::move(handler));
    sd_event_source* source = nullptr;
    int r = sd_event_add_io(event_, &source, fd, events, onIo, h);
    return adopt(r, source, h, "I/O");
}

Result<EventSource> EventLoop::addTimer(std::chrono::microseconds after, TimerHandler handler,
                                        std::chrono::microseconds accuracy) {
    auto* h = new TimerHandler(std::move(handler));
    sd_event_source* source = nullptr;
    // An accuracy of 0 would mean sd-event's default of 250 ms.
    int r =
        sd_event_add_time_relative(event_, &source, CLOCK_MONOTONIC, static_cast<uint64_t>(after.count()),
                                   static_cast<uint64_t>(std::max<int64_t>(accuracy.count(), 1)), onTimer, h);
    return adopt(r, source, h, "timer");
}

Result<EventSource> EventLoop::addSignal(int signal, SignalHandler handler) {
    auto* h = new SignalHandler(std::move(handler));
    sd_event_source* source = nullptr;
    // SD_EVENT_SIGNAL_PROCMASK: sd-event blocks the signal itself (and unblocks it when the source goes).
    int r = sd_event_add_signal(event_, &source, signal | SD_EVENT_SIGNAL_PROCMASK, onSignal, h);
    return adopt(r, source, h, "signal");
}

Result<EventSource> EventLoop::addPost(DeferHandler handler) {
    auto* h = new DeferHandler(std::move(handler));
    sd_event_source* source = nullptr;
    int r = sd_event_add_post(event_, &source, onPost, h);
    return adopt(r, source, h, "post");
}

Result<EventSource> EventLoop::addDefer(DeferHandler handler) {
    auto* h = new DeferHandler(std::move(handler));
    sd_event_source* source = nullptr;
    int r = sd_event_add_defer(event_, &source, onPost, h);
    auto adopted = adopt(r, source, h, "defer");
    // sd-event creates defer sources on (due in every iteration); this one waits for enableOnce().
    if (adopted)
        if (auto off = adopted->setEnabled(false); !off)
            return std::unexpected(off.error());
    return adopted;
}

Result<int> EventLoop::run() {
    int r = sd_event_loop(event_);
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, "Event loop failed"));
    return r;
}

void EventLoop::exit(int code) noexcept {
    sd_event_exit(event_, code);
}

std::chrono::microseconds EventLoop::now() const noexcept {
    uint64_t usec = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &usec);
    return std::chrono::microseconds(usec);
}

} // namespace svckit
