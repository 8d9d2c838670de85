// tests/fuzz/socket_unit.cpp — libFuzzer target: the .socket unit files `svckit activate` reads
// (tool::parseSocketUnit, tools/svckit/unit_file.hpp), and what it makes of a unit that parses (the
// SocketSpec of each listener, the fd name). Besides crashes and sanitizer reports, it checks the parser's
// promise that every error names the file ("fuzz.socket:LINE: ..." or "fuzz.socket: ..."). See
// docs/testing.md ("Fuzzing").
#include "unit_file.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto unit = svckit::tool::parseSocketUnit(text, "fuzz.socket", {.runtimeDirectory = "/run"});
    if (!unit) {
        const std::string& message = unit.error().message();
        if (!message.starts_with("fuzz.socket")) {
            std::fprintf(stderr, "an error that does not name the file: %s\n", message.c_str());
            std::abort();
        }
        return 0;
    }
    (void)unit->fdName();
    for (const svckit::SocketSpec& spec : unit->socketSpecs())
        if (spec.address.empty())
            std::abort(); // a listener without an address was accepted
    return 0;
}
