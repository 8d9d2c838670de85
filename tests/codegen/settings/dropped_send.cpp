// Compiled by tests/codegen/settings_compile.sh, which expects the compiler to refuse it: the result of a
// further reply is dropped (streaming.cpp checks it), and send() is [[nodiscard]] under -Werror.
#include "org.example.bench.varlink.hpp"

namespace bench = org::example::bench;

bench::CountReply count(bench::CountIn in, bench::CountContext& ctx) {
    for (int64_t i = 0; i + 1 < in.n; ++i)
        ctx.send({.i = i});
    return bench::CountOut{.i = in.n - 1};
}
