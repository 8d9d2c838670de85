// Signals and properties on the peer-to-peer D-Bus endpoint: an instance's signal goes to its own peer,
// forEachDBus() reaches every connected peer, properties are read and set through
// org.freedesktop.DBus.Properties and their change is signalled.
#include "dbus_test_service.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <format>
#include <map>
#include <string>
#include <vector>

namespace svckit::test {
namespace {

class DBusSignalsAndProperties : public ::testing::Test {
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

TEST_F(DBusSignalsAndProperties, ASignalFromForEachDBusReachesEveryConnectedPeer) {
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    std::vector<std::unique_ptr<ProbeClient>> clients;
    std::vector<std::vector<std::string>> received(3);
    for (size_t i = 0; i < received.size(); ++i) {
        clients.push_back(std::make_unique<ProbeClient>(socket()));
        clients.back()
            ->proxy->uponSignal("Ping")
            .onInterface(probeInterface)
            .call([&received, i](const std::string& text) { received[i].push_back(text); });
    }
    // Every connection is running (its instance exists) before the broadcast.
    ASSERT_TRUE(eventually([&] { return clients[0]->instances() == clients.size(); })) << service.err();
    clients[1]
        ->proxy->callMethod("Broadcast")
        .onInterface(probeInterface)
        .withArguments(std::string("to all"), uint32_t{1});
    for (size_t i = 0; i < clients.size(); ++i) {
        EXPECT_TRUE(clients[i]->processUntil([&] { return !received[i].empty(); }))
            << "peer " << i << " got no Ping: " << service.err();
        EXPECT_EQ(received[i], std::vector<std::string>{"to all"}) << "peer " << i;
    }
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusSignalsAndProperties, APeerThatDoesNotReadItsSignalsIsClosedAndOthersAreServed) {
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    // Authenticated by hand, then never reads.
    UniqueFd deaf = connectRaw(socket());
    ASSERT_TRUE(deaf);
    ASSERT_TRUE(sendAll(deaf.get(), std::string(1, '\0') + authExternal() + "BEGIN\r\n"));
    ProbeClient client(socket());
    ASSERT_TRUE(eventually([&] { return client.instances() == 2; })) << service.err();
    // More than its socket buffer holds, and then more than the service queues for it: 64 MiB in 1 KiB
    // signals, from one handler. The caller gets them too; it reads while it waits for the reply, but a burst
    // from one handler is queued as a whole once a peer's socket is full, so the caller may be cut as well
    // under load (docs/dbus.md, Limits): only the deaf peer's fate is certain.
    try {
        client.proxy->callMethod("Broadcast")
            .onInterface(probeInterface)
            .withArguments(std::string(1024, 'x'), uint32_t{64 * 1024});
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.Disconnected") << e.what();
    }
    EXPECT_TRUE(eventually([&] { return service.err().find("its peer does not read") != std::string::npos; }))
        << service.err();
    // The deaf peer's connection is closed: what its socket held, then end of file.
    EXPECT_TRUE(eventually([&] {
        char buffer[65536];
        ssize_t n = ::recv(deaf.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        while (n > 0)
            n = ::recv(deaf.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        return n == 0;
    })) << service.err();
    // Others are served.
    ProbeClient other(socket());
    EXPECT_EQ(other.echo("served"), "served") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusSignalsAndProperties, APropertyIsReadSetAndItsChangeSignalled) {
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    ProbeClient client(socket());
    std::vector<uint32_t> changes;
    client.proxy->uponSignal("PropertiesChanged")
        .onInterface("org.freedesktop.DBus.Properties")
        .call([&](const std::string& interface, const std::map<std::string, sdbus::Variant>& changed,
                  const std::vector<std::string>&) {
            if (interface == probeInterface && changed.contains("Count"))
                changes.push_back(changed.at("Count").get<uint32_t>());
        });
    EXPECT_EQ(client.proxy->getProperty("Count").onInterface(probeInterface).get<uint32_t>(), 0u);
    client.proxy->setProperty("Count").onInterface(probeInterface).toValue(uint32_t{7});
    EXPECT_EQ(client.proxy->getProperty("Count").onInterface(probeInterface).get<uint32_t>(), 7u);
    EXPECT_TRUE(client.processUntil([&] { return !changes.empty(); })) << service.err();
    EXPECT_EQ(changes, std::vector<uint32_t>{7});
    // GetAll covers the readable properties of the interface the caller may read: Secret is refused, so
    // GetAll is refused as a whole (docs: a property's policy applies to GetAll too).
    try {
        auto all = client.proxy->getAllProperties().onInterface(probeInterface);
        ADD_FAILURE() << "GetAll answered " << all.size() << " properties";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.AccessDenied") << e.what();
    }
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

} // namespace
} // namespace svckit::test
