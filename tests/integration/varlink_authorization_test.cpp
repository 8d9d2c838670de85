// Guarded varlink methods over real sockets: a caller the policy refuses gets
// org.varlink.service.PermissionDenied and the handler never runs; others are served. The refused caller is a
// real process of another uid (a forked child that drops to nobody before connecting).
#include <svckit/authorization.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/varlink.hpp>

#include "../unit/activation_test_support.hpp"

#include <poll.h>
#include <grp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

namespace svckit::varlink {
namespace {

constexpr uid_t nobody = 65534;

std::string exchange(int fd, std::string_view message) {
    std::string frame(message);
    frame.push_back('\0');
    if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) < 0)
        return "send failed";
    std::string reply;
    for (;;) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 5000) <= 0)
            return "timeout";
        char c = 0;
        if (::recv(fd, &c, 1, 0) <= 0)
            return "closed";
        if (c == '\0')
            return reply;
        reply.push_back(c);
    }
}

class GuardedServer {
public:
    GuardedServer() {
        char pattern[] = "/tmp/svckit-auth-XXXXXX";
        dir_ = ::mkdtemp(pattern);
        ::chmod(dir_.c_str(), 0755);
        path_ = dir_ + "/varlink.sock";
        stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        std::promise<std::string> ready;
        auto started = ready.get_future();
        thread_ = std::thread([this, &ready] { run(ready); });
        std::string error = started.get();
        if (!error.empty()) {
            thread_.join();
            throw std::runtime_error(error);
        }
    }
    ~GuardedServer() {
        uint64_t one = 1;
        (void)::write(stop_.get(), &one, sizeof one);
        thread_.join();
        std::filesystem::remove_all(dir_);
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    std::atomic<int> adminRan{0};
    std::atomic<int> statusRan{0};

private:
    void run(std::promise<std::string>& ready) {
        auto loop = EventLoop::create();
        auto server = Server::create(*loop);
        auto handler = [](std::atomic<int>& counter) {
            return [&counter](Call& call) {
                ++counter;
                (void)call.reply([&](JsonWriter& w) { w.field("uid", call.peer().uid); });
            };
        };
        Interface interface {
            .name = "org.example.guarded",
            .description = "interface org.example.guarded\n"
                           "method Admin() -> (uid: int)\nmethod Status() -> (uid: int)\n",
            .methods = {
                {.name = "Admin", .handler = handler(adminRan)},
                {.name = "Status", .handler = handler(statusRan)}
            }
        };
        auto guarded = restrict(std::move(interface), "Admin", Policy::rootOnly());
        if (!guarded)
            return ready.set_value(guarded.error().message());
        if (restrict(*guarded, "Adnim", Policy::rootOnly()).has_value())
            return ready.set_value("a misspelt method name was accepted");
        if (auto ok = server->addInterface(std::move(*guarded)); !ok)
            return ready.set_value(ok.error().message());
        SocketSpec spec{
            .name = "varlink", .address = path_, .passPidfd = true, .acceptFileDescriptors = false};
        auto fd = bindSocket(spec);
        if (!fd)
            return ready.set_value(fd.error().message());
        if (auto ok = server->listen(std::move(*fd), spec); !ok)
            return ready.set_value(ok.error().message());
        auto stopper = loop->addIo(stop_.get(), EPOLLIN, [&](uint32_t) { loop->exit(0); });
        ready.set_value("");
        (void)loop->run();
    }

    std::string dir_, path_;
    UniqueFd stop_;
    std::thread thread_;
};

// Runs `body` in a child that has become uid/gid nobody; returns what it returned.
std::string asNobody(const std::function<std::string()>& body) {
    return test::runInChild([&] {
        if (::setgroups(0, nullptr) < 0 || ::setresgid(nobody, nobody, nobody) < 0 ||
            ::setresuid(nobody, nobody, nobody) < 0)
            return std::string("could not become nobody");
        return body();
    });
}

TEST(VarlinkAuthorization, RootPassesTheRootOnlyMethod) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root";
    GuardedServer server;
    UniqueFd fd = test::connectTo(SOCK_STREAM, server.path());
    ASSERT_TRUE(fd);
    EXPECT_EQ(exchange(fd.get(), R"({"method":"org.example.guarded.Admin"})"), R"({"parameters":{"uid":0}})");
    EXPECT_EQ(server.adminRan.load(), 1);
}

TEST(VarlinkAuthorization, AnotherUidGetsPermissionDeniedAndTheHandlerNeverRuns) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to act as another uid";
    GuardedServer server;
    std::string path = server.path();
    std::string verdict = asNobody([&] {
        UniqueFd fd = test::connectTo(SOCK_STREAM, path);
        if (!fd)
            return std::string("connect failed");
        std::string denied = exchange(fd.get(), R"({"method":"org.example.guarded.Admin"})");
        // An error without parameters has no "parameters" key, as sd-varlink sends it.
        if (denied != R"({"error":"org.varlink.service.PermissionDenied"})")
            return "Admin answered " + denied;
        // The same connection goes on: an unguarded method is served.
        std::string status = exchange(fd.get(), R"({"method":"org.example.guarded.Status"})");
        if (status != std::format(R"({{"parameters":{{"uid":{}}}}})", nobody))
            return "Status answered " + status;
        return std::string();
    });
    EXPECT_EQ(verdict, "");
    EXPECT_EQ(server.adminRan.load(), 0);
    EXPECT_EQ(server.statusRan.load(), 1);
}

} // namespace
} // namespace svckit::varlink
