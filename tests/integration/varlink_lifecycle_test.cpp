// What a service's life cycle needs from the varlink server: a callback once it has had no connection for a
// while (exit-on-idle), stopping to accept while connected clients are still served, and knowing when every
// call has been answered (a graceful stop).
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

struct Observed {
    std::atomic<int> idle{0};
    std::atomic<int> drained{0};
    std::vector<DeferredCall> held;           // on the server's thread only
    std::vector<UpgradedConnection> upgraded; // on the server's thread only
    std::atomic<int> upgrades{0};
};

// A server with methods that reach the Server itself: StopAccepting, InFlight (replies with callsInFlight()),
// Drain (registers whenDrained, then replies with callsInFlight()), Hold (defers the call until Release) and
// Release (answers every held call with {"text":"late"}).
Extras lifecycleExtras(Observed& observed, std::chrono::milliseconds idleAfter) {
    return Extras{
        .methods =
            [&observed](Server& server, EventLoop&) {
                return std::vector<Method>{
                    Method{.name = "StopAccepting",
                           .handler =
                               [&server](Call& call) {
                                   server.stopAccepting();
                                   (void)call.reply();
                               }},
                    Method{.name = "InFlight",
                           .handler =
                               [&server](Call& call) {
                                   (void)call.reply(
                                       [&](JsonWriter& w) { w.field("inFlight", server.callsInFlight()); });
                               }},
                    Method{.name = "Drain",
                           .handler =
                               [&server, &observed](Call& call) {
                                   size_t inFlight = server.callsInFlight();
                                   server.whenDrained([&observed] { ++observed.drained; });
                                   (void)call.reply([&](JsonWriter& w) { w.field("inFlight", inFlight); });
                               }},
                    Method{.name = "Hold",
                           .handler = [&observed](Call& call) { observed.held.push_back(call.defer()); }},
                    // Upgrades; the upgraded connection is kept (in use) until DropUpgraded.
                    Method{.name = "Upgrade",
                           .handler =
                               [&observed](Call& call) {
                                   (void)call.upgrade([&observed](UpgradedConnection c) {
                                       observed.upgraded.push_back(std::move(c));
                                       ++observed.upgrades;
                                   });
                               },
                           .supportsUpgrade = true},
                    Method{.name = "DropUpgraded",
                           .handler =
                               [&observed](Call& call) {
                                   observed.upgraded.clear();
                                   (void)call.reply();
                               }},
                    Method{.name = "Release",
                           .handler =
                               [&observed](Call& call) {
                                   for (DeferredCall& d : observed.held)
                                       (void)d.reply([](JsonWriter& w) { w.field("text", "late"); });
                                   observed.held.clear();
                                   (void)call.reply();
                               }},
                };
            },
        .setup =
            [&observed, idleAfter](Server& server, EventLoop&) {
                if (idleAfter > 0ms)
                    (void)server.setIdleCallback(idleAfter, [&observed] { ++observed.idle; });
            },
        .teardown =
            [&observed] {
                observed.held.clear();
                observed.upgraded.clear();
            }};
}

int64_t inFlight(Client& client) {
    if (!client.call(R"({"method":"org.example.test.InFlight"})"))
        return -1;
    return parse(client.receive()).root()["parameters"]["inFlight"].int64().value_or(-1);
}

TEST(VarlinkLifecycle, CallsTheIdleCallbackOncePerPeriodWithoutConnections) {
    Observed observed;
    TestServer server({}, false, lifecycleExtras(observed, 200ms));
    // The first idle period starts at once: no client ever connected.
    ASSERT_TRUE(waitFor([&] { return observed.idle.load() == 1; }, 10'000ms));
    {
        Client client(server.path());
        ASSERT_TRUE(client.call(echo("x")));
        ASSERT_TRUE(client.receive().has_value());
        // Three idle periods pass with the client connected (a window in which nothing must happen, not a
        // wait for something); round trips after it make sure the loop has run since, with a due timer.
        std::this_thread::sleep_for(600ms);
        ASSERT_TRUE(client.call(echo("y")));
        ASSERT_TRUE(client.receive().has_value());
        ASSERT_TRUE(client.call(echo("z")));
        ASSERT_TRUE(client.receive().has_value());
        EXPECT_EQ(observed.idle.load(), 1) << "idle while a client was connected";
    }
    // The next period starts when the last client leaves, and fires once.
    EXPECT_TRUE(waitFor([&] { return observed.idle.load() == 2; }, 10'000ms));
    // Three more periods without a connection: it does not fire again. A client that connects after them
    // sees the loop run (it is accepted and answered) after any timer that was due.
    std::this_thread::sleep_for(600ms);
    Client late(server.path());
    ASSERT_TRUE(late.call(echo("late")));
    ASSERT_TRUE(late.receive().has_value());
    ASSERT_TRUE(late.call(echo("later")));
    ASSERT_TRUE(late.receive().has_value());
    EXPECT_EQ(observed.idle.load(), 2) << "fires once per idle period";
}

// An Accept=yes instance stops when its server is idle: an upgraded connection still in use is not idle.
TEST(VarlinkLifecycle, IsNotIdleWhileAnUpgradedConnectionIsInUse) {
    Observed observed;
    TestServer server({}, false, lifecycleExtras(observed, 200ms));
    ASSERT_TRUE(waitFor([&] { return observed.idle.load() == 1; }, 10'000ms)); // no client yet
    Client upgrading(server.path());
    ASSERT_TRUE(upgrading.call(R"({"method":"org.example.test.Upgrade","upgrade":true})"));
    ASSERT_TRUE(upgrading.receive(10'000ms).has_value());
    ASSERT_TRUE(waitFor([&] { return observed.upgrades.load() == 1; }, 10'000ms));
    // Three idle periods pass while the upgraded connection is in use (a window in which nothing must
    // happen); a round trip after it makes sure the loop has run since, with a due timer.
    std::this_thread::sleep_for(600ms);
    {
        Client other(server.path());
        ASSERT_TRUE(other.call(echo("x")));
        ASSERT_TRUE(other.receive().has_value());
        EXPECT_EQ(serverState(other).connections, 2); // this one and the upgraded one
    }
    std::this_thread::sleep_for(600ms);
    {
        Client other(server.path());
        ASSERT_TRUE(other.call(echo("y")));
        ASSERT_TRUE(other.receive().has_value());
        EXPECT_EQ(observed.idle.load(), 1) << "idle while an upgraded connection was in use";
        ASSERT_TRUE(other.call(R"({"method":"org.example.test.DropUpgraded"})"));
        ASSERT_TRUE(other.receive().has_value());
    }
    // Once it is dropped (and the last client has gone), the server is idle again.
    EXPECT_TRUE(waitFor([&] { return observed.idle.load() == 2; }, 10'000ms));
}

TEST(VarlinkLifecycle, StopsAcceptingButServesTheClientsItHas) {
    Observed observed;
    TestServer server({}, false, lifecycleExtras(observed, 0ms));
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.StopAccepting"})"));
    EXPECT_EQ(client.receive(), "{}");
    // The listening socket is closed: a new client is refused (the path is left for its owner to remove).
    EXPECT_THROW(Client late(server.path()), std::runtime_error);
    ASSERT_TRUE(client.call(echo("still served")));
    EXPECT_EQ(parse(client.receive()).text(), "still served");
}

TEST(VarlinkLifecycle, TellsWhenEveryCallHasBeenAnswered) {
    Observed observed;
    TestServer server({}, false, lifecycleExtras(observed, 0ms));
    Client slow(server.path());
    // Answered only when the test says so (Release), however slow the machine.
    ASSERT_TRUE(slow.call(R"({"method":"org.example.test.Hold"})"));
    Client stopper(server.path());
    ASSERT_TRUE(waitFor([&] { return inFlight(stopper) == 1; }, 10'000ms));
    ASSERT_TRUE(stopper.call(R"({"method":"org.example.test.Drain"})"));
    EXPECT_EQ(parse(stopper.receive()).root()["parameters"]["inFlight"].int64(), 1);
    // More round trips: the loop has run on past the Drain call, and the call is still unanswered.
    EXPECT_EQ(inFlight(stopper), 1);
    EXPECT_EQ(inFlight(stopper), 1);
    EXPECT_EQ(observed.drained.load(), 0) << "drained while a deferred call was unanswered";
    ASSERT_TRUE(stopper.call(R"({"method":"org.example.test.Release"})"));
    EXPECT_EQ(stopper.receive(), "{}");
    EXPECT_EQ(parse(slow.receive()).text(), "late");
    EXPECT_TRUE(waitFor([&] { return observed.drained.load() == 1; }, 10'000ms));
    // With nothing in flight it is called right away (the connections stay open).
    ASSERT_TRUE(stopper.call(R"({"method":"org.example.test.Drain"})"));
    EXPECT_EQ(parse(stopper.receive()).root()["parameters"]["inFlight"].int64(), 0);
    EXPECT_EQ(observed.drained.load(), 2);
    ASSERT_TRUE(slow.call(echo("open")));
    EXPECT_EQ(parse(slow.receive()).text(), "open");
}

TEST(VarlinkLifecycle, CountsNoCallInFlightOnAConnectionThatClosed) {
    Observed observed;
    TestServer server({}, false, lifecycleExtras(observed, 0ms));
    Client stopper(server.path());
    {
        Client leaving(server.path());
        ASSERT_TRUE(leaving.call(R"({"method":"org.example.test.Hold"})")); // never answered
        ASSERT_TRUE(waitFor([&] { return inFlight(stopper) == 1; }, 10'000ms));
    }
    // Its deferred call will never be answered: once the server has seen the close, nothing is in flight.
    EXPECT_TRUE(waitFor([&] { return inFlight(stopper) == 0; }, 10'000ms));
    ASSERT_TRUE(stopper.call(R"({"method":"org.example.test.Drain"})"));
    EXPECT_EQ(parse(stopper.receive()).root()["parameters"]["inFlight"].int64(), 0);
    EXPECT_EQ(observed.drained.load(), 1);
}

} // namespace
} // namespace svckit::varlink
