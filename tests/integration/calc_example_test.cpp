// The calc example (examples/calc) run as its own process on a socket path, called over the blocking client.
// Its Fibonacci stream goes up to F(92), the largest that fits in int64: the fuzzer of the varlink server's
// input (tests/fuzz/varlink_server_input.cpp, with calc's handlers) found that the last step computed F(93)
// anyway, a signed overflow that UBSan reports (the ASan+UBSan build runs this test with UBSan fatal).
#include <svckit/varlink_client.hpp>

#include "../unit/activation_test_support.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

namespace svckit::varlink {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

// svckit-example-calc --listen=PATH in a child process; ended (and reaped) by the destructor.
class CalcProcess {
public:
    explicit CalcProcess(const std::string& path) {
        const char* binary = std::getenv("SVCKIT_CALC_EXAMPLE");
        if (!binary)
            return;
        std::string listen = "--listen=" + path;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl(binary, binary, listen.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~CalcProcess() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    CalcProcess(const CalcProcess&) = delete;
    CalcProcess& operator=(const CalcProcess&) = delete;

    [[nodiscard]] bool started() const noexcept { return pid_ > 0; }

private:
    pid_t pid_ = -1;
};

Result<Client> connectWithin(const std::string& path, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        auto client = Client::connect(path);
        if (client || std::chrono::steady_clock::now() >= deadline)
            return client;
        std::this_thread::sleep_for(10ms);
    }
}

TEST(CalcExample, StreamsFibonacciUpToTheLargestThatFitsWithoutOverflowing) {
    TempDir dir;
    std::string path = dir.path() + "/calc.sock";
    CalcProcess calc(path);
    ASSERT_TRUE(calc.started()) << "SVCKIT_CALC_EXAMPLE is not set";
    auto client = connectWithin(path, 20s);
    ASSERT_TRUE(client) << client.error().message();

    ASSERT_TRUE(client->send("io.svckit.example.Calc.Fibonacci", R"({"n":92})", CallFlags{.more = true}));
    int64_t last = -1;
    for (int64_t i = 0; i < 92; ++i) {
        auto reply = client->receive(20s);
        ASSERT_TRUE(reply) << "reply " << i << ": " << reply.error().message();
        ASSERT_FALSE(reply->error()) << *reply->error();
        EXPECT_EQ(reply->parameters()["index"].int64(), i);
        EXPECT_EQ(reply->continues(), i < 91);
        last = reply->parameters()["value"].int64().value_or(-1);
    }
    EXPECT_EQ(last, INT64_C(4660046610375530309)); // F(91): index 91 is the 92nd number, from F(0)

    // The service is still there for the next call.
    auto again = client->call("io.svckit.example.Calc.Apply", R"({"op":"add","a":1,"b":2})");
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again->parameters()["result"].int64(), 3);
}

} // namespace
} // namespace svckit::varlink
