// tests/integration/child_process.hpp — a service a test runs in a child process: its exit awaited with a
// deadline (never a fixed sleep), SIGKILLed if the test ends while it still runs, the environment systemd
// gives an activated service (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) set up in the child, and its varlink
// replies read one at a time.
#pragma once

#include <svckit/unique_fd.hpp>

#include "../unit/activation_test_support.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace svckit::test {

// The service fixture program (tests/integration/service_fixture.cpp), from SVCKIT_SERVICE_FIXTURE; "" if
// unset.
inline std::string serviceFixturePath() {
    const char* path = std::getenv("SVCKIT_SERVICE_FIXTURE");
    return path ? path : "";
}

// The next varlink reply on a connection (without its NUL), or "" when none came in time or the peer closed.
// Read byte by byte: a second reply already sent stays in the socket for the next call.
inline std::string readReply(int fd, std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
    std::string reply;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 20) <= 0)
            continue;
        char c = 0;
        ssize_t n = ::recv(fd, &c, 1, 0);
        if (n <= 0)
            return {};
        if (c == '\0')
            return reply;
        reply.push_back(c);
    }
    return {};
}

inline std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// In a forked child: places `fds` on 3.. and sets LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES as systemd does
// (nothing when there are none). Exits 120 when the fds cannot be placed. Returns how many were placed.
inline size_t becomeActivated(std::vector<UniqueFd> fds, const std::string& names) {
    size_t n = fds.size();
    if (!placeAsPassedFds(std::move(fds)).empty())
        ::_exit(120);
    if (n > 0) {
        ::setenv("LISTEN_FDS", std::to_string(n).c_str(), 1);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        ::setenv("LISTEN_FDNAMES", names.c_str(), 1);
    }
    return n;
}

// A forked child process, owned: a subclass forks in its constructor and stores the pid in pid_.
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            (void)wait(std::chrono::milliseconds(5000));
        }
    }

    // The exit status (or -signal), or nullopt when it did not exit in time (looked at at least once).
    std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int status = 0;
            if (!status_ && ::waitpid(pid_, &status, WNOHANG) == pid_)
                status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
            if (status_ || std::chrono::steady_clock::now() >= deadline)
                return status_;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    [[nodiscard]] bool running() { return !wait(std::chrono::milliseconds(0)).has_value(); }
    void signal(int sig) const { ::kill(pid_, sig); }
    [[nodiscard]] pid_t pid() const { return pid_; }

protected:
    pid_t pid_ = -1;

private:
    std::optional<int> status_;
};

} // namespace svckit::test
