// Method calls on the peer-to-peer D-Bus endpoint (svckit/dbus.hpp) of a real Service, over a real socket:
// answers, the caller's identity in the handler, errors from handlers, policies, busctl as a client.
#include "dbus_test_service.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <format>
#include <string>

namespace svckit::test {
namespace {

class DBusCalls : public ::testing::Test {
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

void waitForSocket(const std::string& path) {
    (void)eventually([&] { return static_cast<bool>(connectRaw(path)); });
}

TEST_F(DBusCalls, AMethodCallFromAnSdbusProxyIsAnswered) {
    ProbeChild service(dir);
    waitForSocket(socket());
    ProbeClient client(socket());
    EXPECT_EQ(client.echo("hello"), "hello") << service.err();
    EXPECT_EQ(client.echo("again"), "again") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusCalls, AReplyAnsweredLaterThatTheSocketCannotTakeAtOnceArrivesWhole) {
    ProbeChild service(dir);
    waitForSocket(socket());
    ProbeClient client(socket());
    // 48 MiB answered from a timer (sd-bus raises the socket buffers to 8 MiB): sd-bus writes what the socket
    // takes and queues the rest, which goes out only if the connection waits for room (ObjectBase::flush());
    // the client sends nothing meanwhile. Without flush() it times out.
    constexpr uint32_t bytes = 48 * 1024 * 1024;
    std::string blob;
    client.proxy->callMethod("LaterBlob")
        .onInterface(probeInterface)
        .withTimeout(std::chrono::seconds(20))
        .withArguments(bytes)
        .storeResultsTo(blob);
    EXPECT_EQ(blob.size(), bytes) << service.err();
    EXPECT_EQ(client.echo("after"), "after") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusCalls, TheHandlerSeesTheClientsUidPidAndPidfd) {
    ProbeChild service(dir);
    waitForSocket(socket());
    ProbeClient client(socket());
    std::tuple<uint32_t, int32_t, bool, int32_t> who;
    client.proxy->callMethod("Whoami").onInterface(probeInterface).storeResultsTo(who);
    auto [uid, pid, pinned, pidfdPid] = who;
    EXPECT_EQ(uid, ::getuid());
    EXPECT_EQ(pid, ::getpid());
    EXPECT_TRUE(pinned);
    EXPECT_EQ(pidfdPid, ::getpid());
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusCalls, AnSdbusErrorKeepsItsNameAndAnyOtherExceptionBecomesFailed) {
    ProbeChild service(dir);
    waitForSocket(socket());
    ProbeClient client(socket());
    try {
        client.proxy->callMethod("FailDBus").onInterface(probeInterface).withArguments(std::string("custom"));
        ADD_FAILURE() << "FailDBus returned";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.svckit.test.Error.Custom");
        EXPECT_EQ(e.getMessage(), "custom");
    }
    try {
        client.proxy->callMethod("FailStd").onInterface(probeInterface).withArguments(std::string("boom"));
        ADD_FAILURE() << "FailStd returned";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.Failed");
        EXPECT_EQ(e.getMessage(), "boom");
    }
    // The service lives on, and so does the connection.
    EXPECT_EQ(client.echo("still here"), "still here") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusCalls, APolicyRefusesTheCallerWithAccessDeniedAndTheHandlerNeverRuns) {
    ASSERT_NE(::getuid(), allowedUid);
    ProbeChild service(dir);
    waitForSocket(socket());
    ProbeClient client(socket());
    try {
        std::string out;
        client.proxy->callMethod("Restricted").onInterface(probeInterface).storeResultsTo(out);
        ADD_FAILURE() << "Restricted answered " << out;
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.AccessDenied") << e.what();
    }
    // A property guarded by its qualified name ("Interface.Property").
    try {
        auto value = client.proxy->getProperty("Secret").onInterface(probeInterface);
        ADD_FAILURE() << "Secret was read: " << value.get<std::string>();
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.AccessDenied") << e.what();
    }
    // Members without a policy of their own follow the object's (anyone).
    EXPECT_EQ(client.echo("open"), "open");
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusCalls, BusctlWithAnAddressCallsAndIntrospects) {
    if (std::system("command -v busctl >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "no busctl here";
    ProbeChild service(dir);
    waitForSocket(socket());
    for (const char* destination : {"org.svckit.test", ":1.0"}) {
        auto [code, out] = runCommand(std::format("busctl --address=unix:path={} call {} {} {} Echo s hi",
                                                  socket(), destination, probePath, probeInterface));
        EXPECT_EQ(code, 0) << out << service.err();
        EXPECT_EQ(out, "s \"hi\"\n") << service.err();
    }
    // --xml-interface: the interface as introspected, without the values of the properties (GetAll is refused
    // to this caller, as the Secret property is).
    auto [code, out] = runCommand(std::format(
        "busctl --address=unix:path={} introspect --xml-interface org.svckit.test {}", socket(), probePath));
    EXPECT_EQ(code, 0) << out << service.err();
    EXPECT_NE(out.find("<method name=\"Echo\">"), std::string::npos) << out;
    EXPECT_NE(out.find("<signal name=\"Ping\">"), std::string::npos) << out;
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

} // namespace
} // namespace svckit::test
