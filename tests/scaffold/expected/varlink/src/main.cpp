// hello — a svckit service that greets each caller and says who it is, as the kernel tells: the uid
// and pid of the connection (SO_PEERCRED), the pid pinned by a pidfd (SO_PEERPIDFD), so that a reused pid
// can never answer for the caller.
//
// Its sockets, Accept=no: one process for all callers (its units are what `hello --print-units` writes):
//   varlink  /run/hello.sock: the interface org.example.Hello
//
// Without systemd: `hello --listen=/tmp/hello.sock`.
// `hello --help` lists the standard flags.
#include <svckit/identity.hpp>
#include <svckit/service.hpp>

#include "org.example.Hello.varlink.hpp"

#include <cstdint>
#include <format>
#include <string>

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
                                   .passPidfd = true,
                                   .acceptFileDescriptors = false},
            },
    };
}

// What both protocols answer: the caller's identity is the connection's, taken once by svckit at accept.
std::string greeting(const std::string& name, const svckit::PeerIdentity& caller) {
    return std::format("Hello, {}! You are uid {}, pid {}.", name, caller.uid, caller.pid);
}

class HelloService : public svckit::Service, private api::Server {
public:
    HelloService() : Service(serviceSpec()) {
        // The handlers of the interface are the methods below.
        addVarlink(interface());
    }

private:
    // Errors are returned as values: an error of the interface, or an ErrorReply.
    api::HelloReply Hello(api::HelloIn in, api::HelloContext& ctx) override {
        const svckit::PeerIdentity& caller = ctx.peer();
        return api::HelloOut{.greeting = greeting(in.name, caller), .uid = caller.uid, .pid = caller.pid};
    }
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<HelloService>(argc, argv);
}
