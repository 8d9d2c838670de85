#include <svckit/internal/accept_pause.hpp>

#include <svckit/log.hpp>

#include <algorithm>
#include <poll.h>

namespace svckit {

bool clientQueued(int listeningFd) noexcept {
    pollfd p{.fd = listeningFd, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, 0) > 0;
}

Result<void> AcceptPause::init() {
    if (retry_)
        return {};
    auto timer = loop_.addTimer(lastBackoff, [this] { resume(); });
    if (!timer)
        return std::unexpected(timer.error().withContext("Failed to set up the accept retry timer"));
    retry_ = std::move(*timer);
    return retry_.setEnabled(false);
}

void AcceptPause::pause(const Error& error) {
    if (paused_)
        return;
    paused_ = true;
    ++pauses_;
    setAccepting_(false);
    if (!episode_) {
        episode_ = true;
        logWarning("{}: {}; accepting paused until a connection closes (retrying every {} to {} ms); raise "
                   "LimitNOFILE= if this recurs",
                   what_, error.message(), firstBackoff.count(), lastBackoff.count());
    }
    auto after = std::chrono::duration_cast<std::chrono::microseconds>(backoff_);
    backoff_ = std::min(backoff_ * 2, lastBackoff);
    if (retry_ && retry_.rearmTimer(after))
        return;
    // Without a timer only a closing connection would resume: resume now rather than risk never.
    logDebug("{}: no retry timer; accepting again at once", what_);
    paused_ = false;
    setAccepting_(true);
}

void AcceptPause::resume() {
    if (!paused_)
        return;
    paused_ = false;
    if (retry_)
        (void)retry_.setEnabled(false);
    setAccepting_(true);
}

} // namespace svckit
