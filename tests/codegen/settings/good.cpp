// Compiled, not run, by tests/codegen/settings_compile.sh: per-method settings that name methods of the
// interface compile. The same settings with a method misspelt (misspelt.cpp) must not.
#include "org.example.bench.varlink.hpp"

namespace bench = org::example::bench;

svckit::varlink::Interface settingsOf(bench::Server& server) {
    return server.interface({.Echo = {.acceptFds = true}, .Count = {.policy = svckit::Policy::rootOnly()}});
}
