// The peer-to-peer D-Bus endpoint in the Service life cycle: exit-on-idle counts its connections, an
// Accept=yes connection is served and the service ends with it, a graceful stop lets the call being handled
// finish and answers it.
#include "dbus_test_service.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <format>
#include <optional>
#include <string>

namespace svckit::test {
namespace {

class DBusLifecycle : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/svckit-dbus-XXXXXX";
        dir = ::mkdtemp(pattern);
        probeConfig = ProbeConfig{.address = dir + "/dbus.sock"};
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    [[nodiscard]] std::string socket() const { return probeConfig.address; }
    std::string dir;
};

TEST_F(DBusLifecycle, ExitOnIdleWaitsForTheLastDBusConnection) {
    probeConfig.exitOnIdle = 300ms;
    ProbeChild service(dir);
    std::optional<ProbeClient> client;
    ASSERT_TRUE(eventually([&] {
        if (!connectRaw(socket()))
            return false;
        client.emplace(socket());
        return true;
    })) << service.err();
    // Several idle timeouts with the connection open: the service is still there to answer.
    for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(300ms);
        EXPECT_EQ(client->echo("alive"), "alive") << service.err();
    }
    client.reset();
    EXPECT_EQ(service.wait(), 0) << service.err();
    EXPECT_NE(service.err().find("No connection for 300 ms"), std::string::npos) << service.err();
}

TEST_F(DBusLifecycle, AnAcceptYesConnectionIsServedAndTheServiceEndsWithIt) {
    probeConfig.accept = true;
    UniqueFd listening = boundSocket(SOCK_STREAM, socket());
    ASSERT_TRUE(listening);
    UniqueFd ours = connectTo(SOCK_STREAM, socket());
    ASSERT_TRUE(ours);
    UniqueFd accepted(::accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted);
    // What systemd >= 258 gives a connection of a socket with PassPIDFD=yes and AcceptFileDescriptors=no.
    ASSERT_TRUE(applyOptions(accepted.get(), SocketSpec{.name = "dbus",
                                                        .address = socket(),
                                                        .protocol = Protocol::DBus,
                                                        .accept = true,
                                                        .passPidfd = true,
                                                        .acceptFileDescriptors = false})
                    .has_value());
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(accepted));
    ProbeChild service(dir, std::move(fds));
    try {
        auto connection = sdbus::createDirectBusConnection(ours.release());
        auto proxy =
            sdbus::createProxy(*connection, sdbus::ServiceName{probeName}, sdbus::ObjectPath{probePath});
        std::tuple<uint32_t, int32_t, bool, int32_t> who;
        proxy->callMethod("Whoami").onInterface(probeInterface).storeResultsTo(who);
        EXPECT_EQ(std::get<1>(who), ::getpid()) << service.err();
    } catch (const sdbus::Error& e) {
        ADD_FAILURE() << e.what() << ": " << service.err();
    }
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusLifecycle, AGracefulStopAnswersTheCallBeingHandled) {
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    ProbeClient client(socket());
    ASSERT_EQ(client.echo("running"), "running");
    std::optional<std::optional<sdbus::Error>> answer;
    auto call =
        client.proxy->createMethodCall(sdbus::InterfaceName{probeInterface}, sdbus::MethodName{"Sleep"});
    call << uint32_t{500};
    client.proxy->callMethodAsync(
        call, [&](sdbus::MethodReply, std::optional<sdbus::Error> error) { answer = std::move(error); });
    // The stop arrives while the handler sleeps.
    ASSERT_TRUE(eventually([&] { return service.err().find("probe: sleeping") != std::string::npos; }))
        << service.err();
    service.signal(SIGTERM);
    EXPECT_TRUE(client.processUntil([&] { return answer.has_value(); })) << service.err();
    EXPECT_TRUE(answer && !*answer) << (answer && *answer ? (*answer)->what() : "no answer");
    EXPECT_EQ(service.wait(), 0) << service.err();
}

} // namespace
} // namespace svckit::test
