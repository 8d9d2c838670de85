// svckit-example-bench — the org.example.bench interface on svckit's varlink engine, for benchmarks against
// sd-varlink and the no-JSON floor (bench/varlink). Written on the engine's dynamic JSON API; it moves to
// generated typed bindings when those exist.
//
//   svckit-example-bench [PATH]   socket-activated (fd named "varlink"), or binds PATH itself
#include <svckit/activation.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/log.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/varlink.hpp>

#include <systemd/sd-daemon.h>

#include <csignal>
#include <string_view>

namespace {

using namespace svckit;
using varlink::Call;
using varlink::JsonWriter;

constexpr std::string_view interfaceDescription = R"(interface org.example.bench

# returns text unchanged
method Echo(text: string) -> (text: string)

# signed 64-bit; overflow is the Overflow error
method Add(a: int, b: int) -> (sum: int)

# requires 'more'; n >= 1 replies with i = 0..n-1, continues on all but the last
method Count(n: int) -> (i: int)

error Overflow()
)";

void echo(Call& call) {
    auto text = call.parameters()["text"].string();
    if (!text) {
        (void)call.invalidParameter("text");
        return;
    }
    (void)call.reply([&](JsonWriter& w) { w.field("text", *text); });
}

void add(Call& call) {
    auto a = call.parameters()["a"].int64();
    if (!a) {
        (void)call.invalidParameter("a");
        return;
    }
    auto b = call.parameters()["b"].int64();
    if (!b) {
        (void)call.invalidParameter("b");
        return;
    }
    int64_t sum = 0;
    if (__builtin_add_overflow(*a, *b, &sum)) {
        (void)call.error("org.example.bench.Overflow", [](JsonWriter&) {});
        return;
    }
    (void)call.reply([&](JsonWriter& w) { w.field("sum", sum); });
}

void count(Call& call) {
    auto n = call.parameters()["n"].int64();
    if (!n || *n < 1) {
        (void)call.invalidParameter("n");
        return;
    }
    for (int64_t i = 0; i + 1 < *n; ++i)
        (void)call.replyContinues([&](JsonWriter& w) { w.field("i", i); });
    (void)call.reply([&](JsonWriter& w) { w.field("i", *n - 1); });
}

Result<int> run(int argc, char** argv) {
    SocketSpec spec{.name = "varlink",
                    .address = argc > 1 ? argv[argc - 1] : "/run/svckit-example-bench.sock",
                    .passPidfd = true,
                    .acceptFileDescriptors = false};
    auto loop = EventLoop::create();
    if (!loop)
        return std::unexpected(loop.error());
    auto server = varlink::Server::create(
        *loop,
        {.info = {.vendor = "svckit", .product = "svckit-example-bench", .version = "0.1.0", .url = ""}});
    if (!server)
        return std::unexpected(server.error());
    if (auto ok =
            server->addInterface({.name = "org.example.bench",
                                  .description = std::string(interfaceDescription),
                                  .methods = {{.name = "Echo", .handler = echo},
                                              {.name = "Add", .handler = add},
                                              {.name = "Count", .handler = count, .requiresMore = true}}});
        !ok)
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
