#include "new.hpp"

#include "scaffold_templates.hpp"

#include <svckit/unique_fd.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <format>
#include <optional>
#include <print>
#include <set>

namespace svckit::tool {
namespace {

bool isLetter(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isDigit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool isAlnum(char c) noexcept {
    return isLetter(c) || isDigit(c);
}

// Splits on `separator`, keeping empty pieces (so that "a..b" shows its empty element).
std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> pieces;
    size_t start = 0;
    for (;;) {
        size_t end = text.find(separator, start);
        pieces.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos)
            return pieces;
        start = end + 1;
    }
}

// The D-Bus names share their element rules; `hyphen` allows '-' (bus names do, interface names do not).
Result<void> checkDBusElements(std::string_view what, std::string_view name, bool hyphen) {
    if (name.empty())
        return fail(EINVAL, "Invalid {} '': it is empty", what);
    if (name.size() > 255)
        return fail(EINVAL, "Invalid {} '{}': longer than 255 characters", what, name);
    if (name.front() == ':')
        return fail(EINVAL, "Invalid {} '{}': a name starting with ':' is a unique connection name", what,
                    name);
    auto elements = split(name, '.');
    if (elements.size() < 2)
        return fail(EINVAL, "Invalid {} '{}': it needs at least two elements separated by '.'", what, name);
    for (std::string_view element : elements) {
        if (element.empty())
            return fail(EINVAL, "Invalid {} '{}': an element is empty ('..', or '.' at an end)", what, name);
        if (isDigit(element.front()))
            return fail(EINVAL, "Invalid {} '{}': element '{}' starts with a digit", what, name, element);
        for (char c : element)
            if (!isAlnum(c) && c != '_' && !(hyphen && c == '-'))
                return fail(EINVAL, "Invalid {} '{}': '{}' is not allowed (only {})", what, name, c,
                            hyphen ? "letters, digits, '_' and '-'" : "letters, digits and '_'");
    }
    return {};
}

// The C++ namespace svckit-varlink-codegen makes of an interface name: '-' as '_', a label starting with a
// digit prefixed with '_', a C++ keyword suffixed with '_' (tools/varlink-codegen/varlink_codegen.py).
std::string varlinkNamespaceOf(std::string_view interface) {
    static const std::set<std::string, std::less<>> reserved = {
        "alignas",     "alignof",   "and",        "and_eq",    "asm",      "auto",         "bitand",
        "bitor",       "bool",      "break",      "case",      "catch",    "char",         "char8_t",
        "char16_t",    "char32_t",  "class",      "compl",     "concept",  "const",        "consteval",
        "constexpr",   "constinit", "const_cast", "continue",  "co_await", "co_return",    "co_yield",
        "decltype",    "default",   "delete",     "do",        "double",   "dynamic_cast", "else",
        "enum",        "explicit",  "export",     "extern",    "false",    "float",        "for",
        "friend",      "goto",      "if",         "inline",    "int",      "long",         "mutable",
        "namespace",   "new",       "noexcept",   "not",       "not_eq",   "nullptr",      "operator",
        "or",          "or_eq",     "private",    "protected", "public",   "register",     "reinterpret_cast",
        "requires",    "return",    "short",      "signed",    "sizeof",   "static",       "static_assert",
        "static_cast", "struct",    "switch",     "template",  "this",     "thread_local", "throw",
        "true",        "try",       "typedef",    "typeid",    "typename", "union",        "unsigned",
        "using",       "virtual",   "void",       "volatile",  "wchar_t",  "while",        "xor",
        "xor_eq",      "assert",    "errno",      "NULL",      "EOF",      "stdin",        "stdout",
        "stderr",      "offsetof",  "setjmp",     "unix",      "linux",    "i386"};
    std::string out;
    for (std::string_view label : split(interface, '.')) {
        std::string cxx(label);
        for (char& c : cxx)
            if (c == '-')
                c = '_';
        if (isDigit(cxx.front()))
            cxx.insert(0, "_");
        if (reserved.contains(cxx))
            cxx += '_';
        if (!out.empty())
            out += "::";
        out += cxx;
    }
    return out;
}

// The C++ class sdbus-c++-xml2cpp makes of a D-Bus interface name: the last element with `suffix`, in the
// namespace of the others.
std::string dbusClassOf(std::string_view interface, std::string_view suffix) {
    std::string out;
    for (std::string_view element : split(interface, '.')) {
        if (!out.empty())
            out += "::";
        out += element;
    }
    return out + std::string(suffix);
}

// Everything the templates are rendered with.
struct Project {
    std::map<std::string, std::string, std::less<>> values;
    std::map<std::string, bool, std::less<>> flags;
    std::vector<std::pair<std::string, std::string>> files; // template path -> project path
};

std::string joined(const std::vector<std::string>& items, std::string_view before, std::string_view after,
                   std::string_view separator) {
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty())
            out += separator;
        out += std::format("{}{}{}", before, item, after);
    }
    return out;
}

Result<Project> describe(const NewOptions& options) {
    if (auto ok = checkServiceName(options.name); !ok)
        return std::unexpected(ok.error());
    const bool varlink = options.protocols != Protocols::DBus;
    const bool dbus = options.protocols != Protocols::Varlink;
    const std::string& name = options.name;
    const std::string className = classNameOf(name);

    std::string interface = options.interface.empty() ? "org.example." + className : options.interface;
    if (auto ok = checkVarlinkInterfaceName(interface); !ok)
        return fail(EINVAL, "{}{}", ok.error().message(), options.interface.empty() ? "" : " (--interface)");
    std::string busName = options.busName.empty() ? interface + "1" : options.busName;
    std::string objectPath = options.objectPath;
    if (objectPath.empty()) {
        objectPath = "/" + busName;
        for (char& c : objectPath)
            if (c == '.')
                c = '/';
            else if (c == '-')
                c = '_';
    }
    if (dbus) {
        // The same name is the bus name services answer to and the object's interface.
        const char* from =
            options.busName.empty()
                ? (options.interface.empty() ? "" : " (derived from --interface; give --bus-name)")
                : " (--bus-name)";
        if (auto ok = checkBusName(busName); !ok)
            return fail(EINVAL, "{}{}", ok.error().message(), from);
        if (auto ok = checkDBusInterfaceName(busName); !ok)
            return fail(EINVAL, "{}{}", ok.error().message(), from);
        if (auto ok = checkObjectPath(objectPath); !ok)
            return fail(EINVAL, "{}{}", ok.error().message(),
                        options.objectPath.empty() ? "" : " (--object-path)");
    }

    const std::string varlinkSocket = "/run/" + name + ".sock";
    const std::string dbusSocket = "/run/" + name + "-dbus.sock";
    const std::string varlinkListen = "/tmp/" + name + ".sock";
    const std::string dbusListen = "/tmp/" + name + "-dbus.sock";

    // The units the ServiceSpec gives (framework/units/units.cpp): with Accept=no the first socket is
    // NAME.socket, the next NAME-SOCKET.socket, and one NAME.service serves them; with Accept=yes each socket
    // is NAME-SOCKET.socket with its NAME-SOCKET@.service.
    std::vector<std::string> socketNames;
    if (varlink)
        socketNames.emplace_back("varlink");
    if (dbus)
        socketNames.emplace_back("dbus");
    std::vector<std::string> units;
    std::vector<std::string> sockets;
    std::vector<std::string> services;
    for (size_t i = 0; i < socketNames.size(); ++i) {
        if (options.accept) {
            sockets.push_back(std::format("{}-{}.socket", name, socketNames[i]));
            units.push_back(sockets.back());
            units.push_back(std::format("{}-{}@.service", name, socketNames[i]));
            services.push_back(std::format("'{}-{}@*.service'", name, socketNames[i]));
        } else {
            sockets.push_back(i == 0 ? name + ".socket" : std::format("{}-{}.socket", name, socketNames[i]));
            units.push_back(sockets.back());
        }
    }
    if (!options.accept) {
        units.push_back(name + ".service");
        services.push_back(name + ".service");
    }

    Project p;
    p.flags = {{"varlink", varlink},
               {"dbus", dbus},
               {"both", varlink && dbus},
               {"accept", options.accept},
               {"fds", options.fds}};
    std::vector<std::string> generated;
    if (varlink)
        generated.emplace_back("varlink_sources");
    if (dbus)
        generated.emplace_back("dbus_sources");
    std::string deps = dbus ? "svckit, sdbus" : "svckit";
    std::string listenArguments;
    if (varlink && dbus)
        listenArguments = "\"--listen=varlink=\" + varlinkPath_, \"--listen=dbus=\" + dbusPath_";
    else
        listenArguments = varlink ? "\"--listen=\" + varlinkPath_" : "\"--listen=\" + dbusPath_";
    std::string listenExample = varlink && dbus
                                    ? std::format("varlink={} --listen=dbus={}", varlinkListen, dbusListen)
                                    : (varlink ? varlinkListen : dbusListen);
    p.values = {
        {"name", name},
        {"className", className},
        {"interface", interface},
        {"interfaceNamespace", varlinkNamespaceOf(interface)},
        {"busName", busName},
        {"objectPath", objectPath},
        {"adaptorClass", dbusClassOf(busName, "_adaptor")},
        {"proxyClass", dbusClassOf(busName, "_proxy")},
        {"varlinkSocket", varlinkSocket},
        {"dbusSocket", dbusSocket},
        {"varlinkListenPath", varlinkListen},
        {"dbusListenPath", dbusListen},
        {"listenExample", listenExample},
        {"listenArguments", listenArguments},
        {"fdsBool", options.fds ? "true" : "false"},
        {"acceptWords", options.accept ? "Accept=yes: one process per connection"
                                       : "Accept=no: one process for all callers"},
        {"acceptSentence", options.accept
                               ? "`Accept=yes`: systemd starts one process per connection, which "
                                 "ends with it"
                               : "`Accept=no`: systemd starts one process on the first connection; it "
                                 "serves every caller"},
        {"fdsSentence",
         options.fds ? "accepted (`AcceptFileDescriptors=yes`), by the method `Inspect` only"
                     : "refused (`AcceptFileDescriptors=no`): a caller's `sendmsg()` carrying one fails "
                       "with EPERM"},
        {"generatedSources", joined(generated, "", "", ", ")},
        {"serviceDependencies", deps},
        {"testDependencies", deps + ", gtest"},
        {"unitOutputs", joined(units, "'", "'", ", ")},
        {"unitList", joined(units, "`", "`", ", ")},
        {"socketUnits", joined(sockets, "", "", " ")},
        {"firstSocketUnit", sockets.front()},
        {"statusUnit",
         options.accept ? std::format("'{}-{}@*'", name, socketNames.front()) : name + ".service"},
        {"stopUnits", joined(services, "", "", " ")},
    };
    p.files = {
        {"README.md", "README.md"}, {"meson.build", "meson.build"}, {"meson.options", "meson.options"}};
    if (varlink)
        p.files.emplace_back("interface.varlink", interface + ".varlink");
    if (dbus)
        p.files.emplace_back("dbus.xml", busName + ".xml");
    p.files.emplace_back("src/main.cpp", "src/main.cpp");
    p.files.emplace_back("tests/service_test.cpp", "tests/service_test.cpp");
    return p;
}

std::optional<std::string_view> templateText(std::string_view path) {
    for (const auto& t : templates::all)
        if (t.path == path)
            return t.text;
    return std::nullopt;
}

constexpr std::string_view kUsage =
    R"(Usage: svckit new NAME [--varlink|--dbus|--both] [--accept] [--fds] [--dir DIR]
                  [--interface NAME] [--bus-name NAME] [--object-path PATH]

Writes a new svckit service project into DIR (default ./NAME), which must not exist or be empty: a
meson.build that finds svckit with dependency('svckit') (pkg-config, or a subproject), the interface
(NAME.varlink and/or D-Bus XML), src/main.cpp with a Service subclass whose method Hello answers with the
caller's uid and pid, tests/service_test.cpp (GoogleTest, over a real socket) and a README on building,
running without systemd, installing, enabling, calling, overriding and removing it. Nothing is written when
a name is invalid or DIR is not empty.

  NAME              the service's name: its binary and units (NAME.socket, NAME.service); letters, digits
                    and "_.-", starting with a letter, at most 92 characters
  --varlink         serve a varlink interface on /run/NAME.sock (the default)
  --dbus            serve D-Bus, peer-to-peer on its own socket /run/NAME-dbus.sock (no bus daemon)
  --both            both, from one process
  --accept          Accept=yes: systemd starts one process per connection (default: one for all)
  --fds             the sockets accept file descriptors (AcceptFileDescriptors=yes), and a method
                    Inspect takes one (default: refused)
  --dir DIR         where to write the project (default: ./NAME)
  --interface NAME  the varlink interface (default: org.example.<Name>, <Name> from NAME: my-greeter gives
                    MyGreeter); reverse-domain, per the varlink specification
  --bus-name NAME   the D-Bus name and interface (default: the varlink interface name followed by 1)
  --object-path PATH
                    the D-Bus object path (default: the bus name with '.' as '/')
  -h, --help        show this help

Then: cd DIR && meson setup build && meson test -C build (README.md goes on from there).
)";

} // namespace

Result<void> checkServiceName(std::string_view name) {
    if (name.empty())
        return fail(EINVAL, "Invalid service name '': it is empty");
    if (name.size() > kMaxServiceName)
        return fail(
            EINVAL,
            "Invalid service name '{}': longer than {} characters (its socket path /run/NAME-dbus.sock "
            "must fit in a socket address)",
            name, kMaxServiceName);
    for (std::string_view suffix : {".service", ".socket"})
        if (name.ends_with(suffix))
            return fail(EINVAL, "Invalid service name '{}': it is the prefix of the unit names, without '{}'",
                        name, suffix);
    for (char c : name) {
        if (c == ':')
            return fail(
                EINVAL,
                "Invalid service name '{}': ':' is allowed in unit names but not in meson project names",
                name);
        if (!isAlnum(c) && c != '_' && c != '.' && c != '-')
            return fail(EINVAL,
                        "Invalid service name '{}': '{}' is not allowed in a unit name (only letters, digits "
                        "and \"_.-\")",
                        name, c);
    }
    if (!isLetter(name.front()))
        return fail(EINVAL,
                    "Invalid service name '{}': it must start with a letter (a C++ class name is made of it)",
                    name);
    return {};
}

Result<void> checkVarlinkInterfaceName(std::string_view name) {
    if (name.empty())
        return fail(EINVAL, "Invalid varlink interface name '': it is empty");
    auto labels = split(name, '.');
    if (labels.size() < 2)
        return fail(EINVAL,
                    "Invalid varlink interface name '{}': it needs at least two labels separated by '.' "
                    "(reverse-domain: org.example.Name)",
                    name);
    if (!isLetter(name.front()))
        return fail(EINVAL, "Invalid varlink interface name '{}': it must start with a letter", name);
    for (std::string_view label : labels) {
        if (label.empty())
            return fail(EINVAL,
                        "Invalid varlink interface name '{}': a label is empty ('..', or '.' at an end)",
                        name);
        for (char c : label)
            if (!isAlnum(c) && c != '-')
                return fail(
                    EINVAL,
                    "Invalid varlink interface name '{}': '{}' is not allowed (only letters, digits and "
                    "'-')",
                    name, c);
        if (label.front() == '-' || label.back() == '-')
            return fail(EINVAL, "Invalid varlink interface name '{}': label '{}' starts or ends with '-'",
                        name, label);
    }
    return {};
}

Result<void> checkBusName(std::string_view name) {
    return checkDBusElements("D-Bus bus name", name, true);
}

Result<void> checkDBusInterfaceName(std::string_view name) {
    return checkDBusElements("D-Bus interface name", name, false);
}

Result<void> checkObjectPath(std::string_view path) {
    if (path.empty() || path.front() != '/')
        return fail(EINVAL, "Invalid D-Bus object path '{}': it must start with '/'", path);
    if (path == "/")
        return {};
    if (path.back() == '/')
        return fail(EINVAL, "Invalid D-Bus object path '{}': it must not end with '/'", path);
    for (std::string_view element : split(path.substr(1), '/')) {
        if (element.empty())
            return fail(EINVAL, "Invalid D-Bus object path '{}': an element is empty ('//')", path);
        for (char c : element)
            if (!isAlnum(c) && c != '_')
                return fail(
                    EINVAL,
                    "Invalid D-Bus object path '{}': '{}' is not allowed (only letters, digits and '_')",
                    path, c);
    }
    return {};
}

std::string classNameOf(std::string_view serviceName) {
    std::string out;
    bool startOfRun = true;
    for (char c : serviceName) {
        if (!isAlnum(c)) {
            startOfRun = true;
            continue;
        }
        out += startOfRun && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
        startOfRun = false;
    }
    return out;
}

std::string_view newUsage() noexcept {
    return kUsage;
}

Result<NewRequest> parseNewArguments(std::span<const std::string_view> args) {
    NewRequest request;
    NewOptions& o = request.options;
    bool protocolGiven = false;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        auto value = [&](std::string& into) -> Result<void> {
            // --opt VALUE or --opt=VALUE
            if (size_t eq = arg.find('='); eq != std::string_view::npos) {
                into = std::string(arg.substr(eq + 1));
                return {};
            }
            if (i + 1 >= args.size())
                return fail(EINVAL, "option '{}' needs a value", arg);
            into = std::string(args[++i]);
            return {};
        };
        auto protocol = [&](Protocols p) -> Result<void> {
            if (protocolGiven && o.protocols != p)
                return fail(EINVAL, "give one of --varlink, --dbus and --both");
            protocolGiven = true;
            o.protocols = p;
            return {};
        };
        std::string_view option = arg.substr(0, arg.find('='));
        Result<void> ok;
        if (arg == "-h" || arg == "--help") {
            request.help = true;
            return request;
        } else if (arg == "--varlink")
            ok = protocol(Protocols::Varlink);
        else if (arg == "--dbus")
            ok = protocol(Protocols::DBus);
        else if (arg == "--both")
            ok = protocol(Protocols::Both);
        else if (arg == "--accept")
            o.accept = true;
        else if (arg == "--fds")
            o.fds = true;
        else if (option == "--dir")
            ok = value(o.directory);
        else if (option == "--interface")
            ok = value(o.interface);
        else if (option == "--bus-name")
            ok = value(o.busName);
        else if (option == "--object-path")
            ok = value(o.objectPath);
        else if (arg.starts_with("-"))
            return fail(EINVAL, "unknown option '{}'", arg);
        else if (o.name.empty())
            o.name = std::string(arg);
        else
            return fail(EINVAL, "one NAME only (got '{}' and '{}')", o.name, arg);
        if (!ok)
            return std::unexpected(ok.error());
    }
    if (o.name.empty())
        return fail(EINVAL, "no NAME given");
    if (o.protocols == Protocols::Varlink && (!o.busName.empty() || !o.objectPath.empty()))
        return fail(EINVAL, "--bus-name and --object-path need --dbus or --both");
    if (o.protocols == Protocols::DBus && !o.interface.empty() && o.busName.empty())
        return fail(EINVAL, "--interface names the varlink interface: with --dbus, give --bus-name");
    return request;
}

Result<std::string> renderTemplate(std::string_view name, std::string_view text,
                                   const std::map<std::string, std::string, std::less<>>& values,
                                   const std::map<std::string, bool, std::less<>>& flags) {
    struct Level {
        bool parentOn;
        bool condition;
        bool inElse = false;
        [[nodiscard]] bool on() const noexcept { return parentOn && (inElse ? !condition : condition); }
    };
    std::vector<Level> levels;
    auto on = [&] { return levels.empty() || levels.back().on(); };
    auto lineOf = [&](size_t at) {
        return 1 + std::count(text.begin(), text.begin() + static_cast<long>(at), '\n');
    };
    std::string out;
    size_t at = 0;
    while (at < text.size()) {
        size_t open = text.find("{{", at);
        // "{{{x}}}" is a brace followed by {{x}}: a directive's name starts with a letter or '#'.
        while (open != std::string_view::npos && open + 2 < text.size() && text[open + 2] == '{')
            open = text.find("{{", open + 1);
        if (open == std::string_view::npos) {
            if (on())
                out += text.substr(at);
            break;
        }
        size_t close = text.find("}}", open + 2);
        if (close == std::string_view::npos)
            return fail(EINVAL, "template {}:{}: '{{{{' without '}}}}'", name, lineOf(open));
        std::string_view inside = text.substr(open + 2, close - open - 2);
        size_t end = close + 2;
        if (on())
            out += text.substr(at, open - at);
        if (inside.starts_with('#')) {
            // A directive alone on its line takes the line (and its newline) with it.
            size_t lineStart = text.rfind('\n', open == 0 ? 0 : open - 1);
            lineStart = (open == 0 || lineStart == std::string_view::npos) ? 0 : lineStart + 1;
            if (text.substr(lineStart, open - lineStart).empty() && end < text.size() && text[end] == '\n') {
                ++end;
            }
            if (inside.starts_with("#if ")) {
                std::string_view flag = inside.substr(4);
                bool negate = flag.starts_with('!');
                if (negate)
                    flag.remove_prefix(1);
                auto it = flags.find(flag);
                if (it == flags.end())
                    return fail(EINVAL, "template {}:{}: unknown flag '{}'", name, lineOf(open), flag);
                levels.push_back({.parentOn = on(), .condition = it->second != negate});
            } else if (inside == "#else") {
                if (levels.empty() || levels.back().inElse)
                    return fail(EINVAL, "template {}:{}: '{{{{#else}}}}' without '{{{{#if}}}}'", name,
                                lineOf(open));
                levels.back().inElse = true;
            } else if (inside == "#end") {
                if (levels.empty())
                    return fail(EINVAL, "template {}:{}: '{{{{#end}}}}' without '{{{{#if}}}}'", name,
                                lineOf(open));
                levels.pop_back();
            } else {
                return fail(EINVAL, "template {}:{}: unknown directive '{}'", name, lineOf(open), inside);
            }
        } else {
            auto it = values.find(inside);
            if (it == values.end())
                return fail(EINVAL, "template {}:{}: unknown value '{}'", name, lineOf(open), inside);
            if (on())
                out += it->second;
        }
        at = end;
    }
    if (!levels.empty())
        return fail(EINVAL, "template {}: '{{{{#if}}}}' without '{{{{#end}}}}'", name);
    return out;
}

Result<std::vector<ProjectFile>> renderProject(const NewOptions& options) {
    auto project = describe(options);
    if (!project)
        return std::unexpected(project.error());
    std::vector<ProjectFile> files;
    for (const auto& [from, to] : project->files) {
        auto text = templateText(from);
        if (!text)
            return fail(ENOENT, "No template '{}' in this svckit", from);
        auto rendered = renderTemplate(from, *text, project->values, project->flags);
        if (!rendered)
            return std::unexpected(rendered.error());
        files.push_back({.path = to, .text = std::move(*rendered)});
    }
    return files;
}

Result<void> writeProject(const std::string& directory, const std::vector<ProjectFile>& files) {
    namespace fs = std::filesystem;
    std::error_code ec;
    // Checked before anything is written: an existing directory must be empty, anything else must not exist.
    auto status = fs::symlink_status(directory, ec);
    if (!ec && fs::exists(status)) {
        if (!fs::is_directory(status))
            return fail(EEXIST, "Refusing to write into '{}': it exists and is not a directory", directory);
        if (!fs::is_empty(directory, ec) || ec)
            return fail(ENOTEMPTY, "Refusing to write into '{}': the directory is not empty", directory);
    }
    fs::create_directories(directory, ec);
    if (ec)
        return fail(ec.value(), "Failed to create '{}': {}", directory, ec.message());
    for (const ProjectFile& file : files) {
        fs::path path = fs::path(directory) / file.path;
        fs::create_directories(path.parent_path(), ec);
        if (ec)
            return fail(ec.value(), "Failed to create '{}': {}", path.parent_path().string(), ec.message());
        // O_EXCL: never replace a file, even one that appeared since the check.
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return failErrno("Failed to create '{}'", path.string());
        UniqueFd owned(fd);
        std::string_view rest = file.text;
        while (!rest.empty()) {
            ssize_t n = ::write(owned.get(), rest.data(), rest.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return failErrno("Failed to write '{}'", path.string());
            rest.remove_prefix(static_cast<size_t>(n));
        }
    }
    return {};
}

int runNew(const NewOptions& options) {
    auto files = renderProject(options);
    if (!files) {
        std::print(stderr, "svckit new: {}\n", files.error().message());
        return 1;
    }
    std::string directory = options.directory.empty() ? options.name : options.directory;
    if (auto written = writeProject(directory, *files); !written) {
        std::print(stderr, "svckit new: {}\n", written.error().message());
        return 1;
    }
    std::print("Wrote {} files into {}/. Next:\n  cd {}\n  meson setup build\n  meson test -C build\n"
               "and README.md from there.\n",
               files->size(), directory, directory);
    return 0;
}

} // namespace svckit::tool
