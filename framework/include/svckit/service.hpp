// svckit/service.hpp — the Service base class a service subclasses, its ServiceSpec, and svckit::run<T>().
//
// A service is declared once, in a ServiceSpec: its name, description, version, sockets (each a SocketSpec)
// and how it runs (exit-on-idle, watchdog, workers). From that one declaration svckit acquires the sockets
// (activated by systemd, or bound itself), verifies them, serves them, and writes the service's units
// (--print-units). A subclass declares its endpoints (varlink interfaces) in its constructor and may hook
// start() and stop(). The lifecycle follows what systemd expects of a Type=notify service:
//   acquire sockets → verify (strict by default) → start() → serve → READY=1, STATUS=
//   SIGTERM/SIGINT → STOPPING=1, stop accepting, stop(), finish in-flight calls, exit 0
//   optional exit-on-idle (systemd activates the service again on the next connection); watchdog pings when
//   WATCHDOG_USEC is set.
//
//   class Calc : public svckit::Service {
//   public:
//       Calc() : Service(spec()) { addVarlink(interface()); }   // T also derives from the generated Server
//       ...
//   };
//   int main(int argc, char** argv) { return svckit::run<Calc>(argc, argv); }
#pragma once

#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/varlink.hpp>

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svckit {

// How the service hardens itself in its generated .service unit (systemd.exec(5) sandboxing).
struct Hardening {
    bool enabled = true; // NoNewPrivileges=, ProtectSystem=strict, ProtectHome=, PrivateTmp=, ...
};

struct ServiceSpec {
    std::string name;        // unit and binary name: "svckit-example-calc" (.service, .socket)
    std::string description; // Description=
    std::string version;     // --version
    std::string documentation{};
    std::string executable{}; // ExecStart= binary; default /usr/bin/<name>
    std::vector<SocketSpec> sockets;
    // After this long with no connection the service exits (STOPPING=1 first); systemd starts it again on the
    // next connection. Zero: never.
    std::chrono::milliseconds exitOnIdle{0};
    // WatchdogSec= in the .service unit (zero: none). Pings are sent whenever systemd sets WATCHDOG_USEC.
    std::chrono::milliseconds watchdog{0};
    // Processes serving the activated listening sockets. With more than one, the main process forks
    // workers - 1 more after verifying the sockets; each runs its own loop, server and start().
    unsigned workers = 1;
    VerifyMode verifyMode = VerifyMode::Strict;
    varlink::ServerOptions varlink{};
    Hardening hardening{};
};

// What `run()` does besides serving; set from the standard command-line flags.
struct RunOptions {
    std::optional<std::string> listenPath; // --listen=PATH: serve the first varlink socket on PATH
    bool checkOnly = false;                // --check: verify the activation, print the result, exit
};

class Service {
public:
    explicit Service(ServiceSpec spec);
    virtual ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    [[nodiscard]] const ServiceSpec& spec() const noexcept { return spec_; }

    // Declares a varlink interface, served on every varlink socket of the spec (in the constructor). A
    // failure (an interface declared twice, or an error from building it: varlink::restrict(), ...) is kept,
    // and run() refuses to start with it, so a declaration error in a constructor cannot go unnoticed.
    void addVarlink(varlink::Interface interface);
    void addVarlink(Result<varlink::Interface> interface);

    // The whole lifecycle; returns the exit code (0 after a graceful stop or exit-on-idle).
    [[nodiscard]] Result<int> run(const RunOptions& options = {});

    // Valid from start() until run() returns.
    [[nodiscard]] EventLoop& loop();
    [[nodiscard]] varlink::Server& varlink();
    // STATUS= for `systemctl status`.
    void setStatus(std::string_view status);
    // Ends the service as a SIGTERM would (graceful).
    void requestStop();

protected:
    // Called once the sockets are verified and the loop exists, before READY=1 (in each worker). An error
    // stops the service with that error.
    virtual Result<void> start() { return {}; }
    // Called on SIGTERM/SIGINT (or requestStop(), exit-on-idle) after accepting has stopped, while in-flight
    // calls may still be answered.
    virtual void stop() {}

private:
    struct Runtime;
    struct Acquired;
    Result<std::vector<Acquired>> acquire(const RunOptions& options);
    Result<int> serve(std::vector<Acquired> sockets, bool notifyManager);
    Result<int> superviseWorkers(std::vector<Acquired> sockets);

    ServiceSpec spec_;
    std::vector<varlink::Interface> interfaces_;
    std::optional<Error> setupError_;
    std::unique_ptr<Runtime> runtime_;
};

// The unit files a spec describes, as written by --print-units.
struct UnitFile {
    std::string name; // "svckit-example-calc.socket"
    std::string text;
};
[[nodiscard]] std::vector<UnitFile> generateUnits(const ServiceSpec& spec);
// Writes the units into a directory (created if missing).
[[nodiscard]] Result<void> writeUnits(const ServiceSpec& spec, const std::string& directory);

namespace detail {
int runMain(int argc, char** argv, const std::function<std::unique_ptr<Service>()>& make);
}

// The main() of a service: handles --help, --version, --print-units[=DIR], --listen=PATH and --check, then
// runs the service. T must be default-constructible.
template <std::derived_from<Service> T>
int run(int argc, char** argv) {
    return detail::runMain(argc, argv, [] { return std::make_unique<T>(); });
}

} // namespace svckit
