// svckit/service.hpp — the Service base class a service subclasses, its ServiceSpec, and svckit::run<T>().
//
// A service is declared once, in a ServiceSpec: its name, description, version, sockets (each a SocketSpec)
// and how it runs (exit-on-idle, watchdog, workers). From that one declaration svckit acquires the sockets
// (activated by systemd, or bound itself), verifies them, serves them, and writes the service's units
// (--print-units). Each socket names its protocol (SocketSpec::protocol), and the service hosts one endpoint
// per protocol (svckit/endpoint.hpp): a subclass declares in its constructor the varlink interfaces
// (addVarlink) and the handlers of its raw sockets (addRaw, svckit/raw.hpp), and may hook start() and stop().
// The lifecycle follows what systemd expects of a Type=notify service:
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

#include <svckit/dbus.hpp>
#include <svckit/export.hpp>
#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/raw.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/varlink.hpp>

#include <chrono>
#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit {

class Endpoint;

// What the service may learn about other processes than its own through /proc, i.e. what
// svckit::readProcessFacts() (svckit/identity.hpp) can read of a caller run by another user. The caller's
// uid, gid, groups and pid (SO_PEERCRED, the pidfd) never need any of this.
enum class PeerProcesses {
    // ProtectProc=invisible: other users' processes are not in the service's /proc (the default).
    Hidden,
    // ProtectProc=default: every process's cgroup (and so its unit) and comm are readable; the exe of another
    // user's process is not.
    Visible,
    // Visible and CAP_SYS_PTRACE (bounding set, and ambient for a non-root user): the exe of any process too.
    // CAP_SYS_PTRACE also lets the service read other processes' memory and environment through /proc (the
    // ptrace() syscall itself stays refused by SystemCallFilter=); grant it to a service whose job is to
    // say which program is calling.
    Readable,
};

// How the service is sandboxed by its generated .service units (systemd.exec(5)); docs/security.md has the
// table of every line, why it is there and what it costs. The defaults score an exposure of 0.4 in
// `systemd-analyze security --offline=yes` (lower is better; systemd-hostnamed scores 1.7).
struct Hardening {
    // false: none of the sandbox lines below (only extraServiceLines, and User= of a bus owner).
    bool enabled = true;
    // User= to run as. Empty: DynamicUser=yes (a uid allocated for each run, owning nothing that outlives
    // it), except in bus mode, where it is the bus owner (BusSpec::owner: the user the bus policy lets own
    // the name). "root": run as root (no User= line), with the capabilities below only.
    std::string user{};
    // The capabilities the service keeps ("CAP_NET_BIND_SERVICE"): CapabilityBoundingSet=, and
    // AmbientCapabilities= when it does not run as root. Default none.
    std::vector<std::string> capabilities{};
    PeerProcesses peerProcesses = PeerProcesses::Hidden;
    // Lines appended to [Service] after the generated ones, as they are ("PrivateUsers=yes",
    // "ReadWritePaths=/var/lib/foo"). A later assignment of a single-valued setting replaces an earlier one;
    // list settings (SystemCallFilter=, RestrictAddressFamilies=, ...) add to it, and an empty assignment
    // ("RestrictAddressFamilies=") resets them first.
    std::vector<std::string> extraServiceLines{};
};

// Bus mode (docs/dbus.md): the service owns a well-known name on a bus and serves its D-Bus objects there;
// the bus starts it (D-Bus activation through systemd: BusName=, the generated [D-BUS Service] file) on the
// first call. The generated bus policy file lets `owner` own the name and the callers of `access` call it;
// everything else is denied by the bus daemon before the service sees it (the objects' Policy still applies
// on top).
enum class BusType { System, Session };

// One rule of the bus policy file: who may send method calls to the name (an interface of it, or all of
// them).
struct BusAccess {
    std::string interface {}; // "org.svckit.example.Calc1"; empty: every interface of the name
    std::string user{};       // a user name ("*": anyone); empty with an empty group: anyone
    std::string group{};      // a group name; a rule names a user or a group, not both
    bool allow = true;        // false: an explicit deny (e.g. of one interface for everyone)
};

struct BusSpec {
    std::string name{}; // the well-known name, "org.svckit.example.Calc1"; empty: not on a bus
    BusType bus = BusType::System;
    std::string owner = "root";        // the user that may own the name (the service's User=)
    std::vector<BusAccess> access{{}}; // default: anyone may call every interface
};

struct ServiceSpec {
    std::string name;            // unit and binary name: "svckit-example-calc" (.service, .socket)
    std::string description;     // Description=
    std::string version;         // --version
    std::string documentation{}; // Documentation= (space-separated URIs: "man:foo(8) https://...")
    std::string executable{};    // ExecStart= binary; default /usr/bin/<name>
    std::vector<SocketSpec> sockets;
    // After this long with no connection the service exits (STOPPING=1 first); systemd starts it again on the
    // next connection. Zero: never. With it, the generated .service raises systemd's start limit (5 starts
    // in 10 s, which bursty callers would hit, failing the service and its socket) to StartLimitBurst=
    // 10 s / exitOnIdle + 6: what the service cannot reach by exiting on idle (docs/service.md).
    std::chrono::milliseconds exitOnIdle{0};
    // WatchdogSec= in the .service unit (zero: none). Pings are sent whenever systemd sets WATCHDOG_USEC.
    std::chrono::milliseconds watchdog{0};
    // Processes serving the listening sockets. With more than one, the main process verifies the sockets and
    // forks that many workers, before any loop exists; each runs its own loop, endpoints and start(), and the
    // main process only supervises them.
    unsigned workers = 1;
    VerifyMode verifyMode = VerifyMode::Strict;
    varlink::ServerOptions varlink{};
    // The service's name on a bus, if any (bus mode); its D-Bus objects are also served on every socket of
    // Protocol::DBus (peer-to-peer).
    BusSpec bus{};
    // The peer-to-peer D-Bus endpoint (sockets of Protocol::DBus): the name it answers to, the authentication
    // timeout.
    dbus::ServerOptions dbus{};
    Hardening hardening{};
};

// What `run()` does besides serving; set from the standard command-line flags. With listenPath or listenNamed
// set, the service serves exactly the sockets they name, each bound by itself on the given path (the spec's
// options applied), and ignores socket activation; the spec's other sockets are not served.
struct RunOptions {
    std::optional<std::string> listenPath{};          // --listen=PATH: the first socket on PATH
    std::map<std::string, std::string> listenNamed{}; // --listen=NAME=PATH: socket NAME (SocketSpec::name)
    bool checkOnly = false; // --check: verify the activation, print the result, exit
};

// An option a service adds to the standard command line of svckit::run<T>() (parsed by getopt_long with the
// standard flags, listed in --help under them).
struct Option {
    std::string name{};     // the long name, without "--": "greeting" for --greeting
    char shortName = 0;     // 'g' for -g; 0: none
    std::string argument{}; // the argument's name in --help ("TEXT"); empty: a flag without an argument
    std::string help{};     // one line for --help
    // Called for each occurrence, in command-line order, with the argument (empty for a flag), before the
    // service is constructed. An error is a usage error: its message is logged and the program exits 2.
    std::function<Result<void>(std::string_view value)> set{};
};

// What a service adds to the standard command line: its options and, if it takes any, its positional
// arguments. Without `positional`, a positional argument is a usage error.
struct CommandLine {
    std::vector<Option> options{};
    std::string positionalUsage{}; // for the usage line of --help: "[PATH]"
    std::string
        positionalHelp{}; // a line --help prints under the usage line: "PATH: the same as --listen=PATH"
    // Called once with all positional arguments (if there are any) after the options, before the service is
    // constructed; it may set the RunOptions (e.g. a PATH meaning --listen=PATH). An error exits 2.
    std::function<Result<void>(std::span<const std::string> arguments, RunOptions& run)> positional{};
};

// What the units need to know besides the spec: what the service declares in code. Service::unitOptions()
// fills it (--print-units uses that); generateUnits(spec) alone leaves it empty.
struct UnitOptions {
    // The varlink interfaces the service serves (Service::addVarlink): the first varlink socket's .socket
    // registers each as Symlinks=/run/varlink/registry/NAME, where `varlinkctl list-registry` finds it.
    std::vector<std::string> varlinkInterfaces{};
};

class SVCKIT_EXPORT Service {
public:
    explicit Service(ServiceSpec spec);
    virtual ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    [[nodiscard]] const ServiceSpec& spec() const noexcept { return spec_; }
    // What its units need besides the spec: the varlink interfaces declared so far (generateUnits()).
    [[nodiscard]] UnitOptions unitOptions() const;

    // Declares a varlink interface, served on every varlink socket of the spec (in the constructor). A
    // failure (an interface declared twice, or an error from building it: varlink::restrict(), ...) is kept,
    // and run() refuses to start with it, so a declaration error in a constructor cannot go unnoticed.
    void addVarlink(varlink::Interface interface);
    void addVarlink(Result<varlink::Interface> interface);
    // Declares the handler of the raw socket `socket` (a SocketSpec of Protocol::Raw, by name), in the
    // constructor. As with addVarlink, a mistake (no such socket, not a raw socket, a handler given twice) is
    // kept and run() refuses to start with it; so does a raw socket left without a handler.
    void addRaw(std::string socket, raw::Handler handler);
    // Declares a D-Bus object (svckit/dbus.hpp), in the constructor: T derives from dbus::Object<Adaptors...>
    // and is constructed as T(dbus::Binding, args...) once for every D-Bus connection served (each
    // peer-to-peer connection on a socket of Protocol::DBus, and the bus connection of ServiceSpec::bus). A
    // mistake (a path declared twice, an invalid path, D-Bus sockets or a bus name without any object) is
    // kept and run() refuses to start with it.
    template <std::derived_from<dbus::ObjectBase> T, class... Args>
    void addDBus(std::string objectPath, dbus::ObjectOptions options, Args... args) {
        addDBus(dbus::ObjectDeclaration{
            .path = std::move(objectPath),
            .options = std::move(options),
            .make = [... args = std::move(args)](dbus::Binding binding) -> std::unique_ptr<dbus::ObjectBase> {
                return std::make_unique<T>(std::move(binding), args...);
            }});
    }
    void addDBus(dbus::ObjectDeclaration declaration);
    // Calls `visit` for every live instance of the object at `objectPath` (one per D-Bus connection): to emit
    // a signal to every connected peer, or a PropertiesChanged. On the loop's thread.
    void forEachDBus(std::string_view objectPath, const std::function<void(dbus::ObjectBase&)>& visit);
    template <std::derived_from<dbus::ObjectBase> T, std::invocable<T&> F>
    void forEachDBus(std::string_view objectPath, F&& visit) {
        forEachDBus(objectPath, [&visit](dbus::ObjectBase& object) {
            if (auto* typed = dynamic_cast<T*>(&object))
                visit(*typed);
        });
    }

    // The whole lifecycle; returns the exit code (0 after a graceful stop or exit-on-idle).
    [[nodiscard]] Result<int> run(const RunOptions& options = {});

    // Valid from start() until run() returns. varlink(): the varlink endpoint's server, when a varlink socket
    // is served.
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
    Result<void> checkEndpoints() const;
    // The endpoint registry: the endpoint that serves sockets of `protocol`, one per serving process.
    Result<std::unique_ptr<Endpoint>> makeEndpoint(Protocol protocol, EventLoop& loop);
    Result<int> serve(std::vector<Acquired> sockets, bool notifyManager);
    Result<void> watchIdle(std::chrono::milliseconds after, bool acceptMode);

    ServiceSpec spec_;
    std::vector<varlink::Interface> interfaces_;
    std::map<std::string, raw::Handler, std::less<>> rawHandlers_;
    std::vector<dbus::ObjectDeclaration> dbusObjects_;
    std::optional<Error> setupError_;
    std::unique_ptr<Runtime> runtime_;
};

// The files a spec describes, as written by --print-units: the systemd units and, in bus mode
// (ServiceSpec::bus), the D-Bus activation and policy files (docs/dbus-bus.md).
struct UnitFile {
    std::string name; // "svckit-example-calc.socket", "org.svckit.example.Calc1.conf"
    std::string text;
    // Where it goes, relative to the directory --print-units=DIR writes into: empty for the systemd units
    // (installed in /usr/lib/systemd/system), "dbus-1/system-services" or "dbus-1/services" for the D-Bus
    // activation file and "dbus-1/system.d" for the bus policy file (installed under /usr/share: the same
    // relative path).
    std::string directory{};
    // directory/name, or name when the directory is empty.
    [[nodiscard]] std::string path() const { return directory.empty() ? name : directory + "/" + name; }
};
[[nodiscard]] SVCKIT_EXPORT std::vector<UnitFile> generateUnits(const ServiceSpec& spec,
                                                                const UnitOptions& options);
[[nodiscard]] SVCKIT_EXPORT std::vector<UnitFile> generateUnits(const ServiceSpec& spec);
// Writes the files into a directory (created if missing, with the subdirectories of UnitFile::directory).
[[nodiscard]] SVCKIT_EXPORT Result<void> writeUnits(const ServiceSpec& spec, const std::string& directory,
                                                    const UnitOptions& options = {});

namespace detail {
// The body of run<T>() below.
SVCKIT_EXPORT int runMain(int argc, char** argv, const CommandLine& own,
                          const std::function<std::unique_ptr<Service>()>& make);

// T declares a struct T::Options for its values, fills the options table from it, and is constructed from it.
template <class T>
concept WithOptionValues = requires(typename T::Options& values) {
    { T::commandLine(values) } -> std::convertible_to<CommandLine>;
}
&&std::constructible_from<T, const typename T::Options&>;
// T adds options or positional arguments that store nothing T's constructor needs (e.g. they set RunOptions).
template <class T>
concept WithCommandLine = requires {
    { T::commandLine() } -> std::convertible_to<CommandLine>;
}
&&std::default_initializable<T>;
} // namespace detail

// The main() of a service: parses the command line (getopt_long): the standard flags --help, --version,
// --print-units[=DIR], --listen=[NAME=]PATH and --check, and the service's own; then constructs T and runs
// it. A service adds options in one of two ways (docs/service.md):
//   struct Options { std::string greeting = "hello"; };                  // the values, declared by T
//   static svckit::CommandLine commandLine(Options& values);             // options storing into `values`
//   explicit T(const Options& values);                                   // T is constructed after parsing
// or `static svckit::CommandLine commandLine()` with a default constructor. Otherwise T must be
// default-constructible and takes the standard flags only.
template <std::derived_from<Service> T>
int run(int argc, char** argv) {
    if constexpr (detail::WithOptionValues<T>) {
        typename T::Options values{};
        CommandLine own = T::commandLine(values);
        return detail::runMain(argc, argv, own, [&values] {
            return std::make_unique<T>(static_cast<const typename T::Options&>(values));
        });
    } else if constexpr (detail::WithCommandLine<T>) {
        return detail::runMain(argc, argv, T::commandLine(), [] { return std::make_unique<T>(); });
    } else {
        static_assert(
            std::default_initializable<T>,
            "svckit::run<T>: T needs a default constructor, or T::Options with commandLine(Options&) "
            "and a constructor from const Options&");
        return detail::runMain(argc, argv, CommandLine{}, [] { return std::make_unique<T>(); });
    }
}

} // namespace svckit
