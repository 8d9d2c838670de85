// The calc example's SumFile reads the fd a caller passes without blocking the service: a pipe (or FIFO, or
// socket) is read from the loop as data arrives and the call is answered when the writer closes, while other
// callers are served meanwhile; a regular file is read at once. The service runs as its own binary
// (svckit-example-calc --listen=PATH) in a child process.
#include <svckit/unique_fd.hpp>
#include <svckit/varlink_client.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

namespace svckit::varlink {
namespace {

using namespace std::chrono_literals;

class CalcProcess {
public:
    CalcProcess() {
        const char* binary = std::getenv("SVCKIT_CALC_EXAMPLE");
        if (!binary || !*binary)
            return;
        char pattern[] = "/tmp/svckit-calc-XXXXXX";
        if (!::mkdtemp(pattern))
            return;
        dir_ = pattern;
        path_ = dir_ + "/calc.sock";
        std::string listen = "--listen=" + path_;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl(binary, binary, listen.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (auto deadline = std::chrono::steady_clock::now() + 20s;
             std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms))
            if (Client::connect(path_))
                return;
        path_.clear();
    }
    ~CalcProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        if (!dir_.empty())
            std::filesystem::remove_all(dir_);
    }
    CalcProcess(const CalcProcess&) = delete;
    CalcProcess& operator=(const CalcProcess&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    std::string path_;
    pid_t pid_ = -1;
};

Client connectTo(const CalcProcess& calc) {
    auto client = Client::connect(calc.path());
    if (!client)
        throw std::runtime_error(client.error().message());
    return std::move(*client);
}

TEST(CalcSumFile, ReadsAPipeFromTheLoopWhileOtherCallersAreServed) {
    CalcProcess calc;
    if (calc.path().empty())
        GTEST_SKIP() << "SVCKIT_CALC_EXAMPLE is not set or the example did not start";
    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]);
    UniqueFd writeEnd(pipeFds[1]);

    Client summer = connectTo(calc);
    int passed[] = {readEnd.get()};
    ASSERT_TRUE(summer.send("io.svckit.example.Calc.SumFile", R"({"fd":0})", {}, passed));
    readEnd.reset(); // the service holds the only read end now; nobody writes yet

    // Another caller is served while the pipe stays silent (a generous deadline: the figure is in the
    // report).
    Client other = connectTo(calc);
    auto started = std::chrono::steady_clock::now();
    auto applied = other.call("io.svckit.example.Calc.Apply", R"({"op":"add","a":1,"b":2})");
    ASSERT_TRUE(applied) << applied.error().message();
    EXPECT_FALSE(applied->error()) << *applied->error();
    EXPECT_EQ(applied->parameters()["result"].int64(), 3);
    std::cout << "Apply served in "
              << std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                       started)
                     .count()
              << " us while SumFile waits on a silent pipe\n";

    // No answer for the pipe yet: its writer is still open.
    auto early = summer.receive(200ms);
    ASSERT_FALSE(early) << "SumFile answered before the writer closed: "
                        << (early->error() ? *early->error() : std::string("a sum"));
    EXPECT_EQ(early.error().code(), ETIMEDOUT);

    std::string numbers = "1\n2\n39\n";
    ASSERT_EQ(::write(writeEnd.get(), numbers.data(), numbers.size()), static_cast<ssize_t>(numbers.size()));
    writeEnd.reset();
    auto summed = summer.receive(10s);
    ASSERT_TRUE(summed) << summed.error().message();
    ASSERT_FALSE(summed->error()) << *summed->error();
    EXPECT_EQ(summed->parameters()["sum"].int64(), 42);
    EXPECT_EQ(summed->parameters()["lines"].int64(), 3);
}

TEST(CalcSumFile, ReadsANamedFifoWhenItsWriterCloses) {
    CalcProcess calc;
    if (calc.path().empty())
        GTEST_SKIP() << "SVCKIT_CALC_EXAMPLE is not set or the example did not start";
    std::string fifo = calc.dir() + "/numbers";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    UniqueFd readEnd(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    UniqueFd writeEnd(::open(fifo.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(readEnd && writeEnd);

    Client summer = connectTo(calc);
    int passed[] = {readEnd.get()};
    ASSERT_TRUE(summer.send("io.svckit.example.Calc.SumFile", R"({"fd":0})", {}, passed));
    readEnd.reset();
    Client other = connectTo(calc);
    auto applied = other.call("io.svckit.example.Calc.Apply", R"({"op":"multiply","a":6,"b":7})");
    ASSERT_TRUE(applied) << applied.error().message();
    EXPECT_EQ(applied->parameters()["result"].int64(), 42);

    ASSERT_EQ(::write(writeEnd.get(), "5\n", 2), 2);
    writeEnd.reset();
    auto summed = summer.receive(10s);
    ASSERT_TRUE(summed) << summed.error().message();
    ASSERT_FALSE(summed->error()) << *summed->error();
    EXPECT_EQ(summed->parameters()["sum"].int64(), 5);
}

TEST(CalcSumFile, StillReadsARegularFileAtOnce) {
    CalcProcess calc;
    if (calc.path().empty())
        GTEST_SKIP() << "SVCKIT_CALC_EXAMPLE is not set or the example did not start";
    std::string file = calc.dir() + "/numbers.txt";
    std::ofstream(file) << "10\n20\n";
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    Client summer = connectTo(calc);
    int passed[] = {fd.get()};
    auto summed = summer.call("io.svckit.example.Calc.SumFile", R"({"fd":0})", passed);
    ASSERT_TRUE(summed) << summed.error().message();
    ASSERT_FALSE(summed->error()) << *summed->error();
    EXPECT_EQ(summed->parameters()["sum"].int64(), 30);
}

} // namespace
} // namespace svckit::varlink
