// svckit-example-bench — the org.example.bench interface on svckit's varlink engine, for benchmarks against
// sd-varlink and the no-JSON floor (bench/varlink). Written on the C++ bindings generated from
// org.example.bench.varlink (tools/varlink-codegen): parameters arrive decoded and validated.
//
//   svckit-example-bench [PATH]   socket-activated (fd named "varlink"), or binds PATH itself
#include "org.example.bench.varlink.hpp"

#include <svckit/activation.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/log.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/varlink.hpp>

#include <systemd/sd-daemon.h>

#include <csignal>

namespace {

using namespace svckit;
namespace bench = org::example::bench;
using varlink::MethodContext;
using varlink::Reply;

class BenchService final : public bench::Server {
public:
    Reply<bench::EchoOut> Echo(bench::EchoIn in, MethodContext<bench::EchoOut>&) override {
        return bench::EchoOut{.text = std::move(in.text)};
    }

    Reply<bench::AddOut> Add(bench::AddIn in, MethodContext<bench::AddOut>&) override {
        int64_t sum = 0;
        if (__builtin_add_overflow(in.a, in.b, &sum))
            return bench::Overflow{};
        return bench::AddOut{.sum = sum};
    }

    Reply<bench::CountOut> Count(bench::CountIn in, MethodContext<bench::CountOut>& ctx) override {
        if (in.n < 1)
            return varlink::ErrorReply::invalidParameter("n");
        for (int64_t i = 0; i + 1 < in.n; ++i)
            (void)ctx.send({.i = i});
        return bench::CountOut{.i = in.n - 1};
    }
};

Result<int> run(int argc, char** argv) {
    SocketSpec spec{.name = "varlink",
                    .address = argc > 1 ? argv[argc - 1] : "/run/svckit-example-bench.sock",
                    .passPidfd = true,
                    .acceptFileDescriptors = false};
    BenchService service; // declared before the server, which holds handlers bound to it
    auto loop = EventLoop::create();
    if (!loop)
        return std::unexpected(loop.error());
    auto server = varlink::Server::create(
        *loop,
        {.info = {.vendor = "svckit", .product = "svckit-example-bench", .version = "0.1.0", .url = ""}});
    if (!server)
        return std::unexpected(server.error());
    if (auto ok = server->addInterface(service.interface({.acceptFds = {}, .requireMore = {"Count"}})); !ok)
        return std::unexpected(ok.error());

    auto activation = Activation::fromEnvironment();
    if (!activation)
        return std::unexpected(activation.error());
    if (activation->activated()) {
        SocketSpec specs[] = {spec};
        // The path comes from the unit; only the options and the socket's kind are checked here.
        if (auto fd = activation->find("varlink"))
            specs[0].address = fd->info.address;
        if (auto ok = verifyActivation(*activation, specs, VerifyMode::Strict); !ok)
            return std::unexpected(ok.error());
        for (auto& fd : activation->take("varlink"))
            if (auto ok = server->listen(std::move(fd.fd), specs[0]); !ok)
                return std::unexpected(ok.error());
    } else {
        auto fd = bindSocket(spec);
        if (!fd)
            return std::unexpected(fd.error());
        if (auto ok = server->listen(std::move(*fd), spec); !ok)
            return std::unexpected(ok.error());
    }
    auto onStop = [&](const signalfd_siginfo&) {
        sd_notify(0, "STOPPING=1");
        loop->exit(0);
    };
    auto term = loop->addSignal(SIGTERM, onStop);
    auto intr = loop->addSignal(SIGINT, onStop);
    if (!term || !intr)
        return std::unexpected(!term ? term.error() : intr.error());
    sd_notify(0, "READY=1");
    return loop->run();
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    auto status = run(argc, argv);
    if (!status) {
        svckit::logError("{}", status.error().message());
        return 1;
    }
    return *status;
}
