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
using varlink::MethodContext;
using varlink::Reply;

class BenchService : public bench::Server {
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
