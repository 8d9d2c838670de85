// The fds a spec's connection caps need (two per connection, a reserve, the listening sockets), the
// LimitNOFILE= its .service unit asks for, and the caps lowered to what a smaller RLIMIT_NOFILE holds.
#include <svckit/service.hpp>

#include <svckit/internal/fd_limits.hpp>

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>
#include <string>

namespace svckit {
namespace {

ServiceSpec varlinkSpec(unsigned maxConnections, unsigned perUid) {
    ServiceSpec spec{.name = "demo",
                     .description = "Demo",
                     .version = "1",
                     .sockets = {{.name = "varlink", .address = "/run/demo.sock"}}};
    spec.varlink.maxConnections = maxConnections;
    spec.varlink.maxConnectionsPerUid = perUid;
    return spec;
}

const UnitFile* serviceUnit(const std::vector<UnitFile>& units, std::string_view name) {
    auto it = std::ranges::find(units, name, &UnitFile::name);
    return it == units.end() ? nullptr : &*it;
}

TEST(FdLimits, VarlinkCapsNeedTwoFdsPerConnectionAndTheReserve) {
    EXPECT_EQ(fdsNeeded(varlinkSpec(4096, 1024)), reservedFds + 1 + 2 * 4096);
    EXPECT_EQ(fdsNeeded(varlinkSpec(100, 0)), reservedFds + 1 + 200);
}

TEST(FdLimits, AcceptYesSocketsAndRawSocketsCountAsTheyAreServed) {
    ServiceSpec spec = varlinkSpec(10, 0);
    spec.sockets.push_back({.name = "one", .address = "/run/one.sock", .accept = true});
    spec.sockets.push_back({.name = "raw", .address = "/run/raw.sock", .protocol = Protocol::Raw});
    spec.sockets.back().limits.maxConnections = 30;
    // Accept=yes: its instances hold one connection each, not the main service; raw: its own cap.
    EXPECT_EQ(fdsNeeded(spec), reservedFds + 3 + 2 * (10 + 30));
    spec.sockets.back().limits.maxConnections = 0; // unlimited: no number of fds is enough
    EXPECT_EQ(fdsNeeded(spec), std::nullopt);
    EXPECT_EQ(limitNofileLine(spec), "");
}

TEST(FdLimits, DBusConnectionsNeedTheirSdbusEventfdsToo) {
    ServiceSpec spec = varlinkSpec(10, 0);
    spec.sockets.push_back({.name = "dbus", .address = "/run/dbus.sock", .protocol = Protocol::DBus});
    spec.sockets.back().limits.maxConnections = 100;
    // socket, svckit's and sd-bus's pidfds of the peer, sdbus-c++'s two eventfds for each D-Bus connection.
    EXPECT_EQ(fdsNeeded(spec), reservedFds + 2 + 2 * 10 + 5 * 100);
    auto clamped = clampCapsToFdLimit(spec, reservedFds + 2 + 260); // half of the 520 fds needed
    EXPECT_EQ(clamped.size(), 2u);
    EXPECT_EQ(spec.varlink.maxConnections, 5u);
    EXPECT_EQ(spec.sockets.back().limits.maxConnections, 50u);
    EXPECT_LE(*fdsNeeded(spec), reservedFds + 2 + 260);
}

TEST(FdLimits, UnitAsksForLimitNofileOnlyAboveTheDefaultSoftLimit) {
    EXPECT_EQ(limitNofileLine(varlinkSpec(4096, 1024)), "LimitNOFILE=8257\n");
    EXPECT_EQ(limitNofileLine(varlinkSpec(400, 0)), ""); // 865 fds fit in 1024
    auto units = generateUnits(varlinkSpec(4096, 1024));
    const UnitFile* service = serviceUnit(units, "demo.service");
    ASSERT_TRUE(service);
    EXPECT_NE(service->text.find("\nLimitNOFILE=8257\n"), std::string::npos) << service->text;

    ServiceSpec perConnection = varlinkSpec(4096, 1024);
    perConnection.sockets.front().accept = true;
    for (const UnitFile& unit : generateUnits(perConnection))
        EXPECT_EQ(unit.text.find("LimitNOFILE="), std::string::npos) << unit.name;
}

TEST(FdLimits, CapsThatFitAreKept) {
    ServiceSpec spec = varlinkSpec(4096, 1024);
    EXPECT_TRUE(clampCapsToFdLimit(spec, 524288).empty());
    EXPECT_EQ(spec.varlink.maxConnections, 4096u);
    EXPECT_EQ(spec.varlink.maxConnectionsPerUid, 1024u);
}

TEST(FdLimits, CapsAreLoweredToWhatTheLimitHolds) {
    ServiceSpec spec = varlinkSpec(4096, 1024);
    auto clamped = clampCapsToFdLimit(spec, 1024);
    // (1024 - 64 reserved - 1 listening) / 2 = 479 connections; the per-UID cap is no higher than that.
    EXPECT_EQ(spec.varlink.maxConnections, 479u);
    EXPECT_EQ(spec.varlink.maxConnectionsPerUid, 479u);
    ASSERT_EQ(clamped.size(), 2u);
    EXPECT_EQ(clamped[0].what, "varlink maxConnections");
    EXPECT_EQ(clamped[0].from, 4096u);
    EXPECT_EQ(clamped[0].to, 479u);
    EXPECT_LE(*fdsNeeded(spec), 1024u);
    std::string line = describeClamped(1024, 8257, clamped);
    EXPECT_NE(line.find("varlink maxConnections 4096 -> 479"), std::string::npos) << line;
    EXPECT_NE(line.find("LimitNOFILE= to 8257"), std::string::npos) << line;

    ServiceSpec unlimitedPerUid = varlinkSpec(4096, 0);
    (void)clampCapsToFdLimit(unlimitedPerUid, 1024);
    EXPECT_EQ(unlimitedPerUid.varlink.maxConnectionsPerUid, 0u); // still no per-UID cap
}

TEST(FdLimits, RawAndVarlinkCapsShareWhatFits) {
    ServiceSpec spec = varlinkSpec(1000, 0);
    spec.sockets.push_back({.name = "raw", .address = "/run/raw.sock", .protocol = Protocol::Raw});
    spec.sockets.back().limits.maxConnections = 1000;
    auto clamped = clampCapsToFdLimit(spec, 2066); // (2066 - 66) / 2 = 1000 connections for 2000 allowed
    EXPECT_EQ(clamped.size(), 2u);
    EXPECT_EQ(spec.varlink.maxConnections, 500u);
    EXPECT_EQ(spec.sockets.back().limits.maxConnections, 500u);
    EXPECT_LE(*fdsNeeded(spec), 2066u);
}

TEST(FdLimits, SoftLimitIsRaisedToTheHardOne) {
    rlimit before{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
    if (before.rlim_max == RLIM_INFINITY || before.rlim_max < 64)
        GTEST_SKIP() << "the hard limit is " << before.rlim_max;
    rlimit low{.rlim_cur = 32, .rlim_max = before.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    auto raised = raiseFdLimit();
    rlimit after{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);
    ASSERT_TRUE(raised) << raised.error().message();
    EXPECT_EQ(*raised, before.rlim_max);
    EXPECT_EQ(after.rlim_cur, before.rlim_max);
}

} // namespace
} // namespace svckit
