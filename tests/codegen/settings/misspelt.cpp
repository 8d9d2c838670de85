// Compiled by tests/codegen/settings_compile.sh, which expects the compiler to refuse it: `Cuont` is no
// method of org.example.bench (good.cpp is the same with `Count`).
#include "org.example.bench.varlink.hpp"

namespace bench = org::example::bench;

svckit::varlink::Interface settingsOf(bench::Server& server) {
    return server.interface({.Echo = {.acceptFds = true}, .Cuont = {.policy = svckit::Policy::rootOnly()}});
}
