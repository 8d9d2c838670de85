// svckit::run<T>(): the standard command line every svckit service understands, and the service's own options
// (one getopt_long() pass over both).
#include "service/spec_names.hpp"

#include <svckit/log.hpp>
#include <svckit/service.hpp>

#include <svckit/internal/refusal.hpp>

#include <getopt.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <format>
#include <print>
#include <string_view>

namespace svckit::detail {

namespace {

// getopt_long() values of the long-only standard flags and of the service's options (Own + index).
enum : int { Version = 0x100, PrintUnits, BinDir, Flat, Listen, Check, Own = 0x200 };

std::string optionLabel(const Option& o) {
    std::string label = o.shortName != 0 ? std::format("-{} --{}", o.shortName, o.name) : "   --" + o.name;
    if (!o.argument.empty())
        label += "=" + o.argument;
    return label;
}

void printHelp(const ServiceSpec& spec, const CommandLine& own) {
    std::println("{} - {}\n", spec.name, spec.description);
    std::println("Usage: {} [OPTIONS]{}{}\n", spec.name, own.positionalUsage.empty() ? "" : " ",
                 own.positionalUsage);
    if (!own.positionalHelp.empty())
        std::println("{}\n", own.positionalHelp);
    std::println("Runs socket-activated by systemd (units: --print-units), or binds its sockets itself.\n");
    std::println("  -h --help              Show this help and exit");
    std::println("     --version           Show the version and exit");
    std::println("     --print-units[=DIR] Print the service's systemd units, or write them into DIR");
    std::println("     --bindir=DIR        With --print-units: ExecStart= names DIR/{} (default /usr/bin)",
                 spec.name);
    std::println(
        "     --flat              With --print-units=DIR: the D-Bus files in DIR too, not in DIR/dbus-1/");
    std::println("     --listen=PATH       Serve the first socket on PATH, without systemd");
    std::println(
        "     --listen=NAME=PATH  Serve socket NAME on PATH (repeatable); only the sockets given are served");
    std::println("     --check             Verify the socket-activated sockets against the spec and exit");
    if (!own.options.empty()) {
        std::println("\nOptions of {}:", spec.name);
        for (const Option& o : own.options)
            std::println("  {:<22} {}", optionLabel(o), o.help);
    }
    std::println("\nEnvironment:");
    std::println("  SVCKIT_VERIFY=strict|repair");
    std::println(
        "      How the socket-activated sockets are verified: 'strict' refuses to start when one lacks an");
    std::println(
        "      option its unit must set, 'repair' sets it with setsockopt() and warns (for systemd < 258,");
    std::println(
        "      which cannot set PassPIDFD= and AcceptFileDescriptors=). Unset: the service's default ({})",
        spec.verifyMode == VerifyMode::Repair ? "repair" : "strict");
    std::println("  SVCKIT_LOG_LEVEL=LEVEL");
    std::println("      The least important messages logged: a name (emerg ... debug) or 0-7; default info");
    std::println("\nSockets (NAME for --listen=NAME=PATH):");
    for (const SocketSpec& s : spec.sockets)
        std::println("  {:<12} {} ({}{}, PassPIDFD={}, AcceptFileDescriptors={})", s.name, s.address,
                     toString(s.type), s.accept ? ", Accept=yes" : "", s.passPidfd ? "yes" : "no",
                     s.acceptFileDescriptors ? "yes" : "no");
}

// --listen=NAME=PATH when the part before the first '=' is non-empty and has no '/'; otherwise --listen=PATH
// (write ./a=b for a relative path with a '=' in it).
Result<void> addListen(const ServiceSpec& spec, const std::string& value, RunOptions& options) {
    auto eq = value.find('=');
    if (eq != std::string::npos && eq > 0 && value.find('/') > eq) {
        std::string name = value.substr(0, eq);
        std::string path = value.substr(eq + 1);
        if (std::ranges::none_of(spec.sockets, [&](const SocketSpec& s) { return s.name == name; }))
            return fail(EINVAL, "--listen={}: the spec has no socket '{}' (its sockets: {})", value, name,
                        socketNames(spec));
        if (path.empty())
            return fail(EINVAL, "--listen={}=PATH needs a PATH (see --help)", name);
        if (!options.listenNamed.emplace(name, std::move(path)).second)
            return fail(EINVAL, "--listen names socket '{}' twice", name);
        return {};
    }
    if (value.empty())
        return fail(EINVAL, "--listen needs a PATH (see --help)");
    if (options.listenPath)
        return fail(EINVAL, "--listen=PATH given twice (the other sockets: --listen=NAME=PATH)");
    options.listenPath = value;
    return {};
}

// --bindir=DIR: where the installed binary is, for ExecStart= (a spec naming its executable keeps it).
Result<ServiceSpec> withBindir(const ServiceSpec& spec, std::string dir) {
    if (!dir.starts_with('/'))
        return fail(EINVAL, "--bindir={}: needs an absolute path (ExecStart= takes one)", dir);
    while (dir.size() > 1 && dir.ends_with('/'))
        dir.pop_back();
    ServiceSpec printed = spec;
    if (printed.executable.empty())
        printed.executable = dir == "/" ? "/" + spec.name : dir + "/" + spec.name;
    return printed;
}

// --print-units=DIR --flat: every file straight in DIR (a build system's custom target knows its outputs by
// name and installs each into its own directory). Two files of one name (a bus name spelt as the unit name)
// refuse.
Result<void> writeFlat(const ServiceSpec& spec, const std::string& directory, const UnitOptions& options) {
    if (::mkdir(directory.c_str(), 0755) < 0 && errno != EEXIST)
        return failErrno("Failed to create '{}'", directory);
    std::vector<UnitFile> units = generateUnits(spec, options);
    for (const UnitFile& unit : units)
        if (std::ranges::count(units, unit.name, &UnitFile::name) > 1)
            return fail(EEXIST, "--flat: two files are named '{}' (the bus name is the unit's name)",
                        unit.name);
    for (const UnitFile& unit : units)
        if (auto ok = writeUnitFile(directory + "/" + unit.name, unit.text); !ok)
            return ok;
    return {};
}

} // namespace

int runMain(int argc, char** argv, const CommandLine& own,
            const std::function<std::unique_ptr<Service>()>& make) {
    std::signal(SIGPIPE, SIG_IGN);

    std::vector<option> longOptions = {
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, Version},
        {"print-units", optional_argument, nullptr, PrintUnits},
        {"bindir", required_argument, nullptr, BinDir},
        {"flat", no_argument, nullptr, Flat},
        {"listen", required_argument, nullptr, Listen},
        {"check", no_argument, nullptr, Check},
    };
    std::string shortOptions = ":h"; // leading ':': a missing argument is reported as ':', not '?'
    for (std::size_t i = 0; i < own.options.size(); ++i) {
        const Option& o = own.options[i];
        bool taken = o.name.empty() ||
                     std::ranges::any_of(longOptions, [&](const option& l) { return o.name == l.name; });
        bool shortTaken = o.shortName != 0 && (std::string_view(":?-").contains(o.shortName) ||
                                               shortOptions.find(o.shortName) != std::string::npos);
        if (taken || shortTaken || !o.set) {
            logError("The service's option '--{}' is unnamed, has no setter, or collides with another option",
                     o.name);
            return 1;
        }
        longOptions.push_back({o.name.c_str(), o.argument.empty() ? no_argument : required_argument, nullptr,
                               Own + static_cast<int>(i)});
        if (o.shortName != 0)
            shortOptions +=
                o.argument.empty() ? std::string(1, o.shortName) : std::format("{}:", o.shortName);
    }
    longOptions.push_back({});

    RunOptions options;
    bool help = false;
    bool version = false;
    std::optional<std::optional<std::string>> printUnits;
    std::optional<std::string> bindir;
    bool flat = false;
    std::vector<std::string> listen;
    opterr = 0;
    optind = 0; // a full reset of GNU getopt's state
    for (int c; (c = getopt_long(argc, argv, shortOptions.c_str(), longOptions.data(), nullptr)) != -1;) {
        if (c == 'h') {
            help = true;
        } else if (c == Version) {
            version = true;
        } else if (c == PrintUnits) {
            printUnits = optarg != nullptr ? std::optional<std::string>(optarg) : std::nullopt;
        } else if (c == BinDir) {
            bindir = optarg;
        } else if (c == Flat) {
            flat = true;
        } else if (c == Listen) {
            listen.emplace_back(optarg);
        } else if (c == Check) {
            options.checkOnly = true;
        } else if (c == ':') {
            logError("Option '{}' needs an argument (see --help)", argv[optind - 1]);
            return 2;
        } else if (c == '?') {
            if (optopt != 0)
                logError("Unknown option '-{}' (see --help)", static_cast<char>(optopt));
            else
                logError("Unknown option '{}' (see --help)", argv[optind - 1]);
            return 2;
        } else {
            auto index =
                c >= Own ? std::optional<std::size_t>(static_cast<std::size_t>(c - Own)) : std::nullopt;
            if (!index) {
                auto it = std::ranges::find(own.options, static_cast<char>(c), &Option::shortName);
                if (it != own.options.end())
                    index = static_cast<std::size_t>(it - own.options.begin());
            }
            if (!index || *index >= own.options.size()) {
                logError("getopt_long returned an unexpected value {}", c);
                return 2;
            }
            const Option& o = own.options[*index];
            if (auto ok = o.set(optarg != nullptr ? std::string_view(optarg) : std::string_view()); !ok) {
                logError("--{}: {}", o.name, ok.error().message());
                return 2;
            }
        }
    }
    if (optind < argc) {
        std::vector<std::string> positional(argv + optind, argv + argc);
        if (!own.positional) {
            logError("Unknown argument '{}' (see --help)", positional.front());
            return 2;
        }
        if (auto ok = own.positional(positional, options); !ok) {
            logError("{} (see --help)", ok.error().message());
            return 2;
        }
    }

    std::unique_ptr<Service> service;
    try {
        service = make();
    } catch (const std::exception& e) {
        logError("Failed to set up the service: {}", e.what());
        return 1;
    }
    const ServiceSpec& spec = service->spec();
    if (help) {
        printHelp(spec, own);
        return 0;
    }
    if (version) {
        std::println("{} {}", spec.name, spec.version);
        return 0;
    }
    if ((bindir || flat) && !printUnits) {
        logError("--{} only goes with --print-units (see --help)", bindir ? "bindir" : "flat");
        return 2;
    }
    if (flat && !*printUnits) {
        logError("--flat needs --print-units=DIR (see --help)");
        return 2;
    }
    if (printUnits) {
        ServiceSpec printed = spec;
        if (bindir) {
            auto withDir = withBindir(spec, *bindir);
            if (!withDir) {
                logError("{}", withDir.error().message());
                return 2;
            }
            printed = std::move(*withDir);
        }
        if (!*printUnits) {
            for (const UnitFile& unit : generateUnits(printed, service->unitOptions()))
                std::print("# {}\n{}\n", unit.path(), unit.text);
            return 0;
        }
        if (auto ok = flat ? writeFlat(printed, **printUnits, service->unitOptions())
                           : writeUnits(printed, **printUnits, service->unitOptions());
            !ok) {
            logError("{}", ok.error().message());
            return 1;
        }
        return 0;
    }
    for (const std::string& value : listen)
        if (auto ok = addListen(spec, value, options); !ok) {
            logError("{}", ok.error().message());
            return 2;
        }
    if (options.listenPath && !spec.sockets.empty() && options.listenNamed.contains(firstSocket(spec).name)) {
        logError("--listen=PATH and --listen={}=PATH both name the first socket", firstSocket(spec).name);
        return 2;
    }
    if (options.checkOnly && (options.listenPath || !options.listenNamed.empty())) {
        logError("--check and --listen exclude each other");
        return 2;
    }
    auto code = service->run(options);
    std::fflush(stdout);
    if (!code) {
        // A refusal the service recorded goes to the journal with its fields; any other error is a line.
        auto refusal = internal::takeRefusal();
        if (refusal && refusal->error.message() == code.error().message())
            internal::logRefusal(*refusal);
        else
            logError("{}", code.error().message());
        return 1;
    }
    return *code;
}

} // namespace svckit::detail
