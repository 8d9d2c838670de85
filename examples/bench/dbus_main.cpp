// svckit-example-bench-dbus — org.svckit.bench.Bench1 (bench/dbus/org.svckit.bench.Bench1.xml) on svckit's
// peer-to-peer D-Bus endpoint, for the benchmark against raw sd-bus and plain sdbus-c++ (bench/dbus). The
// object is the adaptor sdbus-c++-xml2cpp generates from the XML, served through svckit::dbus::Object on one
// socket of Protocol::DBus.
//
//   svckit-example-bench-dbus [PATH]   socket-activated (fd named "dbus"), or binds PATH itself (the same as
//                                      --listen=PATH: bench/dbus/run starts servers as `SERVER PATH`); the
//                                      standard flags of svckit::run() (--help, ...) too
#include "bench1_adaptor.h"

#include <svckit/dbus.hpp>
#include <svckit/service.hpp>

#include <span>
#include <string>

namespace {

using namespace svckit;

class Bench1 final : public dbus::Object<org::svckit::bench::Bench1_adaptor> {
public:
    explicit Bench1(dbus::Binding binding) : Object(std::move(binding)) {}

private:
    std::string Ping(const std::string& text) override { return text; }
};

ServiceSpec benchSpec() {
    return ServiceSpec{
        .name = "svckit-example-bench-dbus",
        .description = "svckit example: org.svckit.bench.Bench1 over peer-to-peer D-Bus, for benchmarks",
        .version = "0.1.0",
        // 64 connections at once in bench/dbus/run: room above the default cap of 64.
        .sockets = {SocketSpec{.name = "dbus",
                               .address = "/run/svckit-example-bench-dbus.sock",
                               .protocol = Protocol::DBus,
                               .passPidfd = true,
                               .acceptFileDescriptors = false,
                               .limits = {.maxConnections = 1024}}},
    };
}

class BenchDBus final : public Service {
public:
    BenchDBus() : Service(benchSpec()) { addDBus<Bench1>("/org/svckit/bench/Bench1", {}); }

    // The positional PATH is --listen=PATH.
    static CommandLine commandLine() {
        return {.positionalUsage = "[PATH]",
                .positionalHelp = "PATH: bind the D-Bus socket on PATH, the same as --listen=PATH",
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
    return svckit::run<BenchDBus>(argc, argv);
}
