// svckit-example-identity — answers every varlink caller with who it is, as the service sees it: uid, gid,
// groups and pid from the connection (SO_PEERCRED, SO_PEERPIDFD), and cgroup, unit, exe and comm read through
// the caller's pidfd, so that a reused PID can never answer in the caller's place. Stats shows a guarded
// method (root only, PermissionDenied for anyone else).
//
// Sockets (the units are `svckit-example-identity --print-units`):
//   varlink  /run/svckit-example-identity.sock         Accept=no: one service for every caller
//   accept   /run/svckit-example-identity-accept.sock  Accept=yes: one service instance per connection
//
//   varlinkctl call /run/svckit-example-identity.sock io.svckit.example.Identity.Whoami '{}'
#include <svckit/authorization.hpp>
#include <svckit/identity.hpp>
#include <svckit/service.hpp>

#include "io.svckit.example.Identity.varlink.hpp"

namespace {

namespace identity = io::svckit::example::Identity;
using svckit::varlink::ErrorReply;

svckit::ServiceSpec identitySpec() {
    svckit::SocketSpec varlink{.name = "varlink",
                               .address = "/run/svckit-example-identity.sock",
                               .passPidfd = true,
                               .acceptFileDescriptors = false};
    svckit::SocketSpec accept = varlink;
    accept.name = "accept";
    accept.address = "/run/svckit-example-identity-accept.sock";
    accept.accept = true;
    return {
        .name = "svckit-example-identity",
        .description = "svckit example: tells each varlink caller who it is",
        .version = "0.1.0",
        .documentation = "file:///usr/share/doc/svckit/examples.md",
        .sockets = {varlink, accept},
        // svckit pings from its loop at half this interval; a loop stuck for 30 s gets the service killed.
        .watchdog = std::chrono::seconds(30),
        // The sandbox's defaults (docs/security.md), with one privilege: Whoami names the caller's program,
        // /proc/PID/exe, which the kernel shows another user's process only to a holder of CAP_SYS_PTRACE
        // (ptrace access mode READ). The service runs as a dynamic user, so every caller but itself is
        // "another user", root included. PeerProcesses::Readable grants CAP_SYS_PTRACE (bounding and ambient)
        // and nothing else; the ptrace() syscall itself stays filtered out. Without it Whoami still answers
        // uid, pid, cgroup and comm, and leaves exe out.
        .hardening = {.peerProcesses = svckit::PeerProcesses::Readable},
    };
}

class Identity : public svckit::Service, private identity::Server {
public:
    Identity() : Service(identitySpec()) {
        // Stats is for root only; a misspelt method name here does not compile.
        addVarlink(interface({.Stats = {.policy = svckit::Policy::rootOnly()}}));
    }

private:
    identity::WhoamiReply Whoami(identity::WhoamiIn, identity::WhoamiContext& ctx) override {
        const svckit::PeerIdentity& peer = ctx.peer();
        identity::WhoamiOut out{};
        out.uid = peer.uid;
        out.gid = peer.gid;
        out.groups.assign(peer.groups.begin(), peer.groups.end());
        out.pid = peer.pid;
        out.label = peer.securityLabel;
        if (!peer.pidfd)
            return ErrorReply::system(ENOTSUP); // the kernel gave no pidfd: nothing safe to read
        auto facts = svckit::readProcessFacts(peer.pidfd.get());
        if (!facts) {
            if (facts.error().code() == ESRCH)
                return identity::CallerGone{};
            return ErrorReply::system(facts.error().code());
        }
        out.pid = facts->pid;
        out.cgroup = facts->cgroup;
        out.unit = facts->unit;
        out.exe = facts->exe;
        out.comm = facts->comm;
        return out;
    }

    identity::StatsReply Stats(identity::StatsIn, identity::StatsContext&) override {
        const auto& counters = varlink().counters();
        return identity::StatsOut{.connections = static_cast<int64_t>(counters.connectionsAccepted),
                                  .calls = static_cast<int64_t>(counters.calls)};
    }
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Identity>(argc, argv);
}
