// svckit-example-peercred — the activation, verification and identity layers on their own, without the
// varlink engine or the Service class: a socket-activated service that answers every caller with the identity
// it saw (uid, gid, pid, pidfd and the process facts read through the pidfd) plus the socket options it found
// applied on the listening and on the accepted socket. svckit-example-identity is the same idea as a varlink
// service; this one also shows per-message identity on SOCK_SEQPACKET (SCM_CREDENTIALS + SCM_PIDFD).
//
// Sockets (see units/svckit-example-peercred*.socket):
//   identity            stream, Accept=no: send any request; one JSON line comes back, then the connection
//   closes identity-seqpacket  seqpacket: every message is answered with the identity of that message's
//   sender; the
//                       connection stays open
//   identity-accept     stream, Accept=yes: one service instance per connection, answering like `identity`
// Flags: --check (verify the activated sockets and exit), --repair (fix option mismatches instead of
// refusing).
#include <svckit/activation.hpp>
#include <svckit/identity.hpp>
#include <svckit/log.hpp>
#include <svckit/message.hpp>
#include <svckit/socket_options.hpp>

#include <systemd/sd-daemon.h>

#include <array>
#include <csignal>
#include <cstring>
#include <map>
#include <poll.h>
#include <string>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace svckit;

// The single description of this service's sockets: the units are written from it, activated fds are checked
// against it, and without systemd the service binds these itself.
std::vector<SocketSpec> socketSpecs() {
    return {
        SocketSpec{.name = "identity",
                   .address = "/run/svckit-example-peercred.sock",
                   .type = SocketType::Stream,
                   .passCredentials = true,
                   .passPidfd = true,
                   .acceptFileDescriptors = false},
        SocketSpec{.name = "identity-seqpacket",
                   .address = "/run/svckit-example-peercred.seqpacket",
                   .type = SocketType::SeqPacket,
                   .passCredentials = true,
                   .passPidfd = true,
                   .acceptFileDescriptors = false},
        SocketSpec{.name = "identity-accept",
                   .address = "/run/svckit-example-peercred-accept.sock",
                   .type = SocketType::Stream,
                   .accept = true,
                   .passCredentials = true,
                   .passPidfd = true,
                   .acceptFileDescriptors = false},
    };
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

class IdentityService {
public:
    explicit IdentityService(std::vector<SocketSpec> specs) : specs_(std::move(specs)) {}

    // Acquires the sockets (activated or bound) and checks them. Returns false when it must not run.
    Result<void> setUp(VerifyMode mode) {
        auto activation = Activation::fromEnvironment();
        if (!activation)
            return std::unexpected(activation.error());
        if (!activation->ignoredReason().empty())
            logWarning("Ignoring passed sockets: {}", activation->ignoredReason());
        if (activation->activated()) {
            if (auto ok = verifyActivation(*activation, specs_, mode); !ok)
                return ok;
            for (const auto& spec : specs_)
                for (auto& fd : activation->take(spec.name))
                    adopt(std::move(fd.fd), spec, fd.info.listening);
        } else {
            for (const auto& spec : specs_) {
                if (spec.accept)
                    continue; // per-connection instances exist only under a socket manager
                auto fd = bindSocket(spec);
                if (!fd)
                    return std::unexpected(fd.error());
                adopt(std::move(*fd), spec, true);
            }
        }
        return {};
    }

    [[nodiscard]] size_t listenerCount() const { return listeners_.size(); }
    [[nodiscard]] size_t connectionCount() const { return connections_.size(); }

    // Serves until SIGTERM/SIGINT, or, for an Accept=yes instance, until its one connection is done.
    Result<void> run() {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, nullptr);
        UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!sfd)
            return failErrno("Failed to create signalfd");
        bool perConnectionInstance = listeners_.empty();
        sd_notify(0, "READY=1\nSTATUS=Answering callers with their identity");
        while (true) {
            if (perConnectionInstance && connections_.empty())
                return {};
            std::vector<pollfd> pfds;
            pfds.push_back({sfd.get(), POLLIN, 0});
            for (auto& l : listeners_)
                pfds.push_back({l.fd.get(), POLLIN, 0});
            for (auto& [fd, c] : connections_)
                pfds.push_back({fd, POLLIN, 0});
            if (::poll(pfds.data(), pfds.size(), -1) < 0) {
                if (errno == EINTR)
                    continue;
                return failErrno("Failed to poll");
            }
            if (pfds[0].revents) {
                sd_notify(0, "STOPPING=1");
                return {};
            }
            for (size_t i = 1; i < pfds.size(); ++i) {
                if (!pfds[i].revents)
                    continue;
                if (i <= listeners_.size())
                    acceptOne(listeners_[i - 1]);
                else
                    serve(pfds[i].fd);
            }
        }
    }

private:
    struct Listener {
        UniqueFd fd;
        const SocketSpec* spec;
        std::string options; // as found at start-up
    };
    struct Connection {
        UniqueFd fd;
        const SocketSpec* spec;
        std::string listenerOptions;
        std::string connectionOptions;
        PeerIdentity peer; // taken once at accept (stream)
    };

    void adopt(UniqueFd fd, const SocketSpec& spec, bool listening) {
        std::string options = optionsJson(readAppliedOptions(fd.get()));
        if (listening) {
            listeners_.push_back({std::move(fd), &spec, std::move(options)});
            return;
        }
        // An Accept=yes instance: the fd is the connection itself. Its listener is not ours to read.
        addConnection(std::move(fd), spec, "null");
    }

    void acceptOne(Listener& l) {
        auto fd = acceptConnection(l.fd.get(), *l.spec, AcceptedPolicy::Repair, &counters_);
        if (!fd) {
            if (fd.error().code() != EAGAIN)
                logWarning("{}", fd.error().message());
            return;
        }
        addConnection(std::move(*fd), *l.spec, l.options);
    }

    void addConnection(UniqueFd fd, const SocketSpec& spec, std::string listenerOptions) {
        Connection c{.fd = {},
                     .spec = &spec,
                     .listenerOptions = std::move(listenerOptions),
                     .connectionOptions = optionsJson(readAppliedOptions(fd.get())),
                     .peer = {}};
        if (spec.type == SocketType::Stream) {
            auto peer = identityOfPeer(fd.get());
            if (!peer) {
                logWarning("Dropping a connection on '{}': {}", spec.name, peer.error().message());
                return;
            }
            c.peer = std::move(*peer);
        }
        int raw = fd.get();
        c.fd = std::move(fd);
        connections_.emplace(raw, std::move(c));
    }

    void serve(int fd) {
        auto it = connections_.find(fd);
        if (it == connections_.end())
            return;
        Connection& c = it->second;
        std::array<std::byte, 4096> buffer;
        auto msg = receiveMessage(fd, buffer, {.acceptFds = c.spec->acceptFileDescriptors}, &counters_);
        if (!msg) {
            if (msg.error().code() == EAGAIN)
                return;
            logDebug("Closing a connection on '{}': {}", c.spec->name, msg.error().message());
            connections_.erase(it);
            return;
        }
        if (msg->eof) {
            connections_.erase(it);
            return;
        }
        std::string reply;
        if (c.spec->type == SocketType::SeqPacket) {
            auto sender = identityOfMessage(*msg);
            if (!sender)
                reply = std::format("{{\"error\":{}}}\n", jsonString(sender.error().message()));
            else
                reply = identityJson(*sender, "SCM_PIDFD", *c.spec, c.listenerOptions, c.connectionOptions,
                                     counters_.unwantedFdsClosed.load());
        } else {
            reply = identityJson(c.peer, "SO_PEERPIDFD", *c.spec, c.listenerOptions, c.connectionOptions,
                                 counters_.unwantedFdsClosed.load());
        }
        // Replies are small; a peer that does not read them loses its connection rather than blocking others.
        ssize_t n = ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(reply.size()) || c.spec->type == SocketType::Stream)
            connections_.erase(it);
    }

    std::vector<SocketSpec> specs_;
    std::vector<Listener> listeners_;
    std::map<int, Connection> connections_;
    ConnectionCounters counters_;
};

void usage() {
    std::fputs("Usage: svckit-example-peercred [--check] [--repair]\n"
               "Answers each caller with the identity it saw. Socket-activated by its units, or binds its\n"
               "sockets itself when started without LISTEN_FDS.\n"
               "  --check   verify the activated sockets against the service's socket specs and exit\n"
               "  --repair  set missing socket options (with a warning) instead of refusing to start\n",
               stdout);
}

} // namespace

int main(int argc, char** argv) {
    VerifyMode mode = VerifyMode::Strict;
    bool checkOnly = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--check") {
            checkOnly = true;
        } else if (arg == "--repair") {
            mode = VerifyMode::Repair;
        } else if (arg == "--help" || arg == "-h") {
            usage();
            return 0;
        } else {
            svckit::logError("Unknown argument '{}' (see --help)", arg);
            return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    IdentityService service(socketSpecs());
    if (auto ok = service.setUp(mode); !ok) {
        svckit::logError("Refusing to start: {}", ok.error().message());
        sd_notifyf(0, "STATUS=Refusing to start: socket options do not match\nERRNO=%d", ok.error().code());
        return 1;
    }
    if (checkOnly) {
        std::puts("sockets match the service's specs");
        return 0;
    }
    svckit::logInfo("Serving {} listening socket(s), {} connection(s)", service.listenerCount(),
                    service.connectionCount());
    if (auto ok = service.run(); !ok) {
        svckit::logError("{}", ok.error().message());
        return 1;
    }
    return 0;
}
