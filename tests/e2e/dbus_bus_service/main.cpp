// svckit-e2e-dbus-bus — the test-only service of tests/e2e/dbus_bus.sh: one object on the system bus under
// org.svckit.test.BusProbe1 (bus mode, bus-activated through its generated files), reporting its caller.
// Not installed: its units (--print-units=DIR) name the binary where it was built.
//
// Bus policy (ServiceSpec::bus.access): anyone may call org.svckit.test.BusProbe1, nobody but the owner
// (root) org.svckit.test.BusProbe1.Admin. In the service, RootOnly is guarded by Policy::rootOnly().
#include "org.svckit.test.BusProbe1.adaptor.h"

#include <svckit/identity.hpp>
#include <svckit/service.hpp>

#include <filesystem>
#include <string>
#include <tuple>

namespace {

using namespace svckit;

ServiceSpec busSpec() {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return {
        .name = "svckit-e2e-dbus-bus",
        .description = "svckit bus-mode test service (tests/e2e/dbus_bus.sh)",
        .version = "1.0",
        .executable = ec ? std::string() : self.string(),
        .sockets = {},
        .bus = {.name = "org.svckit.test.BusProbe1",
                .access = {{}, {.interface = "org.svckit.test.BusProbe1.Admin", .allow = false}}},
        // Whoami reads the cgroup and comm of callers run by other users: their processes must be visible.
        .hardening = {.peerProcesses = PeerProcesses::Visible},
    };
}

class Probe final
    : public dbus::Object<org::svckit::test::BusProbe1_adaptor, org::svckit::test::BusProbe1::Admin_adaptor> {
public:
    explicit Probe(dbus::Binding binding) : Object(std::move(binding)) {}

private:
    std::tuple<uint32_t, int32_t, bool, std::string, std::string> Whoami() override {
        const PeerIdentity& who = caller();
        std::string cgroup;
        std::string comm;
        if (who.pinned())
            if (auto facts = readProcessFacts(who.pidfd.get())) {
                cgroup = facts->cgroup.value_or("");
                comm = facts->comm.value_or("");
            }
        return {who.uid, who.pid, who.pinned(), cgroup, comm};
    }
    std::string RootOnly() override { return "root only"; }
    std::string Secret() override { return "secret"; }
};

class BusProbe : public Service {
public:
    BusProbe() : Service(busSpec()) {
        addDBus<Probe>("/org/svckit/test/BusProbe1", {.methods = {{"RootOnly", Policy::rootOnly()}}});
    }
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<BusProbe>(argc, argv);
}
