// {{name}} — a svckit service that greets each caller and says who it is, as the kernel tells: the uid
// and pid of the connection (SO_PEERCRED), the pid pinned by a pidfd (SO_PEERPIDFD), so that a reused pid
// can never answer for the caller.
//
// Its sockets, {{acceptWords}} (its units are what `{{name}} --print-units` writes):
{{#if varlink}}
//   varlink  {{varlinkSocket}}: the interface {{interface}}
{{#end}}
{{#if dbus}}
//   dbus     {{dbusSocket}}: peer-to-peer D-Bus, {{busName}} at {{objectPath}}
{{#end}}
//
// Without systemd: `{{name}} --listen={{listenExample}}`.
// `{{name}} --help` lists the standard flags.
#include <svckit/identity.hpp>
#include <svckit/service.hpp>

{{#if varlink}}
#include "{{interface}}.varlink.hpp"
{{#end}}
{{#if dbus}}
#include "{{busName}}_adaptor.h"
{{#end}}

{{#if fds}}
#include <sys/stat.h>

{{#end}}
{{#if fds}}
#include <cerrno>
{{#end}}
#include <cstdint>
#include <format>
{{#if fds}}
#include <optional>
{{#end}}
#include <string>
{{#if dbus}}
#include <tuple>
#include <utility>
{{#end}}

namespace {

{{#if varlink}}
namespace api = {{interfaceNamespace}};

{{#end}}
// The one declaration of the service: svckit serves these sockets, checks at start-up that systemd handed
// them over with these options, and writes the units from it (--print-units).
svckit::ServiceSpec serviceSpec() {
    return {
        .name = "{{name}}",
        .description = "{{name}}: greets each caller and says who it is",
        .version = "0.1.0",
        .sockets =
            {
                // name: FileDescriptorName=; accept: Accept=; passPidfd: PassPIDFD= (the caller's pidfd);
                // acceptFileDescriptors: AcceptFileDescriptors=.
{{#if varlink}}
                svckit::SocketSpec{.name = "varlink",
                                   .address = "{{varlinkSocket}}",
{{#if accept}}
                                   .accept = true,
{{#end}}
                                   .passPidfd = true,
                                   .acceptFileDescriptors = {{fdsBool}}},
{{#end}}
{{#if dbus}}
                // Peer-to-peer D-Bus: no bus daemon, the callers connect to the service's own socket.
                svckit::SocketSpec{.name = "dbus",
                                   .address = "{{dbusSocket}}",
                                   .protocol = svckit::Protocol::DBus,
{{#if accept}}
                                   .accept = true,
{{#end}}
                                   .passPidfd = true,
                                   .acceptFileDescriptors = {{fdsBool}}},
{{#end}}
            },
{{#if dbus}}
        // The name the service answers to on its peer-to-peer connections (the sender of its signals).
        .dbus = {.name = "{{busName}}"},
{{#end}}
    };
}

// What both protocols answer: the caller's identity is the connection's, taken once by svckit at accept.
std::string greeting(const std::string& name, const svckit::PeerIdentity& caller) {
    return std::format("Hello, {}! You are uid {}, pid {}.", name, caller.uid, caller.pid);
}
{{#if fds}}

// The kind of a file, from fstat() alone: a caller's fd is never read here, since reading a pipe its sender
// never writes to would stall the service.
std::string kindOf(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFREG:
        return "regular file";
    case S_IFDIR:
        return "directory";
    case S_IFIFO:
        return "pipe";
    case S_IFSOCK:
        return "socket";
    case S_IFCHR:
        return "character device";
    case S_IFBLK:
        return "block device";
    default:
        return "other";
    }
}
{{#end}}
{{#if dbus}}

// The D-Bus object: svckit makes one instance per D-Bus connection. A handler throws sdbus::Error to answer
// with an error.
class {{className}}Object final : public svckit::dbus::Object<{{adaptorClass}}> {
public:
    explicit {{className}}Object(svckit::dbus::Binding binding) : Object(std::move(binding)) {}
    ~{{className}}Object() override = default;

private:
    std::tuple<std::string, uint32_t, uint32_t> Hello(const std::string& name) override {
        const svckit::PeerIdentity& peer = caller();
        return {greeting(name, peer), static_cast<uint32_t>(peer.uid), static_cast<uint32_t>(peer.pid)};
    }
{{#if fds}}

    std::tuple<std::string, int64_t> Inspect(const sdbus::UnixFd& fd) override {
        struct stat st {};
        if (::fstat(fd.get(), &st) < 0)
            throw sdbus::createError(errno, "Failed to inspect the file descriptor");
        return {kindOf(st.st_mode), static_cast<int64_t>(st.st_size)};
    }
{{#end}}
};
{{#end}}

{{#if varlink}}
class {{className}}Service : public svckit::Service, private api::Server {
{{#else}}
class {{className}}Service : public svckit::Service {
{{#end}}
public:
    {{className}}Service() : Service(serviceSpec()) {
{{#if varlink}}
{{#if fds}}
        // Only Inspect receives fds (the socket accepts them too: AcceptFileDescriptors=yes); any other
        // method's are closed.
        addVarlink(interface({.Inspect = {.acceptFds = true}}));
{{#else}}
        // The handlers of the interface are the methods below.
        addVarlink(interface());
{{#end}}
{{#end}}
{{#if dbus}}
        // One {{className}}Object per D-Bus connection, at this path.
        addDBus<{{className}}Object>("{{objectPath}}", {});
{{#end}}
    }
{{#if varlink}}

private:
    // Errors are returned as values: an error of the interface, or an ErrorReply.
    api::HelloReply Hello(api::HelloIn in, api::HelloContext& ctx) override {
        const svckit::PeerIdentity& caller = ctx.peer();
        return api::HelloOut{.greeting = greeting(in.name, caller), .uid = caller.uid, .pid = caller.pid};
    }
{{#if fds}}

    api::InspectReply Inspect(api::InspectIn in, api::InspectContext& ctx) override {
        std::optional<int> fd = ctx.fd(in.fd); // borrowed while the handler runs
        if (!fd)
            return api::NoSuchFd{.fd = in.fd};
        struct stat st {};
        if (::fstat(*fd, &st) < 0)
            return svckit::varlink::ErrorReply::system(errno);
        return api::InspectOut{.kind = kindOf(st.st_mode), .size = static_cast<int64_t>(st.st_size)};
    }
{{#end}}
{{#end}}
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<{{className}}Service>(argc, argv);
}
