// Guarded varlink methods over real sockets: a caller the policy refuses gets
// org.varlink.service.PermissionDenied and the handler never runs; others are served. The refused caller is a
// real process of another uid (a forked child that drops to nobody before connecting).
#include <svckit/authorization.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/varlink.hpp>

#include "../unit/activation_test_support.hpp"
#include "varlink_server_thread.hpp"

#include <poll.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>

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

// org.example.guarded (Admin guarded by rootOnly, Status open) on a socket in a temporary directory that any
// uid may connect to, served from its own thread.
class GuardedServer {
public:
    GuardedServer()
        : dir_(makeDir()), path_(dir_ + "/varlink.sock"),
          thread_([this](EventLoop&, Server& server) { return setup(server); }) {}
    ~GuardedServer() {
        thread_.stop();
        std::filesystem::remove_all(dir_);
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    std::atomic<int> adminRan{0};
    std::atomic<int> statusRan{0};

private:
    static std::string makeDir() {
        char pattern[] = "/tmp/svckit-auth-XXXXXX";
        std::string dir = ::mkdtemp(pattern);
        ::chmod(dir.c_str(), 0755);
        return dir;
    }

    std::string setup(Server& server) {
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
            return guarded.error().message();
        if (restrict(*guarded, "Adnim", Policy::rootOnly()).has_value())
            return "a misspelt method name was accepted";
        if (auto ok = server.addInterface(std::move(*guarded)); !ok)
            return ok.error().message();
        // bindSocket applies the spec's SocketMode= (0666), so the unprivileged caller may connect.
        SocketSpec spec{
            .name = "varlink", .address = path_, .passPidfd = true, .acceptFileDescriptors = false};
        auto fd = bindSocket(spec);
        if (!fd)
            return fd.error().message();
        if (auto ok = server.listen(std::move(*fd), spec); !ok)
            return ok.error().message();
        return "";
    }

    std::string dir_, path_;
    test::VarlinkServerThread thread_;
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
