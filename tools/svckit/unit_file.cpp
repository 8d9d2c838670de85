#include "unit_file.hpp"

#include <svckit/unique_fd.hpp>

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <format>
#include <span>
#include <utility>

namespace svckit::tool {
namespace {

constexpr std::string_view kWhitespace = " \t\r\n";
constexpr std::string_view kSocketSuffix = ".socket";
// sun_path holds a path with its terminating NUL, or an abstract name after a leading NUL byte.
constexpr size_t kMaxUnixName = sizeof(sockaddr_un::sun_path) - 1;
// LISTEN_FDNAMES entries: at most 255 characters (systemd's FDNAME_MAX).
constexpr size_t kMaxFdName = 255;

std::string_view trimLeft(std::string_view s) {
    size_t first = s.find_first_not_of(kWhitespace);
    return first == std::string_view::npos ? std::string_view{} : s.substr(first);
}

std::string_view trim(std::string_view s) {
    s = trimLeft(s);
    size_t last = s.find_last_not_of(kWhitespace);
    return last == std::string_view::npos ? std::string_view{} : s.substr(0, last + 1);
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
    return std::ranges::equal(a, b, [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
    });
}

// The parts of a unit name that the specifiers %n, %N, %p and %i stand for.
struct UnitName {
    std::string full{};     // %n: "foo@bar.socket"
    std::string stem{};     // %N: "foo@bar"
    std::string prefix{};   // %p: "foo"
    std::string instance{}; // %i: "bar", or empty
};

Result<UnitName> unitNameOf(std::string_view fileName) {
    std::string_view base = fileName.substr(fileName.find_last_of('/') + 1);
    if (!base.ends_with(kSocketSuffix) || base.size() == kSocketSuffix.size())
        return fail(EINVAL, "{}: the file name of a socket unit must end in \"{}\"", fileName, kSocketSuffix);
    UnitName name{.full = std::string(base),
                  .stem = std::string(base.substr(0, base.size() - kSocketSuffix.size()))};
    size_t at = name.stem.find('@');
    name.prefix = name.stem.substr(0, at);
    if (at != std::string::npos) {
        name.instance = name.stem.substr(at + 1);
        // systemd cannot start a template either: it needs an instance to fill in.
        if (name.instance.empty())
            return fail(EINVAL, "{}: '{}' is a template unit; name an instance such as '{}@1{}'", fileName,
                        base, name.prefix, kSocketSuffix);
    }
    return name;
}

// What one parse works on; `line` is the line of the assignment being applied.
struct ParseContext {
    SocketUnit& unit;
    const UnitName& unitName;
    const ParseOptions& options;
    unsigned line = 0;
};

// systemd expands specifiers in these settings; a '%' taken literally would bind a different path than
// systemd does, so the few specifiers that make sense here are expanded and any other is an error.
Result<std::string> expandSpecifiers(const ParseContext& ctx, std::string_view key, std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
        if (value[i] != '%') {
            out += value[i];
            continue;
        }
        if (++i == value.size())
            return fail(EINVAL, "trailing '%' in {}=", key);
        switch (value[i]) {
        case 'n':
            out += ctx.unitName.full;
            break;
        case 'N':
            out += ctx.unitName.stem;
            break;
        case 'p':
            out += ctx.unitName.prefix;
            break;
        case 'i':
            out += ctx.unitName.instance;
            break;
        case 't':
            out += ctx.options.runtimeDirectory;
            break;
        case '%':
            out += '%';
            break;
        default:
            return fail(EINVAL,
                        "unsupported specifier '%{}' in {}= (svckit activate expands %n %N %p %i %t %%)",
                        value[i], key);
        }
    }
    return out;
}

// "//run//foo.sock" and "/run/foo.sock" are the same socket; systemd simplifies the path the same way.
std::string collapseSlashes(std::string_view path) {
    std::string out;
    out.reserve(path.size());
    for (char c : path)
        if (c != '/' || out.empty() || out.back() != '/')
            out += c;
    return out;
}

Result<void> addListener(ParseContext& ctx, std::string_view key, std::string_view value, SocketType type) {
    auto expanded = expandSpecifiers(ctx, key, value);
    if (!expanded)
        return std::unexpected(expanded.error());
    std::string address = std::move(*expanded);
    if (address.empty()) {
        // systemd.socket(5): an empty assignment to any Listen*= setting resets the whole list.
        ctx.unit.listeners.clear();
        return {};
    }
    if (address.front() == '@') {
        if (address.size() == 1)
            return fail(EINVAL, "an abstract socket name needs characters after '@' in {}=", key);
        if (address.size() - 1 > kMaxUnixName)
            return fail(EINVAL, "abstract socket name '{}' is longer than {} bytes in {}=", address,
                        kMaxUnixName, key);
    } else if (address.front() == '/') {
        address = collapseSlashes(address);
        if (address.size() > kMaxUnixName)
            return fail(EINVAL, "socket path '{}' is longer than {} bytes in {}=", address, kMaxUnixName,
                        key);
    } else {
        return fail(
            EINVAL,
            "'{}' is not an absolute AF_UNIX socket path or an @abstract name in {}= (svckit activate "
            "supports only those)",
            address, key);
    }
    ctx.unit.listeners.push_back({.address = std::move(address), .type = type, .line = ctx.line});
    return {};
}

Result<void> setBoolean(bool& target, std::string_view key, std::string_view value) {
    auto parsed = parseBoolean(value);
    if (!parsed)
        return fail(EINVAL, "invalid boolean '{}' for {}=", value, key);
    target = *parsed;
    return {};
}

Result<void> setMode(mode_t& target, std::string_view key, std::string_view value) {
    unsigned mode = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), mode, 8);
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size() || mode > 07777)
        return fail(EINVAL, "invalid mode '{}' for {}= (octal, at most 07777)", value, key);
    target = static_cast<mode_t>(mode);
    return {};
}

Result<void> setNumber(unsigned& target, std::string_view key, std::string_view value) {
    unsigned number = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number, 10);
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size())
        return fail(EINVAL, "invalid number '{}' for {}=", value, key);
    target = number;
    return {};
}

Result<void> setFileDescriptorName(ParseContext& ctx, std::string_view key, std::string_view value) {
    auto name = expandSpecifiers(ctx, key, value);
    if (!name)
        return std::unexpected(name.error());
    // The names are joined with ':' into LISTEN_FDNAMES, so a ':' would split one name into two.
    if (name->size() > kMaxFdName)
        return fail(EINVAL, "file descriptor name is longer than {} characters for {}=", kMaxFdName, key);
    for (char c : *name)
        if (c == ':' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return fail(EINVAL, "invalid file descriptor name '{}' for {}= (printable ASCII without ':')",
                        *name, key);
    ctx.unit.options.fileDescriptorName = std::move(*name); // empty: back to the default
    return {};
}

Result<void> setService(ParseContext& ctx, std::string_view key, std::string_view value) {
    auto service = expandSpecifiers(ctx, key, value);
    if (!service)
        return std::unexpected(service.error());
    constexpr std::string_view suffix = ".service";
    if (!service->empty() && (!service->ends_with(suffix) || service->size() == suffix.size()))
        return fail(EINVAL, "invalid service name '{}' for {}= (it must name a .service unit)", *service,
                    key);
    ctx.unit.options.service = std::move(*service);
    return {};
}

using SettingHandler = Result<void> (*)(ParseContext&, std::string_view key, std::string_view value);

struct Setting {
    std::string_view key;
    SettingHandler apply;
};

using Ctx = ParseContext;
using Sv = std::string_view;

constexpr auto kSocketSettings = std::to_array<Setting>({
    {"ListenStream", [](Ctx& c, Sv k, Sv v) { return addListener(c, k, v, SocketType::Stream); }},
    {"ListenSequentialPacket",
     [](Ctx& c, Sv k, Sv v) { return addListener(c, k, v, SocketType::SeqPacket); }},
    {"Accept", [](Ctx& c, Sv k, Sv v) { return setBoolean(c.unit.options.accept, k, v); }},
    {"FileDescriptorName", setFileDescriptorName},
    {"SocketMode", [](Ctx& c, Sv k, Sv v) { return setMode(c.unit.options.socketMode, k, v); }},
    {"DirectoryMode", [](Ctx& c, Sv k, Sv v) { return setMode(c.unit.options.directoryMode, k, v); }},
    {"PassCredentials", [](Ctx& c, Sv k, Sv v) { return setBoolean(c.unit.options.passCredentials, k, v); }},
    {"PassPIDFD", [](Ctx& c, Sv k, Sv v) { return setBoolean(c.unit.options.passPidfd, k, v); }},
    {"AcceptFileDescriptors",
     [](Ctx& c, Sv k, Sv v) { return setBoolean(c.unit.options.acceptFileDescriptors, k, v); }},
    {"MaxConnections", [](Ctx& c, Sv k, Sv v) { return setNumber(c.unit.options.maxConnections, k, v); }},
    {"MaxConnectionsPerSource",
     [](Ctx& c, Sv k, Sv v) { return setNumber(c.unit.options.maxConnectionsPerSource, k, v); }},
    {"Service", setService},
});

// Real systemd settings that cannot change what the service is handed; accepted with a note saying why.
struct IgnoredSetting {
    std::string_view key;
    std::string_view why;
};

constexpr auto kIgnoredSettings = std::to_array<IgnoredSetting>({
    {"Backlog", "listen() uses SOMAXCONN"},
    {"SocketUser", "the socket belongs to the user running svckit activate"},
    {"SocketGroup", "the socket belongs to the user running svckit activate"},
    {"RemoveOnStop", "svckit activate always removes the socket files it created"},
    {"Symlinks", "no symlinks are created"},
    {"TriggerLimitIntervalSec", "no trigger rate limit is applied"},
    {"TriggerLimitBurst", "no trigger rate limit is applied"},
    {"PollLimitIntervalSec", "no poll rate limit is applied"},
    {"PollLimitBurst", "no poll rate limit is applied"},
});

// Real systemd settings outside svckit's AF_UNIX subset: an error, but not an "unknown setting" one.
constexpr auto kUnsupportedSettings = std::to_array<std::string_view>({
    "ListenDatagram",
    "ListenFIFO",
    "ListenSpecial",
    "ListenNetlink",
    "ListenMessageQueue",
    "ListenUSBFunction",
    "PassSecurity",
    "PassPacketInfo",
    "ExecStartPre",
    "ExecStartPost",
    "ExecStopPre",
    "ExecStopPost",
});

Result<void> applySocketSetting(ParseContext& ctx, std::string_view key, std::string_view value) {
    if (auto it = std::ranges::find(kSocketSettings, key, &Setting::key); it != kSocketSettings.end())
        return it->apply(ctx, key, value);
    if (auto it = std::ranges::find(kIgnoredSettings, key, &IgnoredSetting::key);
        it != kIgnoredSettings.end()) {
        ctx.unit.notes.push_back(std::format("{}:{}: {}= is accepted but not applied: {}", ctx.unit.fileName,
                                             ctx.line, key, it->why));
        return {};
    }
    // systemd.unit(5): keys prefixed "X-" are extensions that parsers ignore.
    if (key.starts_with("X-"))
        return {};
    if (std::ranges::find(kUnsupportedSettings, key) != kUnsupportedSettings.end())
        return fail(EINVAL, "setting '{}' in [Socket] is not supported by svckit activate", key);
    return fail(EINVAL, "unknown setting '{}' in [Socket]", key);
}

enum class Section { None, Unit, Socket, Install, Extension };

// Applies one logical line (continuations joined). Errors carry no location; the caller adds it.
Result<void> parseLine(ParseContext& ctx, Section& section, std::string_view logical) {
    std::string_view line = trim(logical);
    if (line.empty())
        return {};
    if (line.front() == '[') {
        if (line.size() < 3 || line.back() != ']')
            return fail(EINVAL, "invalid section header '{}'", line);
        std::string_view name = line.substr(1, line.size() - 2);
        if (name == "Unit")
            section = Section::Unit;
        else if (name == "Socket")
            section = Section::Socket;
        else if (name == "Install")
            section = Section::Install;
        else if (name.starts_with("X-"))
            section = Section::Extension;
        else
            return fail(EINVAL, "unknown section '[{}]' (a socket unit has [Unit], [Socket] and [Install])",
                        name);
        return {};
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos)
        return fail(EINVAL, "missing '=' in '{}'", line);
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    if (key.empty())
        return fail(EINVAL, "missing setting name before '=' in '{}'", line);
    switch (section) {
    case Section::None:
        return fail(EINVAL, "'{}=' is outside of any section", key);
    case Section::Socket:
        return applySocketSetting(ctx, key, value);
    case Section::Unit:
    case Section::Install:
    case Section::Extension:
        // svckit activate runs one command; dependencies and installation do not apply to it.
        return {};
    }
    return {};
}

// An odd number of trailing backslashes continues the line; "\\\\" at the end is an escaped backslash.
bool continuesOnNextLine(std::string_view line) {
    size_t backslashes = 0;
    for (auto it = line.rbegin(); it != line.rend() && *it == '\\'; ++it)
        ++backslashes;
    return backslashes % 2 == 1;
}

Result<void> checkUnit(const SocketUnit& unit) {
    if (unit.listeners.empty())
        return fail(EINVAL, "{}: no ListenStream= or ListenSequentialPacket= in [Socket]", unit.fileName);
    if (unit.options.accept && !unit.options.service.empty())
        return fail(EINVAL, "{}: Service= cannot be combined with Accept=yes (systemd refuses such a unit)",
                    unit.fileName);
    if (unit.options.accept && unit.options.maxConnections == 0)
        return fail(EINVAL,
                    "{}: MaxConnections=0 with Accept=yes would refuse every connection (systemd "
                    "refuses such a unit)",
                    unit.fileName);
    return {};
}

} // namespace

Result<bool> parseBoolean(std::string_view text) {
    for (std::string_view yes : {"1", "yes", "y", "true", "t", "on"})
        if (equalsIgnoringCase(text, yes))
            return true;
    for (std::string_view no : {"0", "no", "n", "false", "f", "off"})
        if (equalsIgnoringCase(text, no))
            return false;
    return fail(EINVAL, "invalid boolean '{}'", text);
}

std::string SocketUnit::fdName() const {
    if (!options.fileDescriptorName.empty())
        return options.fileDescriptorName;
    return options.accept ? std::string("connection") : name;
}

SocketSpec SocketUnit::toSocketSpec(const SocketListener& listener) const {
    return SocketSpec{
        .name = fdName(),
        .address = listener.address,
        .type = listener.type,
        .accept = options.accept,
        .passCredentials = options.passCredentials,
        .passPidfd = options.passPidfd,
        .acceptFileDescriptors = options.acceptFileDescriptors,
        .mode = options.socketMode,
        .limits = {.maxConnections = options.maxConnections,
                   .maxConnectionsPerUid = options.maxConnectionsPerSource},
    };
}

std::vector<SocketSpec> SocketUnit::socketSpecs() const {
    std::vector<SocketSpec> specs;
    specs.reserve(listeners.size());
    for (const SocketListener& listener : listeners)
        specs.push_back(toSocketSpec(listener));
    return specs;
}

Result<SocketUnit> parseSocketUnit(std::string_view text, std::string_view fileName,
                                   const ParseOptions& options) {
    auto unitName = unitNameOf(fileName);
    if (!unitName)
        return std::unexpected(unitName.error());
    SocketUnit unit{.fileName = std::string(fileName), .name = unitName->full};
    ParseContext ctx{.unit = unit, .unitName = *unitName, .options = options};
    Section section = Section::None;

    if (text.starts_with("\xEF\xBB\xBF")) // a UTF-8 byte order mark
        text.remove_prefix(3);

    std::string logical;       // the line being assembled from continuation lines
    unsigned logicalStart = 0; // the physical line it started on, which errors name
    bool continuing = false;
    auto finish = [&]() -> Result<void> {
        continuing = false;
        ctx.line = logicalStart;
        auto applied = parseLine(ctx, section, logical);
        if (!applied)
            return std::unexpected(applied.error().withContext(std::format("{}:{}", fileName, logicalStart)));
        return {};
    };

    unsigned lineNumber = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++lineNumber;
        if (line.ends_with('\r'))
            line.remove_suffix(1);

        // Comment lines are skipped even in the middle of a continued line (systemd.syntax(7)).
        std::string_view content = trimLeft(line);
        if (!content.empty() && (content.front() == '#' || content.front() == ';'))
            continue;
        if (!continuing) {
            logical.clear();
            logicalStart = lineNumber;
        }
        logical += line;
        if (continuesOnNextLine(logical)) {
            logical.back() = ' '; // the backslash is replaced by a space
            continuing = true;
            continue;
        }
        if (auto applied = finish(); !applied)
            return std::unexpected(applied.error());
    }
    if (continuing)
        if (auto applied = finish(); !applied)
            return std::unexpected(applied.error());

    if (auto checked = checkUnit(unit); !checked)
        return std::unexpected(checked.error());
    return unit;
}

Result<SocketUnit> loadSocketUnit(const std::string& path, const ParseOptions& options) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd)
        return failErrno("Failed to open '{}'", path);
    std::string text;
    std::array<char, 4096> buffer{};
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return failErrno("Failed to read '{}'", path);
        }
        if (n == 0)
            break;
        text.append(buffer.data(), static_cast<size_t>(n));
    }
    return parseSocketUnit(text, path, options);
}

} // namespace svckit::tool
