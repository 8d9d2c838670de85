#include "service/supervisor.hpp"

#include <svckit/log.hpp>

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <format>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace svckit {

namespace {

class Supervisor {
public:
    Supervisor(const SupervisorOptions& options, const std::function<int()>& worker,
               const sigset_t& workerMask)
        : options_(options), worker_(worker), workerMask_(workerMask), supervisor_(::getpid()) {}

    Result<void> spawnAll() {
        for (unsigned i = 0; i < options_.workers; ++i) {
            auto pid = spawn();
            if (!pid) {
                for (pid_t w : workers_)
                    ::kill(w, SIGTERM);
                return std::unexpected(pid.error());
            }
            workers_.push_back(*pid);
        }
        return {};
    }

    [[nodiscard]] bool done() const noexcept { return workers_.empty(); }
    [[nodiscard]] int exitCode() const noexcept { return exitCode_; }

    void stopAll() {
        if (stopping_)
            return;
        stopping_ = true;
        (void)sd_notify(0, "STOPPING=1");
        for (pid_t w : workers_)
            ::kill(w, SIGTERM);
    }

    void reap() {
        for (;;) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                return;
            auto it = std::ranges::find(workers_, pid);
            if (it == workers_.end())
                continue;
            workers_.erase(it);
            if (stopping_)
                continue;
            bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            logWarning("Worker {} {} {}", pid, WIFEXITED(status) ? "exited with" : "was killed by signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            if (clean || ++replacements_ > options_.maxReplacements) {
                if (!clean)
                    exitCode_ = 1;
                stopAll();
                continue;
            }
            if (auto again = spawn())
                workers_.push_back(*again);
            else
                logError("{}", again.error().message());
        }
    }

private:
    // Forks from the supervisor's own state: no loop exists here, so the worker inherits none.
    Result<pid_t> spawn() {
        pid_t pid = ::fork();
        if (pid < 0)
            return failErrno("Failed to fork a worker");
        if (pid > 0)
            return pid;
        (void)::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != supervisor_)
            ::_exit(0);
        ::sigprocmask(SIG_SETMASK, &workerMask_, nullptr);
        int code = 1;
        try {
            code = worker_();
        } catch (const std::exception& e) {
            logError("worker {}: {}", ::getpid(), e.what());
        }
        std::fflush(nullptr);
        ::_exit(code);
    }

    const SupervisorOptions& options_;
    const std::function<int()>& worker_;
    const sigset_t& workerMask_;
    pid_t supervisor_;
    std::vector<pid_t> workers_;
    bool stopping_ = false;
    int exitCode_ = 0;
    unsigned replacements_ = 0;
};

} // namespace

Result<int> superviseWorkers(const SupervisorOptions& options, const std::function<int()>& worker) {
    sigset_t handled;
    sigemptyset(&handled);
    for (int signal : {SIGTERM, SIGINT, SIGCHLD})
        sigaddset(&handled, signal);
    // Blocked before the first fork, so that no SIGCHLD and no SIGTERM is lost; each is taken with
    // sigtimedwait.
    sigset_t previous;
    if (::sigprocmask(SIG_BLOCK, &handled, &previous) < 0)
        return failErrno("Failed to block the supervisor's signals");

    Supervisor supervisor(options, worker, previous);
    if (auto ok = supervisor.spawnAll(); !ok) {
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
        return std::unexpected(ok.error());
    }
    // A worker may have died already.
    supervisor.reap();

    uint64_t watchdogUsec = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdogUsec) > 0 && watchdogUsec > 0;
    auto pingEvery = std::chrono::microseconds(watchdogUsec / 2);
    auto nextPing = std::chrono::steady_clock::now();
    (void)sd_notify(0,
                    std::format("READY=1\nSTATUS=Serving with {} worker processes", options.workers).c_str());

    while (!supervisor.done()) {
        if (watchdog && std::chrono::steady_clock::now() >= nextPing) {
            (void)sd_notify(0, "WATCHDOG=1");
            nextPing = std::chrono::steady_clock::now() + pingEvery;
        }
        siginfo_t info{};
        int signal;
        if (watchdog) {
            auto wait = std::max(std::chrono::nanoseconds(0), nextPing - std::chrono::steady_clock::now());
            timespec timeout{.tv_sec = static_cast<time_t>(wait.count() / 1'000'000'000),
                             .tv_nsec = static_cast<long>(wait.count() % 1'000'000'000)};
            signal = ::sigtimedwait(&handled, &info, &timeout);
        } else {
            signal = ::sigwaitinfo(&handled, &info);
        }
        if (signal < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            auto error = Error::fromErrno(errno, "Failed to wait for a signal");
            supervisor.stopAll();
            ::sigprocmask(SIG_SETMASK, &previous, nullptr);
            return std::unexpected(error);
        }
        if (signal == SIGCHLD)
            supervisor.reap();
        else
            supervisor.stopAll();
    }
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    return supervisor.exitCode();
}

} // namespace svckit
