// svckit-example-bench — the org.example.bench interface on svckit's varlink engine, for benchmarks against
// sd-varlink and the no-JSON floor (bench/varlink). Written on the C++ bindings generated from
// org.example.bench.varlink (tools/varlink-codegen): parameters arrive decoded and validated.
//
//   svckit-example-bench [PATH]   socket-activated (fd named "varlink"), or binds PATH itself (=
//   --listen=PATH);
//                                 the standard flags of svckit::run() (--help, --print-units, ...) too
#include "org.example.bench.varlink.hpp"

#include <svckit/service.hpp>

#include <string>
#include <vector>

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

svckit::ServiceSpec benchSpec() {
    return {
        .name = "svckit-example-bench",
        .description = "svckit example: the org.example.bench interface, for benchmarks",
        .version = "0.1.0",
        .sockets = {SocketSpec{.name = "varlink",
                               .address = "/run/svckit-example-bench.sock",
                               .passPidfd = true,
                               .acceptFileDescriptors = false}},
    };
}

class Bench final : public Service, private BenchService {
public:
    // Count requires `more` as the .varlink file says ([Requires 'more' flag]); nothing else to set.
    Bench() : Service(benchSpec()) { addVarlink(interface()); }
};

} // namespace

int main(int argc, char** argv) {
    // `svckit-example-bench PATH` (what bench/varlink/run and the tests start) is `--listen=PATH`.
    std::vector<std::string> args(argv, argv + argc);
    if (args.size() == 2 && !args[1].starts_with("-"))
        args[1] = "--listen=" + args[1];
    std::vector<char*> pointers;
    for (std::string& a : args)
        pointers.push_back(a.data());
    pointers.push_back(nullptr);
    return svckit::run<Bench>(static_cast<int>(args.size()), pointers.data());
}
