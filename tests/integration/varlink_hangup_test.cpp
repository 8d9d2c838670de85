// A caller that leaves while its call runs is noticed: the server closes the connection (its socket, its
// pidfd, its per-UID slot) while a deferred `more` call is unanswered, while a call that may upgrade is
// pending, and while a stream waits for room, and a stream whose caller is gone stops producing.
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

std::string fdList() {
    std::string list;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code error;
        list += " " + std::filesystem::read_symlink(entry.path(), error).string();
    }
    return list;
}

size_t openFds() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// Methods whose calls the server keeps unanswered: a subscription that never sends anything, a call that may
// upgrade and is never answered, and a stream that sends while there is room and then waits for more.
struct Unanswered {
    std::vector<std::shared_ptr<DeferredCall>> held; // the loop thread's
    std::atomic<int64_t> produced{0};
    std::atomic<int> streamsAlive{0};

    Extras extras() {
        return Extras{.methods =
                          [this](Server&, EventLoop&) {
                              auto hold = [this](Call& call) {
                                  held.push_back(std::make_shared<DeferredCall>(call.defer()));
                              };
                              return std::vector<Method>{
                                  Method{.name = "Subscribe", .handler = hold, .requiresMore = true},
                                  Method{.name = "MayUpgrade", .handler = hold, .supportsUpgrade = true},
                                  Method{.name = "Stream",
                                         .handler = [this](Call& call) { stream(call); },
                                         .requiresMore = true}};
                          },
                      .setup = {},
                      .teardown = [this] { held.clear(); }};
    }

    struct Producer {
        Unanswered& owner;
        DeferredCall call;
        Producer(Unanswered& o, DeferredCall c) : owner(o), call(std::move(c)) { ++owner.streamsAlive; }
        ~Producer() { --owner.streamsAlive; }
        Producer(const Producer&) = delete;
        Producer& operator=(const Producer&) = delete;
    };

    static void resume(const std::shared_ptr<Producer>& producer) {
        while (producer->call.writable()) {
            int64_t i = producer->owner.produced++;
            if (!producer->call.replyContinues([&](JsonWriter& w) { w.field("i", i); }))
                return;
        }
        producer->call.whenWritable([producer] { resume(producer); });
    }

    void stream(Call& call) { resume(std::make_shared<Producer>(*this, call.defer())); }
};

// Waits until the server has one connection (the observer's) and this process is back to `fds` open fds.
::testing::AssertionResult released(Client& observer, size_t fds) {
    bool gone = waitFor([&] { return serverState(observer).connections == 1; }, 10'000ms);
    bool closed = waitFor([&] { return openFds() <= fds; }, 10'000ms);
    if (gone && closed)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "after 10 s the server still has " << serverState(observer).connections << " connections and "
           << openFds() << " fds are open (" << fds << " before the caller):" << fdList();
}

TEST(VarlinkHangup, ClosesTheConnectionOfACallerThatLeavesDuringAnUnansweredMoreCall) {
    Unanswered methods;
    TestServer server({}, false, methods.extras());
    Client observer(server.path());
    ASSERT_EQ(serverState(observer).connections, 1);
    size_t fds = openFds();
    {
        Client caller(server.path());
        ASSERT_TRUE(caller.call(R"({"method":"org.example.test.Subscribe","more":true})"));
        ASSERT_TRUE(waitFor([&] { return serverState(observer).inFlight == 1; }, 10'000ms));
    }
    EXPECT_TRUE(released(observer, fds));
    EXPECT_EQ(serverState(observer).inFlight, 0);
}

TEST(VarlinkHangup, ClosesTheConnectionOfACallerThatLeavesWhileItsUpgradeIsPending) {
    Unanswered methods;
    TestServer server({}, false, methods.extras());
    Client observer(server.path());
    ASSERT_EQ(serverState(observer).connections, 1);
    size_t fds = openFds();
    {
        Client caller(server.path());
        ASSERT_TRUE(caller.call(R"({"method":"org.example.test.MayUpgrade","upgrade":true})"));
        ASSERT_TRUE(waitFor([&] { return serverState(observer).inFlight == 1; }, 10'000ms));
    }
    EXPECT_TRUE(released(observer, fds));
}

TEST(VarlinkHangup, ClosesTheConnectionOfACallerThatShutsDownWritingAndThenLeaves) {
    Unanswered methods;
    TestServer server({}, false, methods.extras());
    Client observer(server.path());
    ASSERT_EQ(serverState(observer).connections, 1);
    size_t fds = openFds();
    {
        Client caller(server.path());
        ASSERT_TRUE(caller.call(R"({"method":"org.example.test.Subscribe","more":true})"));
        ASSERT_TRUE(waitFor([&] { return serverState(observer).inFlight == 1; }, 10'000ms));
        // Half-closed, the caller can still read its replies: the connection stays.
        ASSERT_EQ(::shutdown(caller.fd(), SHUT_WR), 0);
        ASSERT_FALSE(caller.closedByServer(300ms));
        EXPECT_EQ(serverState(observer).connections, 2);
    }
    EXPECT_TRUE(released(observer, fds));
}

TEST(VarlinkHangup, StopsAStreamWhoseCallerLeaves) {
    Unanswered methods;
    ServerOptions options;
    options.outputSoftLimit = 64 * 1024;
    TestServer server(options, false, methods.extras());
    Client observer(server.path());
    ASSERT_EQ(serverState(observer).connections, 1);
    size_t fds = openFds();
    int64_t stalled = 0;
    {
        Client caller(server.path());
        ASSERT_TRUE(caller.call(R"({"method":"org.example.test.Stream","more":true})"));
        // The caller reads nothing: the stream fills the socket and the soft limit, then waits.
        ASSERT_TRUE(waitFor([&] { return methods.produced.load() > 0; }, 10'000ms));
        ASSERT_TRUE(waitFor(
            [&] {
                int64_t before = methods.produced.load();
                std::this_thread::sleep_for(100ms);
                return methods.produced.load() == before;
            },
            10'000ms));
        stalled = methods.produced.load();
    }
    EXPECT_TRUE(released(observer, fds));
    EXPECT_TRUE(waitFor([&] { return methods.streamsAlive.load() == 0; }, 10'000ms))
        << "the stream outlived its caller";
    EXPECT_EQ(methods.produced.load(), stalled) << "the stream went on after its caller left";
}

} // namespace
} // namespace svckit::varlink
