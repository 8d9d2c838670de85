// The raw endpoint (svckit/raw.hpp) inside a real Service, over real sockets: a service defined here runs in
// a forked child through svckit::run<T>() (its sockets bound with --listen=NAME=PATH, or passed as systemd
// passes them), and the test is its client.
#include <svckit/raw.hpp>
#include <svckit/service.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/unique_fd.hpp>

#include "../unit/activation_test_support.hpp"
#include "child_process.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <format>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace svckit {
namespace {

using namespace std::chrono_literals;
using test::readFile;

// How the service under test is declared; set by each test before it forks the service.
struct Config {
    std::chrono::milliseconds exitOnIdle{0};
    bool acceptStream = false; // the "stream" socket is Accept=yes
    std::string streamAddress = "/run/svckit-test-raw.sock";
    bool handlerless = false;  // "stream" gets no handler
    bool rawOnVarlink = false; // addRaw() names a varlink socket
};
Config config;

// Sockets:
//   stream   raw, SOCK_STREAM: each message is answered "UID PID\n" with its sender (the connection's peer)
//   packets  raw, SOCK_SEQPACKET: each message is answered "UID PID\n" with the sender of that very message
//   driven   raw, SOCK_STREAM: the handler drives the connection itself (watch), echoes, closes at EOF
//   varlink  a varlink socket beside them (no interface)
class RawService : public Service {
public:
    RawService() : Service(spec()) {
        if (!config.handlerless)
            addRaw("stream", {.message = [](raw::Connection& c, raw::Message& m) { answer(c, m); }});
        addRaw("packets", {.message = [](raw::Connection& c, raw::Message& m) { answer(c, m); }});
        addRaw("driven", {.connected = [](raw::Connection& c) { drive(c); }});
        if (config.rawOnVarlink)
            addRaw("varlink", {.message = [](raw::Connection&, raw::Message&) {}});
    }

private:
    static ServiceSpec spec() {
        SocketSpec stream{.name = "stream",
                          .address = config.streamAddress,
                          .protocol = Protocol::Raw,
                          .accept = config.acceptStream,
                          .passCredentials = true,
                          .passPidfd = true};
        SocketSpec packets = stream;
        packets.name = "packets";
        packets.address = "/run/svckit-test-raw.seqpacket";
        packets.type = SocketType::SeqPacket;
        packets.accept = false;
        SocketSpec driven = stream;
        driven.name = "driven";
        driven.address = "/run/svckit-test-raw-driven.sock";
        driven.accept = false;
        return {.name = "svckit-test-raw",
                .description = "svckit raw endpoint test",
                .version = "1",
                .sockets = {stream, packets, driven,
                            SocketSpec{.name = "varlink", .address = "/run/svckit-test-raw-varlink.sock"}},
                .exitOnIdle = config.exitOnIdle};
    }

    static void answer(raw::Connection& connection, raw::Message& message) {
        std::string reply = message.sender ? std::format("{} {}\n", message.sender->uid, message.sender->pid)
                                           : std::format("error {}\n", message.sender.error().message());
        if (auto sent = connection.send(reply); !sent || *sent != reply.size())
            connection.close();
    }

    static void drive(raw::Connection& connection) {
        auto ok = connection.watch(POLLIN, [&connection](uint32_t) {
            char buffer[256];
            ssize_t n = ::recv(connection.fd(), buffer, sizeof buffer, MSG_DONTWAIT);
            if (n < 0 && errno == EAGAIN)
                return;
            if (n <= 0) {
                connection.close();
                return;
            }
            (void)connection.send(std::string_view(buffer, static_cast<size_t>(n)));
        });
        if (!ok)
            connection.close();
    }
};

// The service in a child process: run<RawService>(argv), stderr to a file; `passFds` on 3.. as systemd passes
// them (LISTEN_FDNAMES `names`).
class Child : public test::ChildProcess {
public:
    Child(const std::string& dir, std::vector<std::string> args, std::vector<UniqueFd> passFds = {},
          const std::string& names = {}) {
        err_ = dir + "/stderr";
        pid_ = ::fork();
        if (pid_ != 0)
            return;
        int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ::dup2(err, 2);
        size_t n = test::becomeActivated(std::move(passFds), names);
        // As after exec: the test's own fds (its clients' ends) are not the service's.
        ::close_range(3 + static_cast<unsigned>(n), ~0U, 0);
        args.insert(args.begin(), "svckit-test-raw");
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int code = run<RawService>(static_cast<int>(args.size()), argv.data());
        std::fflush(nullptr);
        ::_exit(code);
    }
    [[nodiscard]] std::string err() const { return readFile(err_); }

private:
    std::string err_;
};

UniqueFd connectWhenReady(int type, const std::string& path, std::chrono::milliseconds timeout = 30000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (UniqueFd fd = test::connectTo(type, path))
            return fd;
        std::this_thread::sleep_for(10ms);
    }
    return UniqueFd();
}

// One line (without its newline), or "" when none came in time or the peer closed.
std::string readLine(int fd, std::chrono::milliseconds timeout = 30000ms) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 50) <= 0)
            continue;
        char buffer[256];
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0)
            return {};
        line.append(buffer, static_cast<size_t>(n));
        if (line.ends_with('\n')) {
            line.pop_back();
            return line;
        }
    }
    return {};
}

std::string ask(int fd, std::string_view request = "who?") {
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
        return {};
    return readLine(fd);
}

std::string me() {
    return std::format("{} {}", ::getuid(), ::getpid());
}

// Whether the peer closed the connection (EOF) within the timeout.
bool closedByPeer(int fd, std::chrono::milliseconds timeout = 30000ms) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
        return false;
    char c = 0;
    return ::recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

class RawEndpoint : public ::testing::Test {
protected:
    void SetUp() override {
        config = Config{};
        char pattern[] = "/tmp/svckit-raw-XXXXXX";
        dir = ::mkdtemp(pattern);
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    [[nodiscard]] std::string path(std::string_view name) const { return std::format("{}/{}", dir, name); }
    // --listen=NAME=PATH for each socket named.
    [[nodiscard]] std::vector<std::string> listen(std::initializer_list<std::string_view> names) const {
        std::vector<std::string> args;
        for (std::string_view name : names)
            args.push_back(std::format("--listen={}={}", name, path(name)));
        return args;
    }
    std::string dir;
};

TEST_F(RawEndpoint, AStreamConnectionIsAnsweredWithTheCallersIdentity) {
    Child service(dir, listen({"stream"}));
    UniqueFd client = connectWhenReady(SOCK_STREAM, path("stream"));
    ASSERT_TRUE(client) << service.err();
    EXPECT_EQ(ask(client.get()), me()) << service.err();
    // The connection goes on: each message is answered.
    EXPECT_EQ(ask(client.get()), me()) << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(RawEndpoint, ListenNamesEveryRawSocketAndServesOnlyThose) {
    Child service(dir, listen({"stream", "packets"}));
    UniqueFd stream = connectWhenReady(SOCK_STREAM, path("stream"));
    UniqueFd packets = connectWhenReady(SOCK_SEQPACKET, path("packets"));
    ASSERT_TRUE(stream) << service.err();
    ASSERT_TRUE(packets) << service.err();
    EXPECT_EQ(ask(stream.get()), me()) << service.err();
    EXPECT_EQ(ask(packets.get()), me()) << service.err();
    EXPECT_FALSE(std::filesystem::exists(path("driven")));
    EXPECT_NE(service.err().find(std::format("{} (stream, raw)", path("stream"))), std::string::npos)
        << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(RawEndpoint, AnActivatedListeningSocketIsServedAsSystemdPassesIt) {
    // systemd passes a blocking listening socket carrying the unit's options.
    config.streamAddress = path("activated");
    UniqueFd listening = test::boundSocket(SOCK_STREAM, path("activated"));
    ASSERT_TRUE(listening);
    ASSERT_TRUE(applyOptions(listening.get(), SocketSpec{.name = "stream",
                                                         .address = path("activated"),
                                                         .protocol = Protocol::Raw,
                                                         .passCredentials = true,
                                                         .passPidfd = true})
                    .has_value());
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(listening));
    Child service(dir, {}, std::move(fds), "stream");
    for (int i = 0; i < 2; ++i) {
        UniqueFd client = connectWhenReady(SOCK_STREAM, path("activated"));
        ASSERT_TRUE(client);
        EXPECT_EQ(ask(client.get()), me()) << "connection " << i << ": " << service.err();
    }
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(RawEndpoint, ASeqpacketMessageIsAnsweredWithItsOwnSendersIdentity) {
    Child service(dir, listen({"packets"}));
    UniqueFd client = connectWhenReady(SOCK_SEQPACKET, path("packets"));
    ASSERT_TRUE(client) << service.err();
    EXPECT_EQ(ask(client.get()), me()) << service.err();
    // Another process sends on the same connection: that message's sender is the other process, although
    // the connection's peer (taken at accept) is this one.
    pid_t other = ::fork();
    if (other == 0) {
        std::string_view request = "who?";
        ::_exit(::send(client.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
                        static_cast<ssize_t>(request.size())
                    ? 0
                    : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(other, &status, 0), other);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(readLine(client.get()), std::format("{} {}", ::getuid(), other)) << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(RawEndpoint, AnAcceptYesConnectionIsServedAndTheServiceEndsWithIt) {
    config.acceptStream = true;
    config.streamAddress = path("accept");
    UniqueFd listening = test::boundSocket(SOCK_STREAM, path("accept"));
    ASSERT_TRUE(listening);
    UniqueFd client = test::connectTo(SOCK_STREAM, path("accept"));
    ASSERT_TRUE(client);
    UniqueFd accepted(::accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted);
    // What systemd >= 258 gives a connection of a socket with PassCredentials=yes and PassPIDFD=yes.
    ASSERT_TRUE(applyOptions(accepted.get(), SocketSpec{.name = "stream",
                                                        .address = path("accept"),
                                                        .protocol = Protocol::Raw,
                                                        .accept = true,
                                                        .passCredentials = true,
                                                        .passPidfd = true})
                    .has_value());
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(accepted));
    Child service(dir, {}, std::move(fds), "stream");
    EXPECT_EQ(ask(client.get()), me()) << service.err();
    // While its connection is open the instance stays, however long the client waits between messages.
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(service.running()) << "ended although its connection was open: " << service.err();
    EXPECT_EQ(ask(client.get()), me()) << service.err();
    client.reset();
    EXPECT_EQ(service.wait(), 0) << "the service did not end with its one connection: " << service.err();
}

TEST_F(RawEndpoint, ExitOnIdleWaitsWhileARawConnectionIsOpen) {
    config.exitOnIdle = 300ms;
    Child service(dir, listen({"stream", "driven"}));
    UniqueFd held = connectWhenReady(SOCK_STREAM, path("driven"));
    ASSERT_TRUE(held) << service.err();
    EXPECT_EQ(ask(held.get(), "ping\n"), "ping") << service.err();
    // Three idle timeouts with the connection open: still there.
    std::this_thread::sleep_for(900ms);
    EXPECT_TRUE(service.running()) << "exited although a raw connection was open: " << service.err();
    EXPECT_EQ(service.err().find("No connection for"), std::string::npos) << service.err();
    // Not stopping either: it still accepts.
    UniqueFd another = test::connectTo(SOCK_STREAM, path("stream"));
    ASSERT_TRUE(another) << service.err();
    EXPECT_EQ(ask(another.get()), me()) << service.err();
    another.reset();
    EXPECT_EQ(ask(held.get(), "pong\n"), "pong") << service.err();
    held.reset();
    auto code = service.wait();
    ASSERT_TRUE(code.has_value()) << "did not exit when idle: " << service.err();
    EXPECT_EQ(*code, 0) << service.err();
    EXPECT_NE(service.err().find("No connection for 300 ms"), std::string::npos) << service.err();
}

TEST_F(RawEndpoint, GracefulStopWaitsForAConnectionTheHandlerDrivesUntilItCloses) {
    Child service(dir, listen({"stream", "driven"}));
    UniqueFd driven = connectWhenReady(SOCK_STREAM, path("driven"));
    UniqueFd reading = connectWhenReady(SOCK_STREAM, path("stream"));
    ASSERT_TRUE(driven) << service.err();
    ASSERT_TRUE(reading) << service.err();
    EXPECT_EQ(ask(driven.get(), "one\n"), "one") << service.err();
    EXPECT_EQ(ask(reading.get()), me()) << service.err();
    service.signal(SIGTERM);
    // Stopped accepting, but the driven connection is still served until it ends.
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (test::connectTo(SOCK_STREAM, path("stream")) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(service.running()) << service.err();
    EXPECT_EQ(ask(driven.get(), "two\n"), "two") << service.err();
    driven.reset();
    auto code = service.wait(8000ms); // well before the 10 s drain timeout
    ASSERT_TRUE(code.has_value()) << "still running after its driven connection closed: " << service.err();
    EXPECT_EQ(*code, 0) << service.err();
    EXPECT_EQ(service.err().find("Stopping with"), std::string::npos) << service.err();
    // The connection svckit read for the handler had nothing in flight: closed at exit.
    EXPECT_TRUE(closedByPeer(reading.get(), 1000ms));
}

TEST_F(RawEndpoint, ARawSocketWithoutAHandlerRefusesToStart) {
    config.handlerless = true;
    Child service(dir, listen({"packets"}));
    auto code = service.wait();
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 1) << service.err();
    EXPECT_NE(service.err().find("Socket 'stream' is a raw socket without a handler"), std::string::npos)
        << service.err();
    EXPECT_NE(service.err().find("addRaw(\"stream\", handler)"), std::string::npos) << service.err();
}

TEST_F(RawEndpoint, AddRawOnAVarlinkSocketRefusesToStart) {
    config.rawOnVarlink = true;
    Child service(dir, listen({"packets"}));
    auto code = service.wait();
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 1) << service.err();
    EXPECT_NE(service.err().find("socket 'varlink' is a varlink socket, not a raw one"), std::string::npos)
        << service.err();
}

} // namespace
} // namespace svckit
