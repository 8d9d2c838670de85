// Units and D-Bus files written from a ServiceSpec in bus mode (ServiceSpec::bus): BusName= in the service,
// the activation file naming it, and a bus policy file that says exactly what BusSpec says (the bus daemon's
// own check of that file and systemd-analyze verify of the units: tests/integration/bus_files_check.sh).
#include <svckit/service.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace svckit {
namespace {

const UnitFile* find(const std::vector<UnitFile>& units, std::string_view path) {
    auto it = std::ranges::find_if(units, [path](const UnitFile& unit) { return unit.path() == path; });
    return it == units.end() ? nullptr : &*it;
}

bool has(const UnitFile* unit, std::string_view line) {
    return unit && unit->text.find(std::string(line) + "\n") != std::string::npos;
}

// The text between `<policy ATTRS>` and its `</policy>`; empty when there is no such policy.
std::string policy(const UnitFile* file, std::string_view attributes) {
    if (!file)
        return {};
    std::string open = std::format("  <policy {}>\n", attributes);
    size_t begin = file->text.find(open);
    if (begin == std::string::npos)
        return {};
    begin += open.size();
    return file->text.substr(begin, file->text.find("  </policy>", begin) - begin);
}

ServiceSpec busOnly() {
    return {.name = "demo",
            .description = "Demo bus service",
            .version = "1",
            .sockets = {},
            .bus = {.name = "org.example.Demo1"}};
}

constexpr std::string_view destination = R"(send_destination="org.example.Demo1")";

TEST(BusUnits, NoBusNameWritesNoDBusFiles) {
    ServiceSpec spec = busOnly();
    spec.bus.name.clear();
    spec.sockets = {{.name = "varlink", .address = "/run/demo.sock"}};
    for (const UnitFile& unit : generateUnits(spec)) {
        EXPECT_TRUE(unit.directory.empty()) << unit.path();
        EXPECT_EQ(unit.text.find("BusName="), std::string::npos) << unit.name;
        EXPECT_EQ(unit.text.find("Alias="), std::string::npos) << unit.name;
    }
}

TEST(BusUnits, ABusOnlyServiceGetsANotifyServiceWithBusNameAndAnAlias) {
    auto units = generateUnits(busOnly());
    ASSERT_EQ(units.size(), 3u);
    const UnitFile* service = find(units, "demo.service");
    ASSERT_TRUE(service);
    EXPECT_TRUE(has(service, "Type=notify"));
    EXPECT_TRUE(has(service, "BusName=org.example.Demo1"));
    EXPECT_TRUE(has(service, "ExecStart=/usr/bin/demo"));
    EXPECT_TRUE(has(service, "[Install]"));
    EXPECT_TRUE(has(service, "Alias=dbus-org.example.Demo1.service"));
    EXPECT_EQ(service->text.find("Requires="), std::string::npos) << "no socket to require";
    EXPECT_EQ(service->text.find("User="), std::string::npos) << "the owner is root: no User=";
}

TEST(BusUnits, TheActivationFileStartsTheUnitThroughSystemd) {
    auto units = generateUnits(busOnly());
    const UnitFile* activation = find(units, "dbus-1/system-services/org.example.Demo1.service");
    ASSERT_TRUE(activation);
    EXPECT_TRUE(has(activation, "[D-BUS Service]"));
    EXPECT_TRUE(has(activation, "Name=org.example.Demo1"));
    EXPECT_TRUE(has(activation, "Exec=/bin/false"));
    EXPECT_TRUE(has(activation, "User=root"));
    EXPECT_TRUE(has(activation, "SystemdService=demo.service"));
}

TEST(BusUnits, AnOwnerOtherThanRootRunsTheServiceOwnsTheNameAndIsTheActivationUser) {
    ServiceSpec spec = busOnly();
    spec.bus.owner = "demo";
    auto units = generateUnits(spec);
    EXPECT_TRUE(has(find(units, "demo.service"), "User=demo"));
    EXPECT_TRUE(has(find(units, "dbus-1/system-services/org.example.Demo1.service"), "User=demo"));
    std::string owner = policy(find(units, "dbus-1/system.d/org.example.Demo1.conf"), R"(user="demo")");
    EXPECT_NE(owner.find(R"(<allow own="org.example.Demo1"/>)"), std::string::npos) << owner;
    EXPECT_NE(owner.find(std::format("<allow {}/>", destination)), std::string::npos) << owner;
}

TEST(BusUnits, TheSessionBusGetsAnActivationFileWithoutUserAndNoPolicy) {
    ServiceSpec spec = busOnly();
    spec.bus.bus = BusType::Session;
    auto units = generateUnits(spec);
    ASSERT_EQ(units.size(), 2u);
    const UnitFile* activation = find(units, "dbus-1/services/org.example.Demo1.service");
    ASSERT_TRUE(activation);
    EXPECT_EQ(activation->text.find("User="), std::string::npos);
    EXPECT_TRUE(has(activation, "SystemdService=demo.service"));
}

TEST(BusUnits, TheDefaultPolicyLetsTheOwnerOwnAndAnyoneCall) {
    auto units = generateUnits(busOnly());
    const UnitFile* conf = find(units, "dbus-1/system.d/org.example.Demo1.conf");
    ASSERT_TRUE(conf);
    EXPECT_TRUE(conf->text.starts_with("<?xml version=\"1.0\"?>\n<!DOCTYPE busconfig"));
    std::string root = policy(conf, R"(user="root")");
    EXPECT_NE(root.find(R"(<allow own="org.example.Demo1"/>)"), std::string::npos) << conf->text;
    std::string anyone = policy(conf, R"(context="default")");
    EXPECT_NE(anyone.find(std::format(R"(<allow {} send_type="method_call"/>)", destination)),
              std::string::npos)
        << conf->text;
    EXPECT_EQ(anyone.find("own="), std::string::npos) << "only the owner may own the name";
    EXPECT_EQ(conf->text.find("<deny"), std::string::npos) << conf->text;
}

TEST(BusUnits, TheStandardReadOnlyInterfacesAreOpenToAnyoneEvenWhenNothingElseIs) {
    ServiceSpec spec = busOnly();
    spec.bus.access = {{.user = "admin"}};
    auto units = generateUnits(spec);
    const UnitFile* conf = find(units, "dbus-1/system.d/org.example.Demo1.conf");
    std::string anyone = policy(conf, R"(context="default")");
    for (std::string_view rule :
         {R"(send_interface="org.freedesktop.DBus.Introspectable"/>)",
          R"(send_interface="org.freedesktop.DBus.Peer"/>)",
          R"(send_interface="org.freedesktop.DBus.Properties" send_member="Get"/>)",
          R"(send_interface="org.freedesktop.DBus.Properties" send_member="GetAll"/>)"})
        EXPECT_NE(anyone.find(std::format("<allow {} {}", destination, rule)), std::string::npos)
            << rule << "\n"
            << conf->text;
    EXPECT_EQ(anyone.find(R"(send_type="method_call")"), std::string::npos) << "no call for anyone\n"
                                                                            << conf->text;
    EXPECT_EQ(anyone.find(R"(send_member="Set")"), std::string::npos) << "no Set for anyone\n" << conf->text;
    std::string admin = policy(conf, R"(user="admin")");
    EXPECT_NE(admin.find(std::format(R"(<allow {} send_type="method_call"/>)", destination)),
              std::string::npos)
        << conf->text;
}

TEST(BusUnits, AccessRulesBecomeRulesOfTheirSubjectInOrder) {
    ServiceSpec spec = busOnly();
    spec.bus.access = {
        {},                                                          // anyone: everything
        {.interface = "org.example.Demo1.Admin", .allow = false},    // ...but the Admin interface
        {.interface = "org.example.Demo1.Admin", .group = "wheel"},  // which wheel may call
        {.interface = "org.example.Demo1.Debug", .user = "auditor"}, // and Debug, auditor only
    };
    auto units = generateUnits(spec);
    const UnitFile* conf = find(units, "dbus-1/system.d/org.example.Demo1.conf");
    std::string anyone = policy(conf, R"(context="default")");
    size_t allowAll = anyone.find(std::format(R"(<allow {} send_type="method_call"/>)", destination));
    size_t denyAdmin = anyone.find(std::format(
        R"(<deny {} send_interface="org.example.Demo1.Admin" send_type="method_call"/>)", destination));
    ASSERT_NE(allowAll, std::string::npos) << conf->text;
    ASSERT_NE(denyAdmin, std::string::npos) << conf->text;
    EXPECT_LT(allowAll, denyAdmin) << "the later rule wins in dbus-daemon: the deny must follow the allow";
    std::string wheel = policy(conf, R"(group="wheel")");
    EXPECT_NE(
        wheel.find(std::format(
            R"(<allow {} send_interface="org.example.Demo1.Admin" send_type="method_call"/>)", destination)),
        std::string::npos)
        << conf->text;
    EXPECT_NE(wheel.find(R"(send_interface="org.freedesktop.DBus.Properties" send_member="Set")"),
              std::string::npos)
        << "who may call an interface may set properties (the object's Policy guards which)\n"
        << conf->text;
    std::string auditor = policy(conf, R"(user="auditor")");
    EXPECT_NE(auditor.find(R"(send_interface="org.example.Demo1.Debug" send_type="method_call")"),
              std::string::npos)
        << conf->text;
    EXPECT_EQ(auditor.find("Admin"), std::string::npos) << conf->text;
}

TEST(BusUnits, NamesAreEscapedInThePolicy) {
    ServiceSpec spec = busOnly();
    spec.bus.access = {{.user = "a\"b<c>&"}};
    auto units = generateUnits(spec);
    const UnitFile* conf = find(units, "dbus-1/system.d/org.example.Demo1.conf");
    ASSERT_TRUE(conf);
    EXPECT_NE(conf->text.find(R"(<policy user="a&quot;b&lt;c&gt;&amp;">)"), std::string::npos) << conf->text;
}

TEST(BusUnits, SocketsAndABusNameShareOneService) {
    ServiceSpec spec = busOnly();
    spec.sockets = {{.name = "dbus", .address = "/run/demo.sock", .protocol = Protocol::DBus}};
    auto units = generateUnits(spec);
    ASSERT_EQ(units.size(), 4u);
    const UnitFile* service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "Requires=demo.socket"));
    EXPECT_TRUE(has(service, "BusName=org.example.Demo1"));
    EXPECT_TRUE(find(units, "demo.socket"));
}

TEST(BusUnits, EveryFileSaysItIsGenerated) {
    for (const UnitFile& unit : generateUnits(busOnly()))
        EXPECT_NE(unit.text.find("Generated from the ServiceSpec of demo"), std::string::npos) << unit.path();
}

} // namespace
} // namespace svckit
