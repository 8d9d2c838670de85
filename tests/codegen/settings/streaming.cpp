// Compiled, not run, by tests/codegen/settings_compile.sh: a streaming handler written with the generated
// per-method aliases that checks what each further reply returned compiles. The same handler dropping that
// result (dropped_send.cpp) must not.
#include "org.example.bench.varlink.hpp"

namespace bench = org::example::bench;

bench::CountReply count(bench::CountIn in, bench::CountContext& ctx) {
    for (int64_t i = 0; i + 1 < in.n; ++i)
        if (auto sent = ctx.send({.i = i}); !sent)
            return svckit::varlink::ErrorReply::system(sent.error().code());
    return bench::CountOut{.i = in.n - 1};
}
