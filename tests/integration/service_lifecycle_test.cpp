// The Service lifecycle and the standard command line, on a real service binary (service_fixture.cpp) started
// the way systemd starts it: listening fds on 3.., LISTEN_* set for the child's own pid, NOTIFY_SOCKET
// pointing at a datagram socket the test reads READY=1/STATUS=/STOPPING=1/WATCHDOG=1 from.
#include <svckit/socket_options.hpp>
#include <svckit/unique_fd.hpp>

#include "../unit/activation_test_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <format>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace svckit {
namespace {

using namespace std::chrono_literals;

std::string fixturePath() {
    const char* path = std::getenv("SVCKIT_SERVICE_FIXTURE");
    return path ? path : "";
}

class TempDir {
public:
    TempDir() {
        char pattern[] = "/tmp/svckit-service-XXXXXX";
        path_ = ::mkdtemp(pattern);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The service manager's side of sd_notify().
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        socklen_t length = 0;
        sockaddr_un addr = test::unixAddress(path, length);
        EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), length), 0) << std::strerror(errno);
    }
    // Waits until a datagram containing `line` arrives; everything seen is kept in seen().
    bool waitFor(std::string_view line, std::chrono::milliseconds timeout = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (seen_.find(line) != std::string::npos)
                return true;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return false;
            pollfd p{.fd = fd_.get(), .events = POLLIN, .revents = 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
                continue;
            char buffer[4096];
            ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
            if (n > 0)
                seen_ += std::string(buffer, static_cast<size_t>(n)) + "\n";
        }
    }
    [[nodiscard]] const std::string& seen() const { return seen_; }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
    UniqueFd fd_;
    std::string seen_;
};

struct Launch {
    std::vector<std::string> args{};
    std::vector<std::pair<std::string, std::string>> env{};
    std::vector<UniqueFd> passFds{}; // placed on 3.. with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES
    std::string fdNames = "varlink";
    bool watchdog = false; // WATCHDOG_USEC=200000 and WATCHDOG_PID=the child
};

// A started fixture; its stdout and stderr go to files in the test's directory.
class Process {
public:
    Process(const TempDir& dir, Launch launch) {
        static int counter = 0;
        out_ = std::format("{}/out-{}", dir.path(), counter);
        err_ = std::format("{}/err-{}", dir.path(), counter++);
        pid_ = ::fork();
        if (pid_ == 0) {
            int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            ::dup2(out, 1);
            ::dup2(err, 2);
            size_t n = launch.passFds.size();
            if (!test::placeAsPassedFds(std::move(launch.passFds)).empty())
                ::_exit(120);
            for (auto& [k, v] : launch.env)
                ::setenv(k.c_str(), v.c_str(), 1);
            if (n > 0) {
                ::setenv("LISTEN_FDS", std::to_string(n).c_str(), 1);
                ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
                ::setenv("LISTEN_FDNAMES", launch.fdNames.c_str(), 1);
            }
            if (launch.watchdog) {
                ::setenv("WATCHDOG_USEC", "200000", 1);
                ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
            }
            std::string exe = fixturePath();
            std::vector<char*> argv{exe.data()};
            for (auto& a : launch.args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(exe.c_str(), argv.data());
            ::_exit(127);
        }
    }
    ~Process() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            (void)wait(5000ms);
        }
    }
    // The exit status (or -signal), or nullopt when it did not exit in time.
    std::optional<int> wait(std::chrono::milliseconds timeout = 10000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
            }
            std::this_thread::sleep_for(5ms);
        }
        return std::nullopt;
    }
    void signal(int sig) const { ::kill(pid_, sig); }
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] std::string out() const { return readFile(out_); }
    [[nodiscard]] std::string err() const { return readFile(err_); }

private:
    pid_t pid_ = -1;
    bool exited_ = false;
    std::string out_, err_;
};

// A listening socket as systemd >= 258 makes it for the fixture's unit (PassPIDFD=yes,
// AcceptFileDescriptors=no), or with the kernel's defaults when `withOptions` is false.
UniqueFd activatedSocket(const std::string& path, bool withOptions = true) {
    UniqueFd fd = test::boundSocket(SOCK_STREAM, path);
    if (withOptions) {
        SocketSpec spec{
            .name = "varlink", .address = path, .passPidfd = true, .acceptFileDescriptors = false};
        EXPECT_TRUE(applyOptions(fd.get(), spec).has_value());
    }
    return fd;
}

// The next reply on a connection (without its NUL), or "" when none came in time or the peer closed.
std::string readReply(int fd, std::chrono::milliseconds timeout = 5000ms) {
    std::string reply;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 50) <= 0)
            continue;
        char c = 0;
        ssize_t n = ::recv(fd, &c, 1, 0); // byte by byte: never consume a second reply
        if (n <= 0)
            return {};
        if (c == '\0')
            return reply;
        reply.push_back(c);
    }
    return {};
}

// One varlink call: the raw reply (without its NUL), or "" when none came.
std::string callOnce(int fd, std::string_view message, std::chrono::milliseconds timeout = 5000ms) {
    std::string frame(message);
    frame.push_back('\0');
    if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size()))
        return {};
    return readReply(fd, timeout);
}

UniqueFd connectWhenReady(const std::string& path, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (UniqueFd fd = test::connectTo(SOCK_STREAM, path))
            return fd;
        std::this_thread::sleep_for(10ms);
    }
    return UniqueFd();
}

std::string pidCall(const std::string& path) {
    UniqueFd fd = connectWhenReady(path);
    return fd ? callOnce(fd.get(), R"({"method":"io.svckit.test.Fixture.Pid"})") : std::string();
}

class ServiceLifecycle : public ::testing::Test {
protected:
    void SetUp() override {
        if (fixturePath().empty())
            GTEST_SKIP() << "SVCKIT_SERVICE_FIXTURE is not set";
    }
    TempDir dir;
    std::string socketPath() const { return dir.path() + "/varlink.sock"; }
    std::pair<std::string, std::string> socketEnv() const { return {"FIXTURE_SOCKET", socketPath()}; }
};

TEST_F(ServiceLifecycle, HelpNamesTheStandardFlagsAndTheSockets) {
    Process p(dir, {.args = {"--help"}, .env = {socketEnv()}});
    ASSERT_EQ(p.wait(), 0);
    std::string out = p.out();
    for (std::string_view flag : {"--help", "--version", "--print-units", "--listen=PATH", "--check"})
        EXPECT_NE(out.find(flag), std::string::npos) << flag << " missing in:\n" << out;
    EXPECT_NE(out.find(socketPath()), std::string::npos) << out;
    EXPECT_NE(out.find("svckit Service test fixture"), std::string::npos) << out;
}

TEST_F(ServiceLifecycle, VersionPrintsNameAndVersion) {
    Process p(dir, {.args = {"--version"}});
    ASSERT_EQ(p.wait(), 0);
    EXPECT_EQ(p.out(), "svckit-test-fixture 1.2.3\n");
}

TEST_F(ServiceLifecycle, UnknownArgumentIsAUsageError) {
    Process p(dir, {.args = {"--frobnicate"}});
    ASSERT_EQ(p.wait(), 2);
    EXPECT_NE(p.err().find("Unknown argument '--frobnicate'"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, PrintUnitsWritesSocketAndServiceFromTheSpec) {
    Process p(dir, {.args = {"--print-units=" + dir.path() + "/units"}, .env = {socketEnv()}});
    ASSERT_EQ(p.wait(), 0);
    std::string socket = readFile(dir.path() + "/units/svckit-test-fixture.socket");
    std::string service = readFile(dir.path() + "/units/svckit-test-fixture.service");
    EXPECT_NE(socket.find("ListenStream=" + socketPath() + "\n"), std::string::npos) << socket;
    EXPECT_NE(socket.find("FileDescriptorName=varlink\n"), std::string::npos) << socket;
    EXPECT_NE(socket.find("PassPIDFD=yes\n"), std::string::npos) << socket;
    EXPECT_NE(socket.find("AcceptFileDescriptors=no\n"), std::string::npos) << socket;
    EXPECT_NE(service.find("Type=notify\n"), std::string::npos) << service;
    EXPECT_NE(service.find("ExecStart=/usr/bin/svckit-test-fixture\n"), std::string::npos) << service;

    Process printed(dir, {.args = {"--print-units"}, .env = {socketEnv()}});
    ASSERT_EQ(printed.wait(), 0);
    EXPECT_NE(printed.out().find("# svckit-test-fixture.socket\n" + socket), std::string::npos)
        << printed.out();
}

TEST_F(ServiceLifecycle, NotActivatedItBindsTheSpecAddressAndServes) {
    NotifySocket notify(dir.path() + "/notify");
    Process p(dir, {.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}});
    ASSERT_TRUE(notify.waitFor("READY=1")) << notify.seen() << p.err();
    EXPECT_NE(pidCall(socketPath()).find(std::format("\"pid\":{}", p.pid())), std::string::npos);
    // It bound the spec's own address.
    struct stat st {};
    ASSERT_EQ(::stat(socketPath().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0);
    EXPECT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
}

TEST_F(ServiceLifecycle, ListenServesOnTheGivenPath) {
    std::string other = dir.path() + "/other.sock";
    Process p(dir, {.args = {"--listen=" + other}, .env = {socketEnv()}});
    EXPECT_NE(pidCall(other).find(std::format("\"pid\":{}", p.pid())), std::string::npos) << p.err();
    EXPECT_FALSE(std::filesystem::exists(socketPath()));
    p.signal(SIGINT);
    EXPECT_EQ(p.wait(), 0);
}

TEST_F(ServiceLifecycle, ActivatedItServesThePassedSocketAndNotifies) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << notify.seen() << p.err();
    EXPECT_NE(notify.seen().find("STATUS="), std::string::npos) << notify.seen();
    EXPECT_NE(notify.seen().find("STATUS=fixture started"), std::string::npos) << notify.seen();
    EXPECT_NE(pidCall(socketPath()).find(std::format("\"pid\":{}", p.pid())), std::string::npos);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0);
}

TEST_F(ServiceLifecycle, ActivatedSocketWithoutPassPidfdRefusesToStartNamingTheUnitLine) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}};
    launch.passFds.push_back(activatedSocket(socketPath(), false));
    Process p(dir, std::move(launch));
    EXPECT_EQ(p.wait(), 1);
    EXPECT_NE(p.err().find("PassPIDFD=yes"), std::string::npos) << p.err();
    EXPECT_EQ(notify.seen().find("READY=1"), std::string::npos);
}

TEST_F(ServiceLifecycle, CheckVerifiesTheActivationAndExits) {
    Launch good{.args = {"--check"}, .env = {socketEnv()}};
    good.passFds.push_back(activatedSocket(socketPath()));
    Process ok(dir, std::move(good));
    EXPECT_EQ(ok.wait(), 0) << ok.err();
    EXPECT_NE(ok.out().find("varlink: " + socketPath()), std::string::npos) << ok.out();

    std::string badPath = dir.path() + "/bad.sock";
    Launch bad{.args = {"--check"}, .env = {{"FIXTURE_SOCKET", badPath}}};
    bad.passFds.push_back(activatedSocket(badPath, false));
    Process refused(dir, std::move(bad));
    EXPECT_EQ(refused.wait(), 1);
    EXPECT_NE(refused.err().find("PassPIDFD=yes"), std::string::npos) << refused.err();

    Process notActivated(dir, {.args = {"--check"}, .env = {socketEnv()}});
    EXPECT_EQ(notActivated.wait(), 1);
    EXPECT_NE(notActivated.err().find("Not socket-activated"), std::string::npos) << notActivated.err();
}

TEST_F(ServiceLifecycle, FailingStartStopsTheServiceWithItsError) {
    Process p(dir, {.env = {socketEnv(), {"FIXTURE_FAIL_START", "1"}}});
    EXPECT_EQ(p.wait(), 1);
    EXPECT_NE(p.err().find("start() refused as asked"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, ADeclarationErrorInTheConstructorRefusesToRun) {
    Process p(dir, {.env = {socketEnv(), {"FIXTURE_MISSPELT", "1"}}});
    EXPECT_EQ(p.wait(), 1);
    EXPECT_NE(p.err().find("has no method 'Pdi' to restrict"), std::string::npos) << p.err();
    EXPECT_FALSE(std::filesystem::exists(socketPath())) << "it bound its socket anyway";
}

TEST_F(ServiceLifecycle, SigtermFinishesInFlightCallsThenExitsZero) {
    NotifySocket notify(dir.path() + "/notify");
    Process p(dir, {.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}});
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    UniqueFd client = connectWhenReady(socketPath());
    ASSERT_TRUE(client);
    std::string frame =
        std::string(R"({"method":"io.svckit.test.Fixture.Later","parameters":{"ms":400}})") + '\0';
    ASSERT_EQ(::send(client.get(), frame.data(), frame.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frame.size()));
    std::this_thread::sleep_for(100ms);
    p.signal(SIGTERM);
    ASSERT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
    // No new connections once stopping: the socket it bound itself is closed, so a connect is refused...
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(test::connectTo(SOCK_STREAM, socketPath())) << "a connection was accepted while stopping";
    // ...but the call in flight gets its reply before the exit.
    EXPECT_EQ(readReply(client.get(), 3000ms), "{}"); // a reply without parameters, as sd-varlink sends it
    EXPECT_EQ(p.wait(), 0) << p.err();
    EXPECT_NE(p.err().find("stop() with 1 call(s) pending"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, ExitsWhenIdleAndStaysWhileAConnectionIsOpen) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}, {"FIXTURE_EXIT_ON_IDLE_MS", "300"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    UniqueFd held = connectWhenReady(socketPath());
    ASSERT_TRUE(held);
    EXPECT_FALSE(p.wait(900ms).has_value()) << "exited although a connection was open";
    held.reset();
    auto code = p.wait(3000ms);
    ASSERT_TRUE(code.has_value()) << "did not exit when idle";
    EXPECT_EQ(*code, 0);
    EXPECT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
}

TEST_F(ServiceLifecycle, WatchdogPingsWhenTheManagerAsks) {
    NotifySocket notify(dir.path() + "/notify");
    Process p(dir, {.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}, .watchdog = true});
    ASSERT_TRUE(notify.waitFor("READY=1")) << notify.seen() << p.err();
    // WATCHDOG_USEC is 200 ms: pings keep coming at about half that, not just one at start-up.
    std::this_thread::sleep_for(700ms);
    (void)notify.waitFor("never sent", 10ms);
    size_t pings = 0;
    for (size_t at = notify.seen().find("WATCHDOG=1"); at != std::string::npos;
         at = notify.seen().find("WATCHDOG=1", at + 1))
        ++pings;
    EXPECT_GE(pings, 4u) << notify.seen();
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0);
}

TEST_F(ServiceLifecycle, AcceptedConnectionIsServedAndTheServiceEndsWithIt) {
    // Accept=yes: systemd accepts and passes the one connected socket, as done here.
    UniqueFd listening = activatedSocket(socketPath());
    UniqueFd ours = test::connectTo(SOCK_STREAM, socketPath());
    ASSERT_TRUE(ours);
    UniqueFd accepted(::accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted);
    Launch launch{.env = {socketEnv(), {"FIXTURE_ACCEPT", "1"}}};
    launch.passFds.push_back(std::move(accepted));
    Process p(dir, std::move(launch));
    std::string reply = callOnce(ours.get(), R"({"method":"io.svckit.test.Fixture.Pid"})");
    EXPECT_NE(reply.find(std::format("\"pid\":{}", p.pid())), std::string::npos) << reply << p.err();
    ours.reset();
    EXPECT_EQ(p.wait(3000ms), 0) << p.err();
}

TEST_F(ServiceLifecycle, WorkersServeTheSameSocketFromSeveralProcesses) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}, {"FIXTURE_WORKERS", "2"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    EXPECT_NE(notify.seen().find("2 worker processes"), std::string::npos) << notify.seen();
    // Many connections held open at once: both workers take some.
    std::set<std::string> pids;
    std::vector<UniqueFd> held;
    for (int i = 0; i < 200 && pids.size() < 2; ++i) {
        UniqueFd fd = connectWhenReady(socketPath());
        ASSERT_TRUE(fd);
        std::string reply = callOnce(fd.get(), R"({"method":"io.svckit.test.Fixture.Pid"})");
        auto at = reply.find("\"pid\":");
        ASSERT_NE(at, std::string::npos) << reply;
        pids.insert(reply.substr(at + 6, reply.find_first_not_of("0123456789", at + 6) - at - 6));
        held.push_back(std::move(fd));
        if (i % 10 == 9)
            std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(pids.size(), 2u);
    EXPECT_EQ(pids.count(std::to_string(p.pid())), 0u) << "the supervisor itself served a call";
    held.clear();
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
    EXPECT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
}

TEST_F(ServiceLifecycle, AWorkerThatDiesIsReplaced) {
    // Kill the worker that answers: the service keeps answering, from a new process.
    Launch launch{.env = {socketEnv(), {"FIXTURE_WORKERS", "2"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    std::string reply = pidCall(socketPath());
    auto at = reply.find("\"pid\":");
    ASSERT_NE(at, std::string::npos) << reply << p.err();
    pid_t worker = std::stoi(reply.substr(at + 6));
    ASSERT_NE(worker, p.pid());
    ASSERT_EQ(::kill(worker, SIGKILL), 0);
    std::this_thread::sleep_for(200ms);
    for (int i = 0; i < 20; ++i) {
        std::string again = pidCall(socketPath());
        ASSERT_NE(again.find("\"pid\":"), std::string::npos) << again << p.err();
        EXPECT_EQ(again.find(std::format("\"pid\":{}", worker)), std::string::npos);
    }
    EXPECT_NE(p.err().find(std::format("Worker {} was killed by signal 9", worker)), std::string::npos)
        << p.err();
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
}

} // namespace
} // namespace svckit
