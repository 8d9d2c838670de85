// svckit::run<T>(): the standard command line every svckit service understands.
#include "base/private.hpp"

#include <svckit/log.hpp>
#include <svckit/service.hpp>

#include <csignal>
#include <cstdio>
#include <print>
#include <string_view>

namespace svckit::detail {

namespace {

void printHelp(const ServiceSpec& spec) {
    std::println("{} - {}\n", spec.name, spec.description);
    std::println("Usage: {} [OPTIONS]\n", spec.name);
    std::println("Runs socket-activated by systemd (units: --print-units), or binds its sockets itself.\n");
    std::println("  -h --help              Show this help and exit");
    std::println("     --version           Show the version and exit");
    std::println("     --print-units[=DIR] Print the service's systemd units, or write them into DIR");
    std::println("     --listen=PATH       Serve the first varlink socket on PATH, without systemd");
    std::println("     --check             Verify the socket-activated sockets against the spec and exit");
    std::println("\nSockets:");
    for (const SocketSpec& s : spec.sockets)
        std::println("  {:<12} {} ({}{}, PassPIDFD={}, AcceptFileDescriptors={})", s.name, s.address,
                     toString(s.type), s.accept ? ", Accept=yes" : "", s.passPidfd ? "yes" : "no",
                     s.acceptFileDescriptors ? "yes" : "no");
}

} // namespace

int runMain(int argc, char** argv, const std::function<std::unique_ptr<Service>()>& make) {
    std::signal(SIGPIPE, SIG_IGN);
    std::unique_ptr<Service> service;
    try {
        service = make();
    } catch (const std::exception& e) {
        logError("Failed to set up the service: {}", e.what());
        return 1;
    }
    const ServiceSpec& spec = service->spec();
    RunOptions options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            printHelp(spec);
            return 0;
        }
        if (arg == "--version") {
            std::println("{} {}", spec.name, spec.version);
            return 0;
        }
        if (arg == "--print-units") {
            for (const UnitFile& unit : generateUnits(spec))
                std::print("# {}\n{}\n", unit.name, unit.text);
            return 0;
        }
        if (arg.starts_with("--print-units=")) {
            std::string directory(arg.substr(arg.find('=') + 1));
            if (auto ok = writeUnits(spec, directory); !ok) {
                logError("{}", ok.error().message());
                return 1;
            }
            return 0;
        }
        if (arg == "--check") {
            options.checkOnly = true;
            continue;
        }
        if (arg.starts_with("--listen=") || arg == "--listen") {
            std::string path;
            if (arg == "--listen") {
                if (i + 1 >= argc) {
                    logError("--listen needs a PATH (see --help)");
                    return 2;
                }
                path = argv[++i];
            } else {
                path = std::string(arg.substr(arg.find('=') + 1));
            }
            if (path.empty()) {
                logError("--listen needs a PATH (see --help)");
                return 2;
            }
            options.listenPath = std::move(path);
            continue;
        }
        logError("Unknown argument '{}' (see --help)", arg);
        return 2;
    }
    if (options.checkOnly && options.listenPath) {
        logError("--check and --listen exclude each other");
        return 2;
    }
    auto code = service->run(options);
    std::fflush(stdout);
    if (!code) {
        logError("{}", code.error().message());
        return 1;
    }
    return *code;
}

} // namespace svckit::detail
