// The Service lifecycle and the standard command line, on a real service binary (service_fixture.cpp) started
// the way systemd starts it: listening fds on 3.., LISTEN_* set for the child's own pid, NOTIFY_SOCKET
// pointing at a datagram socket the test reads READY=1/STATUS=/STOPPING=1/WATCHDOG=1 from.
#include <svckit/socket_options.hpp>
#include <svckit/unique_fd.hpp>

#include "../unit/activation_test_support.hpp"
#include "child_process.hpp"

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

using test::readReply;
using test::serviceFixturePath;

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

using test::readFile;

void touch(const std::string& path) {
    std::ofstream created(path);
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
    bool waitFor(std::string_view line, std::chrono::milliseconds timeout = 30000ms) {
        return waitForCount(line, 1, timeout);
    }
    // Waits until `line` has been seen `count` times.
    bool waitForCount(std::string_view line, size_t count, std::chrono::milliseconds timeout = 30000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (occurrences(seen_, line) >= count)
                return true;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return false;
            pollfd p{.fd = fd_.get(), .events = POLLIN, .revents = 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
                continue;
            receiveOne();
        }
    }
    // Reads every datagram already queued, without waiting (after the sender exited: all it sent).
    const std::string& drain() {
        pollfd p{.fd = fd_.get(), .events = POLLIN, .revents = 0};
        while (::poll(&p, 1, 0) > 0)
            receiveOne();
        return seen_;
    }
    [[nodiscard]] const std::string& seen() const { return seen_; }
    [[nodiscard]] const std::string& path() const { return path_; }
    static size_t occurrences(std::string_view text, std::string_view line) {
        size_t n = 0;
        for (size_t at = text.find(line); at != std::string::npos; at = text.find(line, at + 1))
            ++n;
        return n;
    }

private:
    void receiveOne() {
        char buffer[4096];
        ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0)
            seen_ += std::string(buffer, static_cast<size_t>(n)) + "\n";
    }

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
class Process : public test::ChildProcess {
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
            for (auto& [k, v] : launch.env)
                ::setenv(k.c_str(), v.c_str(), 1);
            (void)test::becomeActivated(std::move(launch.passFds), launch.fdNames);
            if (launch.watchdog) {
                ::setenv("WATCHDOG_USEC", "200000", 1);
                ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
            }
            std::string exe = serviceFixturePath();
            std::vector<char*> argv{exe.data()};
            for (auto& a : launch.args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(exe.c_str(), argv.data());
            ::_exit(127);
        }
    }
    // Waits until the stderr holds `text` `count` times (false at the deadline, or once it exited without).
    bool waitForErr(std::string_view text, size_t count = 1, std::chrono::milliseconds timeout = 30000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            bool exited = !running(); // before reading: what it wrote before exiting is in the file then
            if (NotifySocket::occurrences(err(), text) >= count)
                return true;
            if (exited || std::chrono::steady_clock::now() >= deadline)
                return false;
            std::this_thread::sleep_for(10ms);
        }
    }
    [[nodiscard]] std::string out() const { return readFile(out_); }
    [[nodiscard]] std::string err() const { return readFile(err_); }

private:
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

// One varlink call: the raw reply (without its NUL), or "" when none came.
std::string callOnce(int fd, std::string_view message, std::chrono::milliseconds timeout = 30000ms) {
    std::string frame(message);
    frame.push_back('\0');
    if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size()))
        return {};
    return readReply(fd, timeout);
}

UniqueFd connectWhenReady(const std::string& path, std::chrono::milliseconds timeout = 30000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (UniqueFd fd = test::connectTo(SOCK_STREAM, path))
            return fd;
        std::this_thread::sleep_for(10ms);
    }
    return UniqueFd();
}

constexpr std::string_view pidMethod = R"({"method":"io.svckit.test.Fixture.Pid"})";

std::string pidCall(const std::string& path) {
    UniqueFd fd = connectWhenReady(path);
    return fd ? callOnce(fd.get(), pidMethod) : std::string();
}

// The pid in a Pid() reply, or 0.
pid_t pidOf(std::string_view reply) {
    auto at = reply.find("\"pid\":");
    return at == std::string_view::npos ? 0 : std::atoi(std::string(reply.substr(at + 6)).c_str());
}

// Sends one call without waiting for its reply.
bool sendCall(int fd, std::string_view message) {
    std::string frame(message);
    frame.push_back('\0');
    return ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(frame.size());
}

// Connects until the socket refuses (nothing listens on it any more); false when it still accepts at the
// deadline.
bool refusedBefore(const std::string& path, std::chrono::milliseconds timeout = 30000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (test::connectTo(SOCK_STREAM, path)) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// The anonymous inodes a process holds open, by kind ("[eventpoll]", "[signalfd]", ...): what an event loop
// is made of.
std::multiset<std::string> anonInodes(pid_t pid, std::initializer_list<std::string_view> kinds) {
    std::multiset<std::string> found;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(std::format("/proc/{}/fd", pid), ec)) {
        std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
        for (std::string_view kind : kinds)
            if (target == std::format("anon_inode:{}", kind))
                found.insert(std::string(kind));
    }
    return found;
}

class ServiceLifecycle : public ::testing::Test {
protected:
    void SetUp() override {
        if (serviceFixturePath().empty())
            GTEST_SKIP() << "SVCKIT_SERVICE_FIXTURE is not set";
    }
    TempDir dir;
    std::string socketPath() const { return dir.path() + "/varlink.sock"; }
    std::pair<std::string, std::string> socketEnv() const { return {"FIXTURE_SOCKET", socketPath()}; }

    // A connection to socketPath() with one call in flight that the fixture holds (Later, answered at SIGUSR1
    // or never), once the service reports it pending.
    UniqueFd connectWithCallPending(NotifySocket& notify, const Process& p) {
        UniqueFd client = connectWhenReady(socketPath());
        EXPECT_TRUE(client);
        if (!client)
            return client;
        EXPECT_TRUE(sendCall(client.get(),
                             R"({"method":"io.svckit.test.Fixture.Later","parameters":{"ms":600000}})"));
        EXPECT_TRUE(notify.waitFor("STATUS=1 call(s) pending")) << notify.seen() << p.err();
        return client;
    }

    // The pids of the two workers serving socketPath(), each from a reply: the worker that answers first is
    // made to hold its loop (Hold), so the next connection can only be accepted by the other one.
    std::pair<pid_t, pid_t> bothWorkers(Process& p) {
        static int round = 0;
        std::string release = std::format("{}/release-{}", dir.path(), round++);
        UniqueFd first = connectWhenReady(socketPath());
        pid_t a = first ? pidOf(callOnce(first.get(), pidMethod)) : 0;
        if (a == 0 || !sendCall(first.get(), std::format(R"({{"method":"io.svckit.test.Fixture.Hold",)"
                                                         R"("parameters":{{"path":"{}"}}}})",
                                                         release)))
            return {a, 0};
        bool holding = p.waitForErr(std::format("fixture: pid {} holds its loop", a));
        UniqueFd second = holding ? connectWhenReady(socketPath()) : UniqueFd();
        pid_t b = second ? pidOf(callOnce(second.get(), pidMethod)) : 0;
        touch(release);
        EXPECT_EQ(readReply(first.get()), "{}") << "the held worker did not go on";
        return {a, b};
    }
};

TEST_F(ServiceLifecycle, HelpNamesTheStandardFlagsAndTheSockets) {
    Process p(dir, {.args = {"--help"}, .env = {socketEnv()}});
    ASSERT_EQ(p.wait(), 0);
    std::string out = p.out();
    for (std::string_view flag :
         {"--help", "--version", "--print-units", "--listen=PATH", "--listen=NAME=PATH", "--check"})
        EXPECT_NE(out.find(flag), std::string::npos) << flag << " missing in:\n" << out;
    EXPECT_NE(out.find(socketPath()), std::string::npos) << out;
    EXPECT_NE(out.find("svckit Service test fixture"), std::string::npos) << out;
}

TEST_F(ServiceLifecycle, HelpListsTheServiceOptionsUnderTheStandardOnes) {
    Process p(dir, {.args = {"--help"}, .env = {socketEnv()}});
    ASSERT_EQ(p.wait(), 0);
    std::string out = p.out();
    auto standard = out.find("--check");
    auto own = out.find("Options of svckit-test-fixture:");
    auto greeting = out.find("-g --greeting=TEXT");
    auto loud = out.find("--loud");
    ASSERT_NE(greeting, std::string::npos) << out;
    ASSERT_NE(loud, std::string::npos) << out;
    EXPECT_NE(out.find("What start() logs (fixture option)"), std::string::npos) << out;
    ASSERT_NE(own, std::string::npos) << out;
    EXPECT_LT(standard, own) << out;
    EXPECT_LT(own, greeting) << out;
}

TEST_F(ServiceLifecycle, AServiceOptionReachesTheServiceItsConstructorAndStart) {
    for (const auto& [args, greeting] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{}, "hello"}, {{"--greeting=bonjour"}, "bonjour"}, {{"-g", "hi", "--loud"}, "HI"}}) {
        Process p(dir, {.args = args, .env = {socketEnv()}});
        EXPECT_TRUE(p.waitForErr(std::format("fixture: greeting '{}'", greeting))) << p.err();
        p.signal(SIGTERM);
        EXPECT_EQ(p.wait(), 0);
    }
}

TEST_F(ServiceLifecycle, AServiceOptionsRefusedValueIsAUsageError) {
    Process p(dir, {.args = {"--greeting="}, .env = {socketEnv()}});
    ASSERT_EQ(p.wait(), 2);
    EXPECT_NE(p.err().find("--greeting: the greeting must not be empty"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, AnOptionWithoutItsArgumentIsAUsageError) {
    Process p(dir, {.args = {"--greeting"}, .env = {socketEnv()}});
    ASSERT_EQ(p.wait(), 2);
    EXPECT_NE(p.err().find("Option '--greeting' needs an argument"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, VersionPrintsNameAndVersion) {
    Process p(dir, {.args = {"--version"}});
    ASSERT_EQ(p.wait(), 0);
    EXPECT_EQ(p.out(), "svckit-test-fixture 1.2.3\n");
}

TEST_F(ServiceLifecycle, UnknownOptionIsAUsageError) {
    for (std::string_view option : {"--frobnicate", "-x"}) {
        Process p(dir, {.args = {std::string(option)}});
        ASSERT_EQ(p.wait(), 2) << option;
        EXPECT_NE(p.err().find(std::format("Unknown option '{}'", option)), std::string::npos) << p.err();
    }
}

TEST_F(ServiceLifecycle, APositionalArgumentIsAUsageErrorWhenTheServiceTakesNone) {
    Process p(dir, {.args = {"stray"}});
    ASSERT_EQ(p.wait(), 2);
    EXPECT_NE(p.err().find("Unknown argument 'stray'"), std::string::npos) << p.err();
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

TEST_F(ServiceLifecycle, ListenNameServesEachNamedSocketOnItsPathAndOnlyThose) {
    std::string secondSpec = dir.path() + "/second-spec.sock";
    std::string first = dir.path() + "/first.sock";
    std::string second = dir.path() + "/second.sock";
    {
        // The old form for the first socket and NAME=PATH for the second, in either order.
        Process p(dir, {.args = {"--listen=second=" + second, "--listen", first},
                        .env = {socketEnv(), {"FIXTURE_SECOND_SOCKET", secondSpec}}});
        EXPECT_NE(pidCall(first).find(std::format("\"pid\":{}", p.pid())), std::string::npos) << p.err();
        EXPECT_NE(pidCall(second).find(std::format("\"pid\":{}", p.pid())), std::string::npos) << p.err();
        EXPECT_FALSE(std::filesystem::exists(socketPath()));
        EXPECT_FALSE(std::filesystem::exists(secondSpec));
        p.signal(SIGTERM);
        EXPECT_EQ(p.wait(), 0);
    }
    std::filesystem::remove(first);
    std::filesystem::remove(second);
    {
        // Only the socket named is served: the first one is bound nowhere.
        Process p(dir, {.args = {"--listen=second=" + second},
                        .env = {socketEnv(), {"FIXTURE_SECOND_SOCKET", secondSpec}}});
        EXPECT_NE(pidCall(second).find(std::format("\"pid\":{}", p.pid())), std::string::npos) << p.err();
        EXPECT_FALSE(std::filesystem::exists(socketPath()));
        EXPECT_FALSE(std::filesystem::exists(secondSpec));
        p.signal(SIGTERM);
        EXPECT_EQ(p.wait(), 0);
    }
}

TEST_F(ServiceLifecycle, ListenWithAnUnknownSocketNameIsAUsageErrorNamingTheSockets) {
    Process p(dir, {.args = {"--listen=third=" + dir.path() + "/x.sock"},
                    .env = {socketEnv(), {"FIXTURE_SECOND_SOCKET", dir.path() + "/second-spec.sock"}}});
    ASSERT_EQ(p.wait(), 2);
    EXPECT_NE(p.err().find("the spec has no socket 'third' (its sockets: varlink, second)"),
              std::string::npos)
        << p.err();
}

TEST_F(ServiceLifecycle, ListenNamingASocketTwiceIsAUsageError) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--listen=varlink=" + dir.path() + "/a.sock",
                                   "--listen=" + dir.path() + "/b.sock"},
          std::vector<std::string>{"--listen=varlink=" + dir.path() + "/a.sock",
                                   "--listen=varlink=" + dir.path() + "/b.sock"}}) {
        Process p(dir, {.args = args, .env = {socketEnv()}});
        EXPECT_EQ(p.wait(), 2) << p.err();
    }
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/a.sock"));
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

// The caller who started a socket-activated service is answered before READY=1 wakes systemd (and the log
// line the journal): its call is already queued when the service starts (bench/activation, start-up time).
TEST_F(ServiceLifecycle, TheCallQueuedAtStartIsAnsweredBeforeReady) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    UniqueFd caller = test::connectTo(SOCK_STREAM, socketPath());
    ASSERT_TRUE(caller);
    ASSERT_TRUE(sendCall(caller.get(), pidMethod));
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << notify.seen() << p.err();
    pollfd ready{.fd = caller.get(), .events = POLLIN, .revents = 0};
    EXPECT_EQ(::poll(&ready, 1, 0), 1) << "no reply yet when READY=1 arrived";
    EXPECT_EQ(pidOf(readReply(caller.get())), p.pid()) << p.err();
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
    // Everything it sent before exiting is queued on the notify socket by now.
    EXPECT_EQ(notify.drain().find("READY=1"), std::string::npos) << notify.seen();
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
    UniqueFd client = connectWithCallPending(notify, p); // answered at SIGUSR1 below, not by its own timer
    ASSERT_FALSE(HasFailure());
    p.signal(SIGTERM);
    ASSERT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
    // No new connections once stopping: the socket it bound itself is closed (STOPPING=1 comes first, so
    // connect until refused)...
    EXPECT_TRUE(refusedBefore(socketPath())) << "connections are still accepted while stopping";
    // ...while it still runs, waiting for the call in flight...
    ASSERT_TRUE(p.running()) << "it exited instead of waiting for the call in flight: " << p.err();
    // ...which gets its reply before the exit.
    p.signal(SIGUSR1);
    EXPECT_EQ(readReply(client.get()), "{}"); // a reply without parameters, as sd-varlink sends it
    EXPECT_EQ(p.wait(), 0) << p.err();
    EXPECT_NE(p.err().find("stop() with 1 call(s) pending"), std::string::npos) << p.err();
    EXPECT_EQ(p.err().find("still unanswered"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, SigtermGivesUnansweredCallsTenSecondsThenExitsZero) {
    NotifySocket notify(dir.path() + "/notify");
    Process p(dir, {.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}});
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    // A call that is not answered before the drain timeout (10 s, a constant of service.cpp).
    UniqueFd client = connectWithCallPending(notify, p);
    ASSERT_FALSE(HasFailure());
    auto sent = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    auto code = p.wait(60000ms);
    auto took = std::chrono::steady_clock::now() - sent;
    ASSERT_TRUE(code.has_value()) << "still running 60 s after SIGTERM: " << p.err();
    EXPECT_EQ(*code, 0) << p.err();
    // The timer starts at SIGTERM, so no load can make this shorter; 30 s leaves room for a slow machine.
    EXPECT_GE(took, 9500ms) << "it did not wait for the call in flight";
    EXPECT_LE(took, 30000ms);
    EXPECT_NE(p.err().find("Stopping with 1 call(s) still unanswered after 10 s"), std::string::npos)
        << p.err();
    EXPECT_EQ(readReply(client.get()), "") << "the unanswered call got a reply";
}

TEST_F(ServiceLifecycle, AHandlerThatReturnsWithoutAnsweringGetsEio) {
    Process p(dir, {.env = {socketEnv()}});
    UniqueFd client = connectWhenReady(socketPath());
    ASSERT_TRUE(client) << p.err();
    EXPECT_EQ(callOnce(client.get(), R"({"method":"io.svckit.test.Fixture.Forget"})"),
              R"({"error":"io.systemd.System","parameters":{"origin":"linux","errno":5,"errnoName":"EIO"}})");
    // The connection goes on.
    EXPECT_EQ(pidOf(callOnce(client.get(), pidMethod)), p.pid());
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
}

TEST_F(ServiceLifecycle, ExitsWhenIdleAndStaysWhileAConnectionIsOpen) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(),
                          {"NOTIFY_SOCKET", notify.path()},
                          {"FIXTURE_EXIT_ON_IDLE_MS", "300"},
                          {"FIXTURE_ALIVE_AFTER_MS", "900"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    // Connected before the service starts (it waits in the socket's queue): open from the beginning.
    UniqueFd held = test::connectTo(SOCK_STREAM, socketPath());
    ASSERT_TRUE(held);
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    // The fixture's timer was armed after the idle timer, with three times its timeout: once it has fired,
    // the idle timeout has passed too, on the service's own loop.
    ASSERT_TRUE(p.waitForErr("alive after 900 ms")) << "exited although a connection was open: " << p.err();
    EXPECT_EQ(pidOf(callOnce(held.get(), pidMethod)), p.pid()) << p.err();
    EXPECT_EQ(p.err().find("No connection for"), std::string::npos) << p.err();
    held.reset();
    auto code = p.wait();
    ASSERT_TRUE(code.has_value()) << "did not exit when idle";
    EXPECT_EQ(*code, 0);
    EXPECT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
    EXPECT_NE(p.err().find("No connection for 300 ms: exiting until the next one"), std::string::npos)
        << p.err();
}

TEST_F(ServiceLifecycle, AClientWaitingInTheListenQueuePostponesTheIdleExit) {
    NotifySocket notify(dir.path() + "/notify");
    std::string release = dir.path() + "/release";
    Launch launch{.env = {socketEnv(),
                          {"NOTIFY_SOCKET", notify.path()},
                          {"FIXTURE_EXIT_ON_IDLE_MS", "300"},
                          {"FIXTURE_HOLD_LOOP_UNTIL", release}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    // The fixture holds its loop once the idle timeout has passed with no connection: the idle timer is due
    // and runs first when the loop goes on, while the client below still waits in the listening socket's
    // queue.
    ASSERT_TRUE(notify.waitFor("STATUS=holding the loop")) << notify.seen() << p.err();
    UniqueFd queued = test::connectTo(SOCK_STREAM, socketPath());
    ASSERT_TRUE(queued);
    touch(release);
    EXPECT_EQ(pidOf(callOnce(queued.get(), pidMethod)), p.pid())
        << "the queued client was not served: " << p.err();
    EXPECT_EQ(p.err().find("No connection for"), std::string::npos) << p.err();
    queued.reset();
    EXPECT_EQ(p.wait(), 0) << p.err();
    EXPECT_NE(p.err().find("No connection for 300 ms"), std::string::npos) << p.err();
}

TEST_F(ServiceLifecycle, WatchdogPingsWhenTheManagerAsks) {
    NotifySocket notify(dir.path() + "/notify");
    Process p(dir, {.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}}, .watchdog = true});
    ASSERT_TRUE(notify.waitFor("READY=1")) << notify.seen() << p.err();
    // WATCHDOG_USEC is 200 ms: pings keep coming at about half that, not just one at start-up.
    EXPECT_TRUE(notify.waitForCount("WATCHDOG=1", 4)) << notify.seen();
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
    EXPECT_EQ(p.wait(), 0) << p.err();
}

TEST_F(ServiceLifecycle, WorkersServeTheSameSocketFromSeveralProcesses) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(), {"NOTIFY_SOCKET", notify.path()}, {"FIXTURE_WORKERS", "2"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    EXPECT_NE(notify.seen().find("2 worker processes"), std::string::npos) << notify.seen();
    // While the worker that answered first holds its loop, another process answers.
    auto [a, b] = bothWorkers(p);
    ASSERT_NE(a, 0) << p.err();
    ASSERT_NE(b, 0) << "no second worker answered: " << p.err();
    EXPECT_NE(a, b);
    EXPECT_NE(a, p.pid()) << "the supervisor itself served a call";
    EXPECT_NE(b, p.pid()) << "the supervisor itself served a call";
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
    EXPECT_TRUE(notify.waitFor("STOPPING=1")) << notify.seen();
}

TEST_F(ServiceLifecycle, AWorkerThatDiesIsReplaced) {
    // Kill a worker: the service goes on serving from two processes, the survivor and a new one.
    Launch launch{.env = {socketEnv(), {"FIXTURE_WORKERS", "2"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    auto [killed, survivor] = bothWorkers(p);
    ASSERT_NE(killed, 0) << p.err();
    ASSERT_NE(survivor, 0) << p.err();
    ASSERT_EQ(::kill(killed, SIGKILL), 0);
    ASSERT_TRUE(p.waitForErr(std::format("Worker {} was killed by signal 9", killed))) << p.err();
    auto [c, d] = bothWorkers(p);
    ASSERT_NE(c, 0) << p.err();
    ASSERT_NE(d, 0) << "only one worker answers after the kill: " << p.err();
    std::set<pid_t> now{c, d};
    EXPECT_EQ(now.count(killed), 0u);
    EXPECT_EQ(now.count(survivor), 1u);
    EXPECT_EQ(now.count(p.pid()), 0u) << "the supervisor itself served a call";
    EXPECT_EQ(now.size(), 2u);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
}

TEST_F(ServiceLifecycle, TheSupervisorRunsNoLoopAndAReplacementWorkerInheritsNone) {
    // Workers are forked from a process without any event loop: the supervisor holds no epoll instance and no
    // signalfd, and a worker forked later to replace one holds what a first one holds, nothing of a loop
    // more.
    Launch launch{.env = {socketEnv(), {"FIXTURE_WORKERS", "2"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    auto [killed, survivor] = bothWorkers(p);
    ASSERT_NE(killed, 0) << p.err();
    ASSERT_NE(survivor, 0) << p.err();
    auto loopKinds = {std::string_view("[eventpoll]"), std::string_view("[signalfd]")};
    EXPECT_TRUE(anonInodes(p.pid(), loopKinds).empty()) << "the supervisor holds an event loop's fds";
    auto firstWorker = anonInodes(survivor, loopKinds);
    EXPECT_FALSE(firstWorker.empty()) << "a worker without a loop?";
    ASSERT_EQ(::kill(killed, SIGKILL), 0);
    ASSERT_TRUE(p.waitForErr(std::format("Worker {} was killed by signal 9", killed))) << p.err();
    auto [c, d] = bothWorkers(p);
    pid_t replacement = c == survivor ? d : c;
    ASSERT_NE(replacement, 0) << p.err();
    ASSERT_NE(replacement, survivor) << p.err();
    EXPECT_EQ(anonInodes(replacement, loopKinds), firstWorker);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
}

TEST_F(ServiceLifecycle, WorkerReplacementIsCappedThenTheServiceExitsOne) {
    // Every worker fails in start(): 2 workers, replaced at most 10 x 2 times, then the service gives up.
    Launch launch{.env = {socketEnv(), {"FIXTURE_WORKERS", "2"}, {"FIXTURE_FAIL_START", "1"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    auto code = p.wait(60000ms);
    ASSERT_TRUE(code.has_value()) << "still replacing workers after 60 s";
    EXPECT_EQ(*code, 1) << p.err();
    std::string err = p.err();
    // Each death is logged until the one past the cap (the 21st) stops the service.
    EXPECT_EQ(NotifySocket::occurrences(err, " exited with 1\n"), 21u) << err;
    // 2 workers and 20 replacements (the last may be stopped before its start()).
    size_t started = NotifySocket::occurrences(err, "start() refused as asked");
    EXPECT_GE(started, 21u) << err;
    EXPECT_LE(started, 22u) << err;
}

TEST_F(ServiceLifecycle, ExitOnIdleDoesNotApplyWithWorkers) {
    NotifySocket notify(dir.path() + "/notify");
    Launch launch{.env = {socketEnv(),
                          {"NOTIFY_SOCKET", notify.path()},
                          {"FIXTURE_WORKERS", "2"},
                          {"FIXTURE_EXIT_ON_IDLE_MS", "200"},
                          {"FIXTURE_ALIVE_AFTER_MS", "600"}}};
    launch.passFds.push_back(activatedSocket(socketPath()));
    Process p(dir, std::move(launch));
    ASSERT_TRUE(notify.waitFor("READY=1")) << p.err();
    // Each worker's timer fires three idle timeouts after its loop started, without any connection.
    ASSERT_TRUE(p.waitForErr("alive after 600 ms", 2)) << "a worker exited when idle: " << p.err();
    EXPECT_TRUE(p.running()) << p.err();
    EXPECT_NE(pidOf(pidCall(socketPath())), 0) << p.err();
    EXPECT_EQ(p.err().find("No connection for"), std::string::npos) << p.err();
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
}

} // namespace
} // namespace svckit
