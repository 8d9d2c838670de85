// svckit-example-peercred — the activation, verification and identity layers without varlink: a Service whose
// three sockets are raw endpoints (svckit/raw.hpp) speaking the service's own tiny protocol. It answers every
// caller with the identity it saw (uid, gid, pid, pidfd and the process facts read through the pidfd) plus
// the socket options it found applied on the listening and on the accepted socket. svckit-example-identity is
// the same idea as a varlink service; this one also shows per-message identity on SOCK_SEQPACKET
// (SCM_CREDENTIALS + SCM_PIDFD).
//
// Sockets (the units are `svckit-example-peercred --print-units`):
//   identity            stream, Accept=no: send any request; one JSON line comes back, then the connection
//                       closes
//   identity-seqpacket  seqpacket: every message is answered with the identity of that message's sender; the
//                       connection stays open
//   identity-accept     stream, Accept=yes: one service instance per connection, answering like `identity`
// Flags: the standard ones (--check, --listen=NAME=PATH, --print-units, ...: docs/service.md) and --repair
// (fix option mismatches instead of refusing: ServiceSpec::verifyMode = VerifyMode::Repair).
#include <svckit/identity.hpp>
#include <svckit/raw.hpp>
#include <svckit/service.hpp>
#include <svckit/socket_options.hpp>

#include <format>
#include <map>
#include <string>

namespace {

using namespace svckit;

// The single description of this service: the units are written from it, activated fds are checked against
// it, and without systemd the service binds these sockets itself.
ServiceSpec peercredSpec(VerifyMode mode) {
    SocketSpec identity{.name = "identity",
                        .address = "/run/svckit-example-peercred.sock",
                        .type = SocketType::Stream,
                        .protocol = Protocol::Raw,
                        .passCredentials = true,
                        .passPidfd = true,
                        .acceptFileDescriptors = false};
    SocketSpec seqpacket = identity;
    seqpacket.name = "identity-seqpacket";
    seqpacket.address = "/run/svckit-example-peercred.seqpacket";
    seqpacket.type = SocketType::SeqPacket;
    SocketSpec accept = identity;
    accept.name = "identity-accept";
    accept.address = "/run/svckit-example-peercred-accept.sock";
    accept.accept = true;
    return {.name = "svckit-example-peercred",
            .description = "svckit example: tells each caller who it is, without varlink",
            .version = "0.1.0",
            .documentation = "file:///usr/share/doc/svckit/examples.md",
            .sockets = {identity, seqpacket, accept},
            // pings from the loop at half this interval; a loop stuck for 30 s gets the service killed
            .watchdog = std::chrono::seconds(30),
            .verifyMode = mode,
            // The sandbox's defaults (docs/security.md) and CAP_SYS_PTRACE: each answer carries the caller's
            // exe, /proc/PID/exe, readable of another user's process (every caller: the service runs as a
            // dynamic user) only with that capability. The ptrace() syscall itself stays filtered out.
            .hardening = {.peerProcesses = PeerProcesses::Readable}};
}

std::string jsonString(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            if (c < 0x20)
                out += std::format("\\u{:04x}", c);
            else
                out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string optionsJson(const Result<AppliedOptions>& o) {
    if (!o)
        return std::format("{{\"error\":{}}}", jsonString(o.error().message()));
    std::string rights = o->acceptFileDescriptors ? (*o->acceptFileDescriptors ? "1" : "0") : "null";
    return std::format("{{\"SO_PASSCRED\":{},\"SO_PASSPIDFD\":{},\"SO_PASSRIGHTS\":{}}}",
                       o->passCredentials ? 1 : 0, o->passPidfd ? 1 : 0, rights);
}

template <typename T>
std::string optionalJson(const std::optional<T>& v) {
    return v ? std::to_string(*v) : "null";
}

std::string optionalString(const std::optional<std::string>& s) {
    return s ? jsonString(*s) : "null";
}

std::string identityJson(const PeerIdentity& id, std::string_view via, const SocketSpec& spec,
                         const std::string& listenerOptions, const std::string& connectionOptions,
                         uint64_t fdsRefused) {
    std::string groups;
    for (gid_t g : id.groups)
        groups += (groups.empty() ? "" : ",") + std::to_string(g);
    std::string facts;
    if (!id.pidfd) {
        facts = "\"process\":{\"error\":\"no pidfd\"}";
    } else if (auto f = readProcessFacts(id.pidfd.get())) {
        facts = std::format(
            "\"process\":{{\"pid\":{},\"alive\":true,\"uid\":{},\"gid\":{},\"cgroup\":{},\"unit\":{},"
            "\"exe\":{},\"comm\":{}}}",
            f->pid, optionalJson(f->uid), optionalJson(f->gid), optionalString(f->cgroup),
            optionalString(f->unit), optionalString(f->exe), optionalString(f->comm));
    } else {
        facts = std::format("\"process\":{{\"alive\":false,\"error\":{}}}", jsonString(f.error().message()));
    }
    return std::format(
        "{{\"socket\":{},\"type\":\"{}\",\"via\":\"{}\",\"pid\":{},\"uid\":{},\"gid\":{},\"groups\":[{}],"
        "\"pidfd\":{},{},\"listener\":{},\"connection\":{},\"fds_refused\":{}}}\n",
        jsonString(spec.name), toString(spec.type), via, id.pid, id.uid, id.gid, groups,
        id.pidfd ? "true" : "false", facts, listenerOptions, connectionOptions, fdsRefused);
}

class Peercred : public Service {
public:
    struct Options {
        bool repair = false;
    };
    static CommandLine commandLine(Options& values) {
        return {
            .options = {{.name = "repair",
                         .help = "Set missing socket options (with a warning) instead of refusing to start",
                         .set = [&values](std::string_view) -> Result<void> {
                             values.repair = true;
                             return {};
                         }}}};
    }

    explicit Peercred(const Options& options)
        : Service(peercredSpec(options.repair ? VerifyMode::Repair : VerifyMode::Strict)) {
        for (const SocketSpec& socket : spec().sockets)
            addRaw(socket.name, {.listening = [this](const SocketSpec& s, int fd) { noteListener(s, fd); },
                                 .message = [this](raw::Connection& c, raw::Message& m) { answer(c, m); }});
    }

private:
    // The options the listening socket carried when the service started serving it.
    void noteListener(const SocketSpec& socket, int fd) {
        listenerOptions_[socket.name] = optionsJson(readAppliedOptions(fd));
    }

    // Any request on a stream: its connection's peer, then the connection closes. Each seqpacket message: the
    // identity that came with that message; the connection stays open.
    void answer(raw::Connection& connection, raw::Message& message) {
        const SocketSpec& socket = connection.socket();
        bool perMessage = socket.type == SocketType::SeqPacket;
        std::string reply;
        if (!message.sender) {
            reply = std::format("{{\"error\":{}}}\n", jsonString(message.sender.error().message()));
        } else {
            // An Accept=yes instance has the connection only: its listener is not ours to read.
            auto listener = listenerOptions_.find(socket.name);
            reply = identityJson(
                *message.sender, perMessage ? "SCM_PIDFD" : "SO_PEERPIDFD", socket,
                connection.handedOver() || listener == listenerOptions_.end() ? "null" : listener->second,
                optionsJson(readAppliedOptions(connection.fd())),
                connection.counters().unwantedFdsClosed.load());
        }
        // Replies are small; a peer that does not read them loses its connection rather than blocking others.
        auto sent = connection.send(reply);
        if (!sent || *sent != reply.size() || !perMessage)
            connection.close();
    }

    std::map<std::string, std::string> listenerOptions_;
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Peercred>(argc, argv);
}
