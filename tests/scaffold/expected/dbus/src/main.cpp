// hello — a svckit service that greets each caller and says who it is, as the kernel tells: the uid
// and pid of the connection (SO_PEERCRED), the pid pinned by a pidfd (SO_PEERPIDFD), so that a reused pid
// can never answer for the caller.
//
// Its sockets, Accept=no: one process for all callers (its units are what `hello --print-units` writes):
//   dbus     /run/hello-dbus.sock: peer-to-peer D-Bus, org.example.Hello1 at /org/example/Hello1
//
// Without systemd: `hello --listen=/tmp/hello-dbus.sock`.
// `hello --help` lists the standard flags.
#include <svckit/identity.hpp>
#include <svckit/service.hpp>

#include "org.example.Hello1_adaptor.h"

#include <cstdint>
#include <format>
#include <string>
#include <tuple>
#include <utility>

namespace {

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
                // Peer-to-peer D-Bus: no bus daemon, the callers connect to the service's own socket.
                svckit::SocketSpec{.name = "dbus",
                                   .address = "/run/hello-dbus.sock",
                                   .protocol = svckit::Protocol::DBus,
                                   .passPidfd = true,
                                   .acceptFileDescriptors = false},
            },
        // The name the service answers to on its peer-to-peer connections (the sender of its signals).
        .dbus = {.name = "org.example.Hello1"},
    };
}

// What both protocols answer: the caller's identity is the connection's, taken once by svckit at accept.
std::string greeting(const std::string& name, const svckit::PeerIdentity& caller) {
    return std::format("Hello, {}! You are uid {}, pid {}.", name, caller.uid, caller.pid);
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
};

class HelloService : public svckit::Service {
public:
    HelloService() : Service(serviceSpec()) {
        // One HelloObject per D-Bus connection, at this path.
        addDBus<HelloObject>("/org/example/Hello1", {});
    }
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<HelloService>(argc, argv);
}
