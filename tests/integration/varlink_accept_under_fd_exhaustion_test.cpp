// A varlink service whose fd table is full: it must neither spin on its readable listening socket nor be
// filled by idle connections under the limits of its own spec. The service is the Service fixture
// (service_fixture.cpp) in a child process, binding its own socket; the test lowers or sets its RLIMIT_NOFILE
// and measures what it does (/proc/PID/stat, /proc/PID/limits, /proc/PID/fd).
#include <svckit/unique_fd.hpp>

#include "../unit/activation_test_support.hpp"
#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <format>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace svckit {
namespace {

using namespace std::chrono_literals;

using test::readReply;
using test::serviceFixturePath;

struct Launch {
    std::vector<std::pair<std::string, std::string>> env{};
    std::optional<rlimit> fdLimit{}; // set in the child before exec
};

// The fixture, binding its own socket (no activation); stderr in a file.
class Fixture : public test::ChildProcess {
public:
    Fixture(const std::string& dir, const Launch& launch) : err_(dir + "/err") {
        pid_ = ::fork();
        if (pid_ == 0) {
            int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            ::dup2(err, 2);
            for (const auto& [k, v] : launch.env)
                ::setenv(k.c_str(), v.c_str(), 1);
            if (launch.fdLimit && ::setrlimit(RLIMIT_NOFILE, &*launch.fdLimit) < 0)
                ::_exit(121);
            std::string exe = serviceFixturePath();
            ::execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    [[nodiscard]] std::string err() const { return test::readFile(err_); }

private:
    std::string err_;
};

bool sendPid(int fd) {
    static constexpr char call[] = R"({"method":"io.svckit.test.Fixture.Pid"})";
    return ::send(fd, call, sizeof call, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof call); // with its NUL
}

// A connection whose Pid() call was answered (the service accepted it and holds it), or an empty fd.
UniqueFd servedConnection(const std::string& path, std::chrono::milliseconds timeout = 10000ms) {
    UniqueFd fd = test::connectTo(SOCK_STREAM, path);
    if (!fd || !sendPid(fd.get()) || readReply(fd.get(), timeout).find("\"pid\"") == std::string::npos)
        return UniqueFd();
    return fd;
}

UniqueFd connectWhenReady(const std::string& path) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (UniqueFd fd = servedConnection(path))
            return fd;
        std::this_thread::sleep_for(10ms);
    }
    return UniqueFd();
}

// utime + stime of a process, in seconds.
double cpuSeconds(pid_t pid) {
    std::string stat = test::readFile(std::format("/proc/{}/stat", pid));
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos)
        return -1;
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) { // field 3 is the state
        if (i == 14)
            utime = std::stoull(field);
        if (i == 15) {
            stime = std::stoull(field);
            break;
        }
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The fds a process has open.
std::vector<int> openFds(pid_t pid) {
    std::vector<int> fds;
    for (const auto& entry : std::filesystem::directory_iterator(std::format("/proc/{}/fd", pid)))
        fds.push_back(std::atoi(entry.path().filename().c_str()));
    return fds;
}

// The RLIMIT_NOFILE that leaves exactly `free` fd numbers unused below it (the kernel hands out the lowest
// free number below the limit; open fds above it, inherited ones, stay usable).
rlim_t limitLeaving(const std::vector<int>& open, size_t free) {
    for (rlim_t limit = 0;; ++limit) {
        auto used = std::ranges::count_if(open, [&](int fd) { return static_cast<rlim_t>(fd) < limit; });
        if (limit - static_cast<rlim_t>(used) == free)
            return limit;
    }
}

// "Max open files" of /proc/PID/limits: {soft, hard}.
std::pair<unsigned long, unsigned long> fdLimitOf(pid_t pid) {
    std::istringstream limits(test::readFile(std::format("/proc/{}/limits", pid)));
    for (std::string line; std::getline(limits, line);) {
        if (!line.starts_with("Max open files"))
            continue;
        std::istringstream values(line.substr(std::string_view("Max open files").size()));
        unsigned long soft = 0, hard = 0;
        values >> soft >> hard;
        return {soft, hard};
    }
    return {0, 0};
}

size_t occurrences(std::string_view text, std::string_view what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

// Once its fd table is full, a client waiting in the listening socket's queue keeps the socket readable:
// the service must pause accepting (not retry at every wake-up, ~100% CPU), and serve that client once one
// of its connections closes.
TEST(VarlinkAcceptUnderFdExhaustion, PausesInsteadOfSpinningAndServesTheWaitingClientWhenAConnectionCloses) {
    ASSERT_FALSE(serviceFixturePath().empty()) << "SVCKIT_SERVICE_FIXTURE is not set";
    test::TempDir dir;
    std::string path = dir.path() + "/fixture.sock";
    Fixture fixture(dir.path(), {.env = {{"FIXTURE_SOCKET", path}}});
    ASSERT_TRUE(connectWhenReady(path)) << fixture.err();
    std::this_thread::sleep_for(100ms); // the connection above is gone, its fds closed

    // Room for exactly `idle` more connections (a socket and a pidfd each), then the table is full.
    constexpr size_t idle = 8;
    std::vector<int> open = openFds(fixture.pid());
    rlimit limit{.rlim_cur = limitLeaving(open, 2 * idle), .rlim_max = 0};
    limit.rlim_max = limit.rlim_cur;
    ASSERT_EQ(::prlimit(fixture.pid(), RLIMIT_NOFILE, &limit, nullptr), 0) << std::strerror(errno);

    std::vector<UniqueFd> connections;
    for (size_t i = 0; i < idle; ++i) {
        connections.push_back(servedConnection(path));
        ASSERT_TRUE(connections.back()) << "connection " << i << " was not served; " << fixture.err();
    }
    UniqueFd waiting = test::connectTo(SOCK_STREAM, path);
    ASSERT_TRUE(waiting);
    ASSERT_TRUE(sendPid(waiting.get()));
    ASSERT_EQ(readReply(waiting.get(), 300ms), "")
        << "the fd table was not full: " << open.size() << " fds, limit " << limit.rlim_cur;

    double before = cpuSeconds(fixture.pid());
    auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(1000ms);
    double used = cpuSeconds(fixture.pid()) - before;
    double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << std::format("CPU time of the exhausted service: {:.2f} s in {:.2f} s ({:.0f}%)\n", used,
                             window, 100 * used / window);
    EXPECT_LT(used, 0.2 * window) << "the service spins while its fd table is full";

    connections.front().reset();
    std::string reply = readReply(waiting.get(), 3000ms);
    EXPECT_NE(reply.find("\"pid\""), std::string::npos)
        << "the waiting client was not served; " << fixture.err();
    EXPECT_EQ(occurrences(fixture.err(), "accepting paused"), 1u) << fixture.err();
}

// Started under systemd's default soft limit (1024) with a higher hard one, the service raises its soft limit
// to the hard one: idle connections from one UID, under the caps of its spec, no longer fill its fd table
// (two fds each: ~480 would have), and a newcomer is still served.
TEST(VarlinkAcceptUnderFdExhaustion, ServiceRaisesItsSoftFdLimitAndServesIdleConnectionsUpToItsCaps) {
    ASSERT_FALSE(serviceFixturePath().empty()) << "SVCKIT_SERVICE_FIXTURE is not set";
    constexpr rlim_t hard = 4096;
    constexpr size_t idle = 600;
    rlimit own{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &own), 0);
    if (own.rlim_max < hard) {
        rlimit raised{.rlim_cur = hard, .rlim_max = hard};
        if (::setrlimit(RLIMIT_NOFILE, &raised) < 0)
            GTEST_SKIP() << "the hard RLIMIT_NOFILE is " << own.rlim_max << " and cannot be raised to "
                         << hard;
    } else if (own.rlim_cur < hard) {
        rlimit raised{.rlim_cur = hard, .rlim_max = own.rlim_max};
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0)
            << std::strerror(errno); // our side of 600 connections
    }

    test::TempDir dir;
    std::string path = dir.path() + "/fixture.sock";
    Fixture fixture(
        dir.path(),
        {.env = {{"FIXTURE_SOCKET", path}, {"FIXTURE_MAX_CONNECTIONS", "800"}, {"FIXTURE_MAX_PER_UID", "0"}},
         .fdLimit = rlimit{.rlim_cur = 1024, .rlim_max = hard}});
    ASSERT_TRUE(connectWhenReady(path)) << fixture.err();
    auto [soft, hardSeen] = fdLimitOf(fixture.pid());
    std::cout << std::format("RLIMIT_NOFILE of the service: soft {} hard {}\n", soft, hardSeen);
    EXPECT_EQ(soft, hard);
    EXPECT_EQ(hardSeen, hard);

    std::vector<UniqueFd> connections;
    for (size_t i = 0; i < idle; ++i) {
        connections.push_back(servedConnection(path, 2000ms));
        ASSERT_TRUE(connections.back()) << "connection " << i << " was not served ("
                                        << openFds(fixture.pid()).size() << " fds open); " << fixture.err();
    }
    UniqueFd newcomer = servedConnection(path, 2000ms);
    EXPECT_TRUE(newcomer) << "the newcomer was not served; " << fixture.err();
    std::cout << std::format("{} idle connections and a newcomer served; the service has {} fds open\n", idle,
                             openFds(fixture.pid()).size());
}

} // namespace
} // namespace svckit
