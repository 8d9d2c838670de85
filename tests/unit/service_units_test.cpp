// Units written from a ServiceSpec: every setting the spec implies is in the right unit, and nothing else
// (systemd-analyze verify of generated units runs under the real systemd in tests/e2e).
#include <svckit/service.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace svckit {
namespace {

using namespace std::chrono_literals;

const UnitFile* find(const std::vector<UnitFile>& units, std::string_view name) {
    auto it = std::ranges::find(units, name, &UnitFile::name);
    return it == units.end() ? nullptr : &*it;
}

bool has(const UnitFile* unit, std::string_view line) {
    return unit && unit->text.find(std::string(line) + "\n") != std::string::npos;
}

ServiceSpec oneSocket() {
    return {.name = "demo",
            .description = "Demo service",
            .version = "1",
            .sockets = {{.name = "varlink", .address = "/run/demo.sock"}}};
}

TEST(ServiceUnits, OneSocketGivesASocketAndANotifyService) {
    auto units = generateUnits(oneSocket());
    ASSERT_EQ(units.size(), 2u);
    const UnitFile* socket = find(units, "demo.socket");
    const UnitFile* service = find(units, "demo.service");
    ASSERT_TRUE(socket && service);
    EXPECT_TRUE(has(socket, "ListenStream=/run/demo.sock"));
    EXPECT_TRUE(has(socket, "FileDescriptorName=varlink"));
    EXPECT_TRUE(has(socket, "SocketMode=0666"));
    EXPECT_TRUE(has(socket, "PassPIDFD=yes"));
    EXPECT_TRUE(has(socket, "AcceptFileDescriptors=no"));
    EXPECT_TRUE(has(socket, "MaxConnections=64"));
    EXPECT_TRUE(has(socket, "WantedBy=sockets.target"));
    EXPECT_FALSE(has(socket, "Accept=yes"));
    EXPECT_FALSE(has(socket, "PassCredentials=yes"));
    EXPECT_EQ(socket->text.find("Service="), std::string::npos)
        << "demo.socket activates demo.service by name";
    EXPECT_TRUE(has(service, "Type=notify"));
    EXPECT_TRUE(has(service, "ExecStart=/usr/bin/demo"));
    EXPECT_TRUE(has(service, "Requires=demo.socket"));
    EXPECT_TRUE(has(service, "After=demo.socket"));
    EXPECT_TRUE(has(service, "NoNewPrivileges=yes"));
    EXPECT_TRUE(has(service, "ProtectSystem=strict"));
    EXPECT_TRUE(has(service, "RestrictAddressFamilies=AF_UNIX"));
    EXPECT_FALSE(has(service, "WatchdogSec=0ms"));
    EXPECT_EQ(service->text.find("WatchdogSec="), std::string::npos);
}

TEST(ServiceUnits, SocketOptionsFollowTheSpec) {
    ServiceSpec spec = oneSocket();
    spec.sockets[0].type = SocketType::SeqPacket;
    spec.sockets[0].passCredentials = true;
    spec.sockets[0].passPidfd = false;
    spec.sockets[0].acceptFileDescriptors = true;
    spec.sockets[0].mode = 0600;
    spec.sockets[0].limits = {.maxConnections = 10, .maxConnectionsPerUid = 3};
    auto units = generateUnits(spec);
    const UnitFile* socket = find(units, "demo.socket");
    EXPECT_TRUE(has(socket, "ListenSequentialPacket=/run/demo.sock"));
    EXPECT_TRUE(has(socket, "PassCredentials=yes"));
    EXPECT_TRUE(has(socket, "PassPIDFD=no"));
    EXPECT_TRUE(has(socket, "AcceptFileDescriptors=yes"));
    EXPECT_TRUE(has(socket, "SocketMode=0600"));
    EXPECT_TRUE(has(socket, "MaxConnections=10"));
    EXPECT_TRUE(has(socket, "MaxConnectionsPerSource=3"));
}

TEST(ServiceUnits, SocketUserAndGroupAreWrittenOnlyWhenTheSpecNamesThem) {
    ServiceSpec spec = oneSocket();
    auto plain = generateUnits(spec);
    EXPECT_EQ(find(plain, "demo.socket")->text.find("SocketUser="), std::string::npos);
    EXPECT_EQ(find(plain, "demo.socket")->text.find("SocketGroup="), std::string::npos);
    spec.sockets[0].user = "demo";
    spec.sockets[0].group = "demo-clients";
    auto units = generateUnits(spec);
    const UnitFile* socket = find(units, "demo.socket");
    EXPECT_TRUE(has(socket, "SocketUser=demo"));
    EXPECT_TRUE(has(socket, "SocketGroup=demo-clients"));
}

TEST(ServiceUnits, ServiceSettingsFollowTheSpec) {
    ServiceSpec spec = oneSocket();
    spec.executable = "/opt/demo/bin/demo";
    spec.documentation = "man:demo(8)";
    spec.watchdog = 30s;
    spec.hardening.enabled = false;
    auto units = generateUnits(spec);
    const UnitFile* service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "ExecStart=/opt/demo/bin/demo"));
    EXPECT_TRUE(has(service, "Documentation=man:demo(8)"));
    EXPECT_TRUE(has(service, "WatchdogSec=30000ms"));
    EXPECT_FALSE(has(service, "NoNewPrivileges=yes"));
}

TEST(ServiceUnits, SeveralSocketsShareOneServiceAndAcceptYesGetsATemplate) {
    ServiceSpec spec = oneSocket();
    spec.sockets.push_back({.name = "admin", .address = "/run/demo-admin.sock", .mode = 0600});
    spec.sockets.push_back({.name = "conn", .address = "/run/demo-conn.sock", .accept = true});
    auto units = generateUnits(spec);
    ASSERT_EQ(units.size(), 5u);
    const UnitFile* admin = find(units, "demo-admin.socket");
    EXPECT_TRUE(has(admin, "Service=demo.service"));
    EXPECT_TRUE(has(admin, "FileDescriptorName=admin"));
    const UnitFile* conn = find(units, "demo-conn.socket");
    EXPECT_TRUE(has(conn, "Accept=yes"));
    EXPECT_EQ(conn->text.find("Service="), std::string::npos) << "Accept=yes sockets cannot name a service";
    const UnitFile* instance = find(units, "demo-conn@.service");
    EXPECT_TRUE(has(instance, "ExecStart=/usr/bin/demo"));
    EXPECT_TRUE(has(instance, "Type=notify"));
    const UnitFile* service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "Requires=demo.socket demo-admin.socket"));
    EXPECT_TRUE(has(service, "After=demo.socket demo-admin.socket"));
}

TEST(ServiceUnits, OnlyAcceptYesSocketsGiveNoPlainService) {
    ServiceSpec spec = oneSocket();
    spec.sockets[0].accept = true;
    auto units = generateUnits(spec);
    ASSERT_EQ(units.size(), 2u);
    EXPECT_TRUE(find(units, "demo-varlink.socket"));
    EXPECT_TRUE(find(units, "demo-varlink@.service"));
    EXPECT_FALSE(find(units, "demo.service"));
}

TEST(ServiceUnits, TheDefaultSandboxRunsAsADynamicUserWithoutCapabilitiesNetworkOrOtherUsersProcesses) {
    auto units = generateUnits(oneSocket());
    const UnitFile* service = find(units, "demo.service");
    for (std::string_view line : {"DynamicUser=yes",
                                  "CapabilityBoundingSet=",
                                  "NoNewPrivileges=yes",
                                  "ProtectSystem=strict",
                                  "ProtectHome=yes",
                                  "PrivateTmp=yes",
                                  "PrivateDevices=yes",
                                  "PrivateNetwork=yes",
                                  "IPAddressDeny=any",
                                  "ProtectProc=invisible",
                                  "ProcSubset=pid",
                                  "ProtectClock=yes",
                                  "ProtectHostname=yes",
                                  "ProtectKernelTunables=yes",
                                  "ProtectKernelModules=yes",
                                  "ProtectKernelLogs=yes",
                                  "ProtectControlGroups=yes",
                                  "RestrictAddressFamilies=AF_UNIX",
                                  "RestrictNamespaces=yes",
                                  "RestrictRealtime=yes",
                                  "RestrictSUIDSGID=yes",
                                  "LockPersonality=yes",
                                  "MemoryDenyWriteExecute=yes",
                                  "RemoveIPC=yes",
                                  "UMask=0077",
                                  "SystemCallArchitectures=native",
                                  "SystemCallFilter=@system-service",
                                  "SystemCallFilter=~@privileged @resources",
                                  "SystemCallErrorNumber=EPERM"})
        EXPECT_TRUE(has(service, line)) << line;
    EXPECT_EQ(service->text.find("User="), service->text.find("DynamicUser=") + 7) << "no User= line";
    EXPECT_EQ(service->text.find("AmbientCapabilities="), std::string::npos);
    EXPECT_EQ(service->text.find("StartLimitIntervalSec="), std::string::npos)
        << "a service that does not exit on idle keeps systemd's start limit";
}

TEST(ServiceUnits, HardeningNamesTheUserTheCapabilitiesAndExtraLines) {
    ServiceSpec spec = oneSocket();
    spec.hardening = {.user = "demo",
                      .capabilities = {"CAP_NET_BIND_SERVICE"},
                      .extraServiceLines = {"PrivateUsers=yes", "ReadWritePaths=/var/lib/demo"}};
    auto units = generateUnits(spec);
    const UnitFile* service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "User=demo"));
    EXPECT_FALSE(has(service, "DynamicUser=yes"));
    EXPECT_TRUE(has(service, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"));
    EXPECT_TRUE(has(service, "AmbientCapabilities=CAP_NET_BIND_SERVICE"))
        << "a non-root user needs them ambient";
    // The extra lines come last, so that they override the generated ones.
    EXPECT_TRUE(service->text.ends_with("PrivateUsers=yes\nReadWritePaths=/var/lib/demo\n")) << service->text;

    spec.hardening = {.user = "root", .capabilities = {"CAP_KILL"}};
    service = find(units = generateUnits(spec), "demo.service");
    EXPECT_EQ(service->text.find("User="), std::string::npos) << "root: neither User= nor DynamicUser=";
    EXPECT_TRUE(has(service, "CapabilityBoundingSet=CAP_KILL"));
    EXPECT_EQ(service->text.find("AmbientCapabilities="), std::string::npos) << "root has them already";
}

TEST(ServiceUnits, PeerProcessesChoosesProtectProcAndCapSysPtrace) {
    ServiceSpec spec = oneSocket();
    spec.hardening.peerProcesses = PeerProcesses::Visible;
    const UnitFile* service = nullptr;
    auto units = generateUnits(spec);
    service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "ProtectProc=default"));
    EXPECT_TRUE(has(service, "CapabilityBoundingSet="));

    spec.hardening.peerProcesses = PeerProcesses::Readable;
    units = generateUnits(spec);
    service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "ProtectProc=invisible")) << "CAP_SYS_PTRACE sees through hidepid=invisible";
    EXPECT_TRUE(has(service, "CapabilityBoundingSet=CAP_SYS_PTRACE"));
    EXPECT_TRUE(has(service, "AmbientCapabilities=CAP_SYS_PTRACE"));
}

TEST(ServiceUnits, HardeningDisabledWritesNoSandboxButTheExtraLines) {
    ServiceSpec spec = oneSocket();
    spec.hardening = {.enabled = false, .extraServiceLines = {"ProtectSystem=full"}};
    auto units = generateUnits(spec);
    const UnitFile* service = find(units, "demo.service");
    EXPECT_FALSE(has(service, "DynamicUser=yes"));
    EXPECT_FALSE(has(service, "NoNewPrivileges=yes"));
    EXPECT_TRUE(has(service, "ProtectSystem=full"));
}

TEST(ServiceUnits, AnExitOnIdleServiceMayStartAsOftenAsItCanExitOnIdleAndFiveTimesMore) {
    ServiceSpec spec = oneSocket();
    spec.exitOnIdle = 500ms;
    auto units = generateUnits(spec);
    const UnitFile* service = find(units, "demo.service");
    EXPECT_TRUE(has(service, "StartLimitIntervalSec=10s"));
    EXPECT_TRUE(has(service, "StartLimitBurst=26")) << "10 s / 500 ms + 1 runs, and systemd's 5";
    EXPECT_LT(service->text.find("StartLimitBurst="), service->text.find("[Service]")) << "a [Unit] setting";
    spec.exitOnIdle = 60s;
    units = generateUnits(spec);
    EXPECT_TRUE(has(find(units, "demo.service"), "StartLimitBurst=6"));
}

TEST(ServiceUnits, TheFirstVarlinkSocketRegistersEveryDeclaredInterface) {
    ServiceSpec spec = oneSocket();
    spec.sockets.insert(spec.sockets.begin(),
                        {.name = "raw", .address = "/run/demo-raw.sock", .protocol = Protocol::Raw});
    spec.sockets.push_back({.name = "conn", .address = "/run/demo-conn.sock", .accept = true});
    auto units = generateUnits(spec, {.varlinkInterfaces = {"io.example.Demo", "io.example.Other"}});
    const UnitFile* varlink = find(units, "demo-varlink.socket");
    EXPECT_TRUE(has(varlink, "Symlinks=/run/varlink/registry/io.example.Demo"));
    EXPECT_TRUE(has(varlink, "Symlinks=/run/varlink/registry/io.example.Other"));
    for (std::string_view other : {"demo.socket", "demo-conn.socket"})
        EXPECT_EQ(find(units, other)->text.find("Symlinks="), std::string::npos) << other;
    EXPECT_EQ(find(generateUnits(spec), "demo-varlink.socket")->text.find("Symlinks="), std::string::npos)
        << "no interfaces known, none registered";
}

TEST(ServiceUnits, EveryUnitSaysItIsGenerated) {
    for (const UnitFile& unit : generateUnits(oneSocket()))
        EXPECT_TRUE(unit.text.starts_with("# Generated from the ServiceSpec of demo")) << unit.name;
}

} // namespace
} // namespace svckit
