// hello — a svckit service that greets each caller and says who it is, as the kernel tells: the uid
// and pid of the connection (SO_PEERCRED), the pid pinned by a pidfd (SO_PEERPIDFD), so that a reused pid
// can never answer for the caller.
//
// Its sockets, Accept=yes: one process per connection (its units are what `hello --print-units` writes):
//   varlink  /run/hello.sock: the interface org.example.Hello
//   dbus     /run/hello-dbus.sock: peer-to-peer D-Bus, org.example.Hello1 at /org/example/Hello1
//
// Without systemd: `hello --listen=varlink=/tmp/hello.sock --listen=dbus=/tmp/hello-dbus.sock`.
// `hello --help` lists the standard flags.
#include <svckit/identity.hpp>
#include <svckit/service.hpp>

#include "org.example.Hello.varlink.hpp"
#include "org.example.Hello1_adaptor.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <format>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace {

namespace api = org::example::Hello;

// The one declaration of the service: svckit serves these sockets, checks at start-up that systemd handed
// them over with these options, and writes the units from it (--print-units).
svckit::ServiceSpec serviceSpec() {
    return {
        .name = "hello",
        .description = "hello: greets each caller and says who it is",
        .version = "0.1.0",
        .sockets =
            {
                // name: FileDescriptorName=; accept: Accept=; passPidfd: PassPIDFD= (the caller's pidfd);
                // acceptFileDescriptors: AcceptFileDescriptors=.
                svckit::SocketSpec{.name = "varlink",
                                   .address = "/run/hello.sock",
                                   .accept = true,
                                   .passPidfd = true,
                                   .acceptFileDescriptors = true},
                // Peer-to-peer D-Bus: no bus daemon, the callers connect to the service's own socket.
                svckit::SocketSpec{.name = "dbus",
                                   .address = "/run/hello-dbus.sock",
                                   .protocol = svckit::Protocol::DBus,
                                   .accept = true,
                                   .passPidfd = true,
                                   .acceptFileDescriptors = true},
            },
        // The name the service answers to on its peer-to-peer connections (the sender of its signals).
        .dbus = {.name = "org.example.Hello1"},
    };
}

// What both protocols answer: the caller's identity is the connection's, taken once by svckit at accept.
std::string greeting(const std::string& name, const svckit::PeerIdentity& caller) {
    return std::format("Hello, {}! You are uid {}, pid {}.", name, caller.uid, caller.pid);
}

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

// The D-Bus object: svckit makes one instance per D-Bus connection. A handler throws sdbus::Error to answer
// with an error.
class HelloObject final : public svckit::dbus::Object<org::example::Hello1_adaptor> {
public:
    explicit HelloObject(svckit::dbus::Binding binding) : Object(std::move(binding)) {}
    ~HelloObject() override = default;

private:
    std::tuple<std::string, uint32_t, uint32_t> Hello(const std::string& name) override {
        const svckit::PeerIdentity& peer = caller();
        return {greeting(name, peer), static_cast<uint32_t>(peer.uid), static_cast<uint32_t>(peer.pid)};
    }

    std::tuple<std::string, int64_t> Inspect(const sdbus::UnixFd& fd) override {
        struct stat st {};
        if (::fstat(fd.get(), &st) < 0)
            throw sdbus::createError(errno, "Failed to inspect the file descriptor");
        return {kindOf(st.st_mode), static_cast<int64_t>(st.st_size)};
    }
};

class HelloService : public svckit::Service, private api::Server {
public:
    HelloService() : Service(serviceSpec()) {
        // Only Inspect receives fds (the socket accepts them too: AcceptFileDescriptors=yes); any other
        // method's are closed.
        addVarlink(interface({.Inspect = {.acceptFds = true}}));
        // One HelloObject per D-Bus connection, at this path.
        addDBus<HelloObject>("/org/example/Hello1", {});
    }

private:
    // Errors are returned as values: an error of the interface, or an ErrorReply.
    api::HelloReply Hello(api::HelloIn in, api::HelloContext& ctx) override {
        const svckit::PeerIdentity& caller = ctx.peer();
        return api::HelloOut{.greeting = greeting(in.name, caller), .uid = caller.uid, .pid = caller.pid};
    }

    api::InspectReply Inspect(api::InspectIn in, api::InspectContext& ctx) override {
        std::optional<int> fd = ctx.fd(in.fd); // borrowed while the handler runs
        if (!fd)
            return api::NoSuchFd{.fd = in.fd};
        struct stat st {};
        if (::fstat(*fd, &st) < 0)
            return svckit::varlink::ErrorReply::system(errno);
        return api::InspectOut{.kind = kindOf(st.st_mode), .size = static_cast<int64_t>(st.st_size)};
    }
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<HelloService>(argc, argv);
}
