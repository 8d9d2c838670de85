// svckit-example-bench — the org.example.bench interface on svckit's varlink engine, for benchmarks against
// sd-varlink and the no-JSON floor (bench/varlink). Written on the C++ bindings generated from
// org.example.bench.varlink (tools/varlink-codegen): parameters arrive decoded and validated.
//
//   svckit-example-bench [PATH]   socket-activated (fd named "varlink"), or binds PATH itself (the same as
//                                 --listen=PATH: bench/varlink/run, profile and the tests start servers as
//                                 `SERVER PATH`); the standard flags of svckit::run() (--help, ...) too
//   --max-connections=N           the varlink server's cap on connections at once (ServiceSpec::varlink
//                                 .maxConnections; default 4096, as sd-varlink); --print-units then asks for
//                                 the LimitNOFILE= it needs (tests/e2e/varlink_scale.sh: 10 000 connections)
#include "org.example.bench.varlink.hpp"

#include <svckit/service.hpp>

#include <charconv>
#include <span>
#include <string>

namespace {

using namespace svckit;
namespace bench = org::example::bench;

class BenchService : public bench::Server {
public:
    bench::EchoReply Echo(bench::EchoIn in, bench::EchoContext&) override {
        return bench::EchoOut{.text = std::move(in.text)};
    }

    bench::AddReply Add(bench::AddIn in, bench::AddContext&) override {
        int64_t sum = 0;
        if (__builtin_add_overflow(in.a, in.b, &sum))
            return bench::Overflow{};
        return bench::AddOut{.sum = sum};
    }

    // Replies 0 .. n-1, the last one final; waits for room when the caller reads slowly.
    bench::CountReply Count(bench::CountIn in, bench::CountContext& ctx) override {
        if (in.n < 1)
            return varlink::ErrorReply::invalidParameter("n");
        return ctx.stream([n = in.n, i = int64_t{0}](bench::CountOut& out) mutable {
            out.i = i;
            return ++i < n;
        });
    }
};

svckit::ServiceSpec benchSpec(unsigned maxConnections) {
    svckit::ServiceSpec spec{
        .name = "svckit-example-bench",
        .description = "svckit example: the org.example.bench interface, for benchmarks",
        .version = "0.1.0",
        .documentation = "file:///usr/share/doc/svckit/examples.md",
        .sockets = {SocketSpec{.name = "varlink",
                               .address = "/run/svckit-example-bench.sock",
                               .passPidfd = true,
                               .acceptFileDescriptors = false}},
        // pings from the loop at half this interval; a loop stuck for 30 s gets the service killed
        .watchdog = std::chrono::seconds(30),
        // the sandbox's defaults (docs/security.md): it reads nothing of its callers but their messages
    };
    if (maxConnections != 0)
        spec.varlink.maxConnections = maxConnections;
    return spec;
}

class Bench final : public Service, private BenchService {
public:
    struct Options {
        unsigned maxConnections = 0; // 0: the spec's default
    };

    // Count requires `more` as the .varlink file says ([Requires 'more' flag]); nothing else to set.
    explicit Bench(const Options& options) : Service(benchSpec(options.maxConnections)) {
        addVarlink(interface());
    }

    // --max-connections=N; the positional PATH is --listen=PATH.
    static CommandLine commandLine(Options& values) {
        return {.options = {{.name = "max-connections",
                             .argument = "N",
                             .help = "Serve at most N connections at once (default 4096)",
                             .set = [&values](std::string_view n) -> Result<void> {
                                 auto [end, ec] =
                                     std::from_chars(n.data(), n.data() + n.size(), values.maxConnections);
                                 if (ec != std::errc() || end != n.data() + n.size() ||
                                     values.maxConnections == 0)
                                     return fail(EINVAL, "N must be a positive number, not '{}'", n);
                                 return {};
                             }}},
                .positionalUsage = "[PATH]",
                .positionalHelp = "PATH: bind the varlink socket on PATH, the same as --listen=PATH",
                .positional = [](std::span<const std::string> arguments, RunOptions& run) -> Result<void> {
                    if (arguments.size() > 1)
                        return fail(EINVAL, "Unexpected argument '{}': one PATH at most", arguments[1]);
                    if (run.listenPath)
                        return fail(EINVAL, "PATH and --listen=PATH exclude each other");
                    run.listenPath = arguments[0];
                    return {};
                }};
    }
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Bench>(argc, argv);
}
