// Hostile and careless peers of the peer-to-peer D-Bus endpoint: each costs only its own connection, and
// everyone else is served meanwhile. A client that never authenticates (closed after the timeout, without
// stalling others), garbage before BEGIN, a client that stops mid-handshake, an oversized message
// announcement, a peer that leaves mid-call, a flood of new connections (no fd leaks), one uid holding more
// connections than its share.
#include "dbus_test_service.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <format>
#include <memory>
#include <string>
#include <vector>

namespace svckit::test {
namespace {

class DBusHostilePeers : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/svckit-dbus-XXXXXX";
        dir = ::mkdtemp(pattern);
        probeConfig = ProbeConfig{.address = dir + "/dbus.sock"};
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    [[nodiscard]] std::string socket() const { return probeConfig.address; }
    void waitForSocket() const {
        ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); }));
    }
    std::string dir;
};

TEST_F(DBusHostilePeers, AClientThatNeverAuthenticatesStallsNoOneAndIsClosedAfterTheTimeout) {
    probeConfig.authenticationTimeout = 1500ms;
    ProbeChild service(dir);
    waitForSocket();
    UniqueFd silent = connectRaw(socket());
    ASSERT_TRUE(silent);
    // Served while the silent one still waits in its handshake (a server that authenticated each connection
    // before the next would only get to this one once the silent one is closed).
    ProbeClient client(socket());
    EXPECT_EQ(client.echo("not stalled"), "not stalled") << service.err();
    EXPECT_FALSE(closedByService(silent.get(), 0ms))
        << "the silent client was closed before the other was served";
    EXPECT_TRUE(closedByService(silent.get())) << service.err();
    EXPECT_NE(service.err().find("not authenticated within 1500 ms"), std::string::npos) << service.err();
    EXPECT_EQ(client.echo("still served"), "still served") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusHostilePeers, AUidPastItsConnectionCapIsRefusedAtAcceptUntilOneOfItsConnectionsLeaves) {
    probeConfig.maxConnectionsPerUid = 3;
    ProbeChild service(dir);
    waitForSocket();
    std::vector<std::unique_ptr<ProbeClient>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<ProbeClient>(socket()));
        EXPECT_EQ(held.back()->echo("held"), "held") << service.err();
    }
    // The fourth of this uid is closed at accept, before any handshake.
    UniqueFd fourth = connectRaw(socket());
    ASSERT_TRUE(fourth);
    // (Well before the authentication timeout, 10 s, would close it.)
    EXPECT_TRUE(closedByService(fourth.get(), 5000ms)) << service.err();
    EXPECT_TRUE(eventually([&] {
        return service.err().find("uid 0 holds 3 connections already") != std::string::npos;
    })) << service.err();
    // Those it holds are served; once one leaves, a new one is.
    EXPECT_EQ(held.front()->echo("still served"), "still served") << service.err();
    held.pop_back();
    EXPECT_TRUE(eventually([&] { return held.front()->instances() == 2; })) << service.err();
    ProbeClient again(socket());
    EXPECT_EQ(again.echo("served again"), "served again") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusHostilePeers, GarbageBeforeBeginClosesThatConnectionOnly) {
    ProbeChild service(dir);
    waitForSocket();
    ProbeClient client(socket());
    UniqueFd garbage = connectRaw(socket());
    ASSERT_TRUE(garbage);
    // The handshake starts with a NUL byte; this one does not, and is no command either.
    std::string junk(4096, '\x7f');
    junk += "\r\n";
    ASSERT_TRUE(sendAll(garbage.get(), junk));
    EXPECT_TRUE(closedByService(garbage.get())) << service.err();
    EXPECT_EQ(client.echo("served"), "served") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusHostilePeers, AClientThatStopsMidHandshakeIsClosedAfterTheTimeout) {
    probeConfig.authenticationTimeout = 1500ms;
    ProbeChild service(dir);
    waitForSocket();
    UniqueFd halfway = connectRaw(socket());
    ASSERT_TRUE(halfway);
    // AUTH, but never BEGIN.
    ASSERT_TRUE(sendAll(halfway.get(), std::string(1, '\0') + authExternal()));
    ProbeClient client(socket());
    EXPECT_EQ(client.echo("served"), "served") << service.err();
    EXPECT_TRUE(closedByService(halfway.get())) << service.err();
    EXPECT_EQ(client.echo("still served"), "still served") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusHostilePeers, AnOversizedMessageAnnouncementClosesThatConnectionOnly) {
    ProbeChild service(dir);
    waitForSocket();
    ProbeClient client(socket());
    UniqueFd big = connectRaw(socket());
    ASSERT_TRUE(big);
    // A complete handshake, then a method call header announcing a 256 MiB body (sd-bus's cap is 128 MiB).
    std::string data = std::string(1, '\0') + authExternal() + "BEGIN\r\n";
    unsigned char header[16] = {'l', 1 /* method call */, 0, 1 /* version */};
    uint32_t bodyLength = 256u * 1024 * 1024;
    uint32_t serial = 1;
    uint32_t fieldsLength = 0;
    std::memcpy(header + 4, &bodyLength, 4);
    std::memcpy(header + 8, &serial, 4);
    std::memcpy(header + 12, &fieldsLength, 4);
    data.append(reinterpret_cast<const char*>(header), sizeof header);
    ASSERT_TRUE(sendAll(big.get(), data));
    EXPECT_TRUE(closedByService(big.get())) << service.err();
    EXPECT_EQ(client.echo("served"), "served") << service.err();
    ASSERT_TRUE(eventually([&] { return client.instances() == 1; })) << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusHostilePeers, APeerThatLeavesMidCallIsDroppedCleanly) {
    ProbeChild service(dir);
    waitForSocket();
    ProbeClient observer(socket());
    {
        // A handler still running when its peer leaves: the reply finds the connection gone.
        ProbeClient leaving(socket());
        ASSERT_EQ(leaving.echo("running"), "running"); // its connection is running on the service's side
        auto call =
            leaving.proxy->createMethodCall(sdbus::InterfaceName{probeInterface}, sdbus::MethodName{"Sleep"});
        call << uint32_t{300};
        leaving.proxy->callMethodAsync(call, [](sdbus::MethodReply, std::optional<sdbus::Error>) {});
    }
    {
        // An asynchronous handler whose peer leaves before the answer: the pending result goes with the
        // instance, unanswered.
        ProbeClient leaving(socket());
        ASSERT_EQ(leaving.echo("running"), "running");
        auto call =
            leaving.proxy->createMethodCall(sdbus::InterfaceName{probeInterface}, sdbus::MethodName{"Later"});
        call << uint32_t{300};
        leaving.proxy->callMethodAsync(call, [](sdbus::MethodReply, std::optional<sdbus::Error>) {});
    }
    EXPECT_EQ(observer.echo("served"), "served") << service.err();
    EXPECT_TRUE(eventually([&] { return observer.instances() == 1; })) << service.err();
    // Both are gone; an asynchronous call of a peer that stays is still answered.
    uint32_t ms = 0;
    observer.proxy->callMethod("Later")
        .onInterface(probeInterface)
        .withArguments(uint32_t{50})
        .storeResultsTo(ms);
    EXPECT_EQ(ms, 50u) << service.err();
    EXPECT_EQ(observer.echo("still served"), "still served") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusHostilePeers, AFloodOfConnectionsIsServedWithoutLeakingFds) {
    probeConfig.maxConnections = 1024;
    ProbeChild service(dir);
    waitForSocket();
    ProbeClient observer(socket());
    EXPECT_EQ(observer.echo("before"), "before");
    ASSERT_TRUE(eventually([&] { return observer.instances() == 1; })) << service.err();
    size_t before = service.openFds();
    // 200 at once, each authenticated and called; then each closes.
    std::vector<std::unique_ptr<ProbeClient>> clients;
    for (int i = 0; i < 200; ++i) {
        clients.push_back(std::make_unique<ProbeClient>(socket()));
        ASSERT_EQ(clients.back()->echo(std::to_string(i)), std::to_string(i)) << service.err();
    }
    EXPECT_EQ(observer.instances(), 201u) << service.err();
    // What the fd limits count for a D-Bus connection (fdsPerDBusConnection): the socket, svckit's and
    // sd-bus's pidfds of the peer, the two eventfds of the sdbus-c++ connection.
    EXPECT_EQ(service.openFds() - before, 200u * 5)
        << "fds with 1 connection " << before << ", with 201 " << service.openFds();
    clients.clear();
    // And 200 raw connections that leave before or during their handshake.
    for (int i = 0; i < 200; ++i) {
        UniqueFd raw = connectRaw(socket());
        ASSERT_TRUE(raw);
        if (i % 2 == 0)
            (void)sendAll(raw.get(), std::string(1, '\0') + authExternal());
    }
    EXPECT_TRUE(eventually([&] { return observer.instances() == 1; })) << service.err();
    EXPECT_TRUE(eventually([&] { return service.openFds() == before; }))
        << "fds before " << before << ", after " << service.openFds();
    EXPECT_EQ(observer.echo("after"), "after") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

} // namespace
} // namespace svckit::test
