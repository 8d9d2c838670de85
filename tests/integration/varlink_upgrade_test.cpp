// The `upgrade` flag: a method that supports it answers with upgrade(), and once that reply (and every reply
// before it) is out, its handler gets the socket and the bytes the server had already read after the call;
// nothing after the call is read as varlink. Methods without upgrade support answer such calls as any other,
// as sd-varlink does.
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

#include <map>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

// What the upgraded side of the tests does: it writes "[" + the pending bytes + "]", then echoes whatever it
// reads (on the server's own loop, with the handed-over fd).
struct UpgradeState {
    std::atomic<int> handedOver{0};
    std::vector<UniqueFd> fds;
    std::map<int, EventSource> echoes; // by fd
    std::vector<EventSource> timers;
};

void serveRawEcho(EventLoop& loop, UpgradeState& state, UpgradedConnection connection) {
    ++state.handedOver;
    std::string greeting = "[" + connection.pending + "]";
    (void)!::write(connection.fd.get(), greeting.data(), greeting.size());
    int fd = connection.fd.get();
    auto source = loop.addIo(fd, EPOLLIN, [fd, &state](uint32_t) {
        char data[4096];
        ssize_t n = ::read(fd, data, sizeof(data));
        if (n > 0)
            (void)!::write(fd, data, static_cast<size_t>(n));
        else if (n == 0 || errno != EAGAIN)
            (void)state.echoes.at(fd).setEnabled(false); // the client left
    });
    if (source)
        state.echoes.emplace(fd, std::move(*source));
    state.fds.push_back(std::move(connection.fd));
}

class UpgradeServer {
public:
    UpgradeServer() : state_(std::make_shared<UpgradeState>()), server_({}, false, extras()) {}
    TestServer& server() { return server_; }
    int handedOver() const { return state_->handedOver.load(); }

private:
    Extras extras() {
        auto state = state_;
        return Extras{
            .methods =
                [state](Server&, EventLoop& loop) {
                    auto then = [state, &loop](UpgradedConnection connection) {
                        serveRawEcho(loop, *state, std::move(connection));
                    };
                    // Upgrades when it can; otherwise replies with the errno upgrade() gave.
                    auto upgrade = [then](Call& call) {
                        auto r = call.upgrade([](JsonWriter& w) { w.field("protocol", "raw-echo"); }, then);
                        if (!r)
                            (void)call.reply([&](JsonWriter& w) { w.field("errno", r.error().code()); });
                    };
                    return std::vector<Method>{
                        Method{.name = "Upgrade", .handler = upgrade, .supportsUpgrade = true},
                        Method{.name = "TryUpgrade", .handler = upgrade}, // no upgrade support
                        // Answers a call with `upgrade` without upgrading: varlink goes on.
                        Method{.name = "Decline",
                               .handler =
                                   [](Call& call) {
                                       (void)call.reply([](JsonWriter& w) { w.field("ok", true); });
                                   },
                               .supportsUpgrade = true},
                        Method{.name = "Required",
                               .handler = upgrade,
                               .supportsUpgrade = true,
                               .requiresUpgrade = true},
                        // Upgrades after `ms` milliseconds, from a timer.
                        Method{.name = "UpgradeLater",
                               .handler =
                                   [state, then, &loop](Call& call) {
                                       auto ms = call.parameters()["ms"].int64().value_or(100);
                                       auto deferred = std::make_shared<DeferredCall>(call.defer());
                                       auto timer =
                                           loop.addTimer(std::chrono::milliseconds(ms),
                                                         [deferred, then] { (void)deferred->upgrade(then); });
                                       if (timer)
                                           state->timers.push_back(std::move(*timer));
                                   },
                               .supportsUpgrade = true},
                    };
                },
            .setup = {},
            .teardown =
                [state] {
                    state->echoes.clear();
                    state->timers.clear();
                    state->fds.clear();
                }};
    }

    std::shared_ptr<UpgradeState> state_;
    TestServer server_;
};

std::string frame(std::string_view json) {
    return std::string(json) + '\0';
}

TEST(VarlinkUpgrade, HandsTheConnectionOverAfterTheReply) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    // What follows the call, even a well-formed call, belongs to the new protocol.
    std::string after = frame(echo("not varlink any more"));
    ASSERT_TRUE(client.sendRaw(frame(R"({"method":"org.example.test.Upgrade","upgrade":true})") + after));
    EXPECT_EQ(client.receive(), R"({"parameters":{"protocol":"raw-echo"}})");
    EXPECT_EQ(client.receiveRaw(after.size() + 2), "[" + after + "]");
    // The socket now belongs to the upgraded side, which echoes.
    ASSERT_TRUE(client.sendRaw("ping"));
    EXPECT_EQ(client.receiveRaw(4), "ping");
    Snapshot counters = upgrade.server().stop();
    EXPECT_EQ(upgrade.handedOver(), 1);
    EXPECT_EQ(counters.connectionsUpgraded, 1u);
    EXPECT_EQ(counters.calls, 1u); // the Echo after it was never read as a call
    EXPECT_EQ(counters.protocolErrors, 0u);
}

TEST(VarlinkUpgrade, WaitsForEarlierRepliesBeforeHandingOver) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    ASSERT_TRUE(client.sendRaw(
        frame(R"({"method":"org.example.test.Later","parameters":{"text":"first","ms":100}})") +
        frame(R"({"method":"org.example.test.Upgrade","upgrade":true})") + "raw"));
    EXPECT_EQ(parse(client.receive()).text(), "first");
    EXPECT_EQ(client.receive(), R"({"parameters":{"protocol":"raw-echo"}})");
    EXPECT_EQ(client.receiveRaw(5), "[raw]");
}

TEST(VarlinkUpgrade, ReadsNothingAsVarlinkWhileADeferredUpgradeCallIsPending) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    // Not JSON at all: read as varlink it would close the connection.
    ASSERT_TRUE(client.sendRaw(
        frame(R"({"method":"org.example.test.UpgradeLater","parameters":{"ms":100},"upgrade":true})") +
        frame("<binary>")));
    EXPECT_EQ(client.receive(), "{}");
    EXPECT_EQ(client.receiveRaw(11), std::string("[<binary>") + '\0' + "]");
    Snapshot counters = upgrade.server().stop();
    EXPECT_EQ(counters.protocolErrors, 0u);
    EXPECT_EQ(counters.connectionsUpgraded, 1u);
}

TEST(VarlinkUpgrade, GoesOnWithVarlinkWhenTheHandlerAnswersWithoutUpgrading) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    ASSERT_TRUE(client.sendRaw(frame(R"({"method":"org.example.test.Decline","upgrade":true})") +
                               frame(echo("after"))));
    EXPECT_EQ(client.receive(), R"({"parameters":{"ok":true}})");
    EXPECT_EQ(parse(client.receive()).text(), "after");
    EXPECT_EQ(upgrade.handedOver(), 0);
}

TEST(VarlinkUpgrade, AnswersAsAnyCallWhenTheMethodDoesNotSupportUpgrade) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    // sd-varlink 262 answers a call with `upgrade` to such a method and goes on reading varlink.
    ASSERT_TRUE(client.sendRaw(
        frame(R"({"method":"org.example.test.Echo","parameters":{"text":"x"},"upgrade":true})") +
        frame(R"({"method":"org.example.test.TryUpgrade","upgrade":true})") + frame(echo("after"))));
    EXPECT_EQ(parse(client.receive()).text(), "x");
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["errno"].int64(), EBADRQC);
    EXPECT_EQ(parse(client.receive()).text(), "after");
    EXPECT_EQ(upgrade.handedOver(), 0);
}

TEST(VarlinkUpgrade, RefusesToUpgradeACallMadeWithoutTheFlag) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Upgrade"})"));
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["errno"].int64(), EBADRQC);
    ASSERT_TRUE(client.call(echo("still varlink")));
    EXPECT_EQ(parse(client.receive()).text(), "still varlink");
}

TEST(VarlinkUpgrade, RepliesExpectedUpgradeWhenAMethodRequiresIt) {
    UpgradeServer upgrade;
    Client client(upgrade.server().path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Required"})"));
    EXPECT_EQ(client.receive(), R"({"error":"org.varlink.service.ExpectedUpgrade"})");
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Required","upgrade":true})"));
    EXPECT_EQ(client.receive(), R"({"parameters":{"protocol":"raw-echo"}})");
    EXPECT_EQ(client.receiveRaw(2), "[]");
}

TEST(VarlinkUpgrade, DoesNotHandOverAConnectionWhoseClientLeftFirst) {
    UpgradeServer upgrade;
    {
        Client client(upgrade.server().path());
        ASSERT_TRUE(client.call(
            R"({"method":"org.example.test.UpgradeLater","parameters":{"ms":100},"upgrade":true})"));
        std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(250ms);
    Client other(upgrade.server().path());
    ASSERT_TRUE(other.call(echo("fine")));
    EXPECT_EQ(parse(other.receive()).text(), "fine");
    Snapshot counters = upgrade.server().stop();
    EXPECT_EQ(upgrade.handedOver(), 0);
    EXPECT_EQ(counters.connectionsUpgraded, 0u);
}

} // namespace
} // namespace svckit::varlink
