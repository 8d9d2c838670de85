// hello run as its own process on sockets of its own (--listen: no systemd needed) and called over them,
// as any client would, checking that it sees this test process as the caller. The binary is the one meson
// built, named by the environment variable SERVICE_BINARY (meson.build sets it).
#include <svckit/varlink_client.hpp>

#include "org.example.Hello.varlink.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <format>
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

class HelloTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(service_.started()) << "SERVICE_BINARY is not set"; }

    TempDir dir_;
    std::string varlinkPath_ = dir_.path() + "/varlink.sock";
    std::vector<std::string> arguments_{"--listen=" + varlinkPath_};
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

} // namespace
