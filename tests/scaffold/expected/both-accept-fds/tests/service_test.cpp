// hello run as its own process on sockets of its own (--listen: no systemd needed) and called over them,
// as any client would, checking that it sees this test process as the caller. The binary is the one meson
// built, named by the environment variable SERVICE_BINARY (meson.build sets it).
#include <svckit/varlink_client.hpp>

#include "org.example.Hello.varlink.hpp"
#include "org.example.Hello1_proxy.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <format>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// A directory of its own for the sockets, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "hello-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()))
            path_ = pattern;
    }
    ~TempDir() {
        if (!path_.empty())
            std::filesystem::remove_all(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

// The service binary with the given arguments, in a child process; ended (SIGTERM) and reaped by the
// destructor.
class ServiceProcess {
public:
    explicit ServiceProcess(std::vector<std::string> arguments) {
        const char* binary = std::getenv("SERVICE_BINARY");
        if (!binary)
            return;
        arguments.insert(arguments.begin(), binary);
        std::vector<char*> argv;
        for (std::string& argument : arguments)
            argv.push_back(argument.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execv(binary, argv.data());
            ::_exit(127);
        }
    }
    ~ServiceProcess() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    ServiceProcess(const ServiceProcess&) = delete;
    ServiceProcess& operator=(const ServiceProcess&) = delete;

    [[nodiscard]] bool started() const noexcept { return pid_ > 0; }

private:
    pid_t pid_ = -1;
};

// Retries `attempt` (which returns something testable as bool) until it succeeds or `limit` has passed: the
// service needs a moment to bind its sockets.
template <class Attempt>
auto within(std::chrono::seconds limit, Attempt attempt) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        auto result = attempt();
        if (result || std::chrono::steady_clock::now() >= deadline)
            return result;
        std::this_thread::sleep_for(10ms);
    }
}

// A regular file of `size` bytes, open for reading (unlinked at once).
int openFileOfSize(const std::string& directory, size_t size) {
    std::string path = directory + "/data";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        std::string data(size, 'x');
        if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
            ::close(fd);
            fd = -1;
        }
        ::unlink(path.c_str());
    }
    return fd;
}

// A client of the generated proxy on a direct (peer-to-peer) connection of its own.
class HelloProxy final : public sdbus::ProxyInterfaces<org::example::Hello1_proxy> {
public:
    explicit HelloProxy(std::unique_ptr<sdbus::IConnection> connection)
        : ProxyInterfaces(std::move(connection), sdbus::ServiceName("org.example.Hello1"),
                          sdbus::ObjectPath("/org/example/Hello1")) {
        registerProxy();
    }
    ~HelloProxy() { unregisterProxy(); }
    HelloProxy(const HelloProxy&) = delete;
    HelloProxy& operator=(const HelloProxy&) = delete;
};

// Connects once the service accepts connections. (The socket is probed with a plain connect() first:
// sdbus-c++ throws when it cannot connect.)
std::unique_ptr<HelloProxy> connectDBus(const std::string& path) {
    bool listening = within(20s, [&] {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof address.sun_path - 1);
        bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
        if (fd >= 0)
            ::close(fd);
        return ok;
    });
    if (!listening)
        return nullptr;
    return std::make_unique<HelloProxy>(sdbus::createDirectBusConnection("unix:path=" + path));
}

class HelloTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(service_.started()) << "SERVICE_BINARY is not set"; }

    TempDir dir_;
    std::string varlinkPath_ = dir_.path() + "/varlink.sock";
    std::string dbusPath_ = dir_.path() + "/dbus.sock";
    std::vector<std::string> arguments_{"--listen=varlink=" + varlinkPath_, "--listen=dbus=" + dbusPath_};
    ServiceProcess service_{arguments_};
};

TEST_F(HelloTest, VarlinkHelloGreetsTheCallerByItsUidAndPid) {
    auto connection = within(20s, [&] { return svckit::varlink::Client::connect(varlinkPath_); });
    ASSERT_TRUE(connection) << connection.error().message();
    org::example::Hello::Client client(*connection);

    auto reply = client.Hello({.name = "test"});
    ASSERT_TRUE(reply) << reply.error().message();
    ASSERT_TRUE(*reply) << "error reply " << reply->error().name();
    EXPECT_EQ((*reply)->uid, static_cast<int64_t>(::getuid()));
    EXPECT_EQ((*reply)->pid, static_cast<int64_t>(::getpid()));
    std::string expected = std::format("Hello, test! You are uid {}, pid {}.", ::getuid(), ::getpid());
    EXPECT_EQ((*reply)->greeting, expected);
}

TEST_F(HelloTest, VarlinkInspectTellsTheKindAndSizeOfThePassedFd) {
    auto connection = within(20s, [&] { return svckit::varlink::Client::connect(varlinkPath_); });
    ASSERT_TRUE(connection) << connection.error().message();
    org::example::Hello::Client client(*connection);
    int fd = openFileOfSize(dir_.path(), 42);
    ASSERT_GE(fd, 0);

    const int fds[] = {fd};
    auto reply = client.Inspect({.fd = 0}, fds);
    ::close(fd);
    ASSERT_TRUE(reply) << reply.error().message();
    ASSERT_TRUE(*reply) << "error reply " << reply->error().name();
    EXPECT_EQ((*reply)->kind, "regular file");
    EXPECT_EQ((*reply)->size, 42);

    // Without an fd: the interface's error.
    auto none = client.Inspect({.fd = 0});
    ASSERT_TRUE(none) << none.error().message();
    ASSERT_FALSE(*none);
    EXPECT_EQ(none->error().name(), "org.example.Hello.NoSuchFd");
}

TEST_F(HelloTest, DBusHelloGreetsTheCallerByItsUidAndPid) {
    auto proxy = connectDBus(dbusPath_);
    ASSERT_TRUE(proxy) << "no D-Bus connection to " << dbusPath_;

    auto [greeting, uid, pid] = proxy->Hello("test");
    EXPECT_EQ(uid, ::getuid());
    EXPECT_EQ(pid, static_cast<uint32_t>(::getpid()));
    std::string expected = std::format("Hello, test! You are uid {}, pid {}.", ::getuid(), ::getpid());
    EXPECT_EQ(greeting, expected);
}

TEST_F(HelloTest, DBusInspectTellsTheKindAndSizeOfThePassedFd) {
    auto proxy = connectDBus(dbusPath_);
    ASSERT_TRUE(proxy) << "no D-Bus connection to " << dbusPath_;
    int fd = openFileOfSize(dir_.path(), 42);
    ASSERT_GE(fd, 0);

    auto [kind, size] = proxy->Inspect(sdbus::UnixFd(fd, sdbus::adopt_fd));
    EXPECT_EQ(kind, "regular file");
    EXPECT_EQ(size, 42);
}

} // namespace
