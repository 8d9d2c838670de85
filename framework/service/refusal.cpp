// A service's refusals to start: the repair advice of a socket verification refusal (naming the running
// systemd's version and the units to change), $SVCKIT_VERIFY, and sending a refusal to the journal with its
// MESSAGE_ID and SVCKIT_* fields.
#include "base/private.hpp"

#include <svckit/internal/refusal.hpp>

#include <svckit/internal/log_target.hpp>

#include <svckit/log.hpp>
#include <svckit/varlink_client.hpp>

#include <systemd/sd-bus.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-login.h>

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <format>
#include <memory>

namespace svckit::internal {

namespace {

// Kept in docs/service.md ("Refusals in the journal"); never change one: administrators filter on them.
constexpr std::string_view socketVerificationId = "6471a2ade41e40298996227b37d09b45";
constexpr std::string_view declarationId = "92592c93ba2c440a9f57b50b11ef03f1";
constexpr std::string_view environmentId = "3d3b8962c8634ddb826765c5bd7cfa35";

constexpr std::string_view repairLine = "Environment=SVCKIT_VERIFY=repair";

thread_local std::optional<Refusal> recorded;

struct BusUnref {
    void operator()(sd_bus* bus) const noexcept { sd_bus_flush_close_unref(bus); }
};

// "a-b@x.service" -> "a-b@.service": a drop-in for every instance goes on the template.
std::string templateOf(std::string unit) {
    auto at = unit.find('@');
    auto dot = unit.rfind('.');
    if (at != std::string::npos && dot != std::string::npos && dot > at)
        unit.erase(at + 1, dot - at - 1);
    return unit;
}

std::string socketBlock(const SocketRepair& socket) {
    std::string block = std::format("run 'systemctl edit {}' and add\n[Socket]\n", socket.socketUnit);
    for (const std::string& setting : socket.settings)
        block += setting + "\n";
    return block;
}

// "run 'systemctl edit A.socket' and add [Socket] ...; then run 'systemctl restart A.socket'": systemd
// applies the options when it creates the socket, so the socket unit must be restarted.
std::string socketEdits(const RepairAdvice& advice) {
    std::string text;
    std::string units;
    for (const SocketRepair& socket : advice.sockets) {
        text += socketBlock(socket);
        units += (units.empty() ? "" : " ") + socket.socketUnit;
    }
    return text + std::format("then run 'systemctl restart {}'.", units);
}

std::string repairModeEdit(const RepairAdvice& advice) {
    return std::format(
        "run 'systemctl edit {}' and add\n[Service]\n{}\nThe service then sets the options itself "
        "with setsockopt() and logs a warning{}.",
        advice.serviceUnit, repairLine,
        advice.repairModeFixesAll ? "" : "; the other mismatches above still need the unit changed");
}

// "PassPIDFD=, AcceptFileDescriptors=": the settings systemd < 258 does not know.
std::string newSettings(const RepairAdvice& advice) {
    std::vector<std::string> names;
    for (const SocketRepair& socket : advice.sockets) {
        if (!socket.needsSystemd258)
            continue;
        for (const std::string& setting : socket.settings) {
            std::string name = setting.substr(0, setting.find('=') + 1);
            if (name != "PassCredentials=" && std::ranges::find(names, name) == names.end())
                names.push_back(name);
        }
    }
    std::string list;
    for (const std::string& name : names)
        list += (list.empty() ? "" : " and ") + name;
    return list;
}

} // namespace

std::string_view messageId(RefusalKind kind) noexcept {
    switch (kind) {
    case RefusalKind::SocketVerification:
        return socketVerificationId;
    case RefusalKind::Declaration:
        return declarationId;
    case RefusalKind::Environment:
        return environmentId;
    }
    return declarationId;
}

Result<std::optional<VerifyMode>> verifyModeFromEnvironment(const char* value) {
    if (!value || !*value)
        return std::nullopt;
    std::string_view mode(value);
    if (mode == "strict")
        return VerifyMode::Strict;
    if (mode == "repair")
        return VerifyMode::Repair;
    return fail(
        EINVAL,
        "SVCKIT_VERIFY='{}' is not a verification mode: set it to 'strict' (refuse sockets that lack the "
        "unit's options) or 'repair' (set them and warn), or leave it unset for the service's default",
        mode);
}

std::optional<unsigned> parseSystemdVersion(std::string_view version) noexcept {
    unsigned number = 0;
    auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), number);
    if (ec != std::errc() || end == version.data())
        return std::nullopt;
    return number;
}

namespace {

// systemd's own varlink interface (io.systemd.Manager.Describe, "runtime": {"Version": "262-1"}): reachable
// from any sandbox that can reach /run, a DynamicUser= service's included, which the system bus does not
// let in (dbus-daemon drops a dynamic user's connection after Hello).
Result<unsigned> versionOverVarlink(std::chrono::milliseconds timeout) {
    auto client = varlink::Client::connect("/run/systemd/io.systemd.Manager");
    if (!client)
        return std::unexpected(client.error());
    if (auto sent = client->send("io.systemd.Manager.Describe", "{}"); !sent)
        return std::unexpected(sent.error());
    auto reply = client->receive(timeout);
    if (!reply)
        return std::unexpected(reply.error());
    if (auto error = reply->error())
        return fail(EPROTO, "io.systemd.Manager.Describe failed: {}", *error);
    auto version = reply->parameters()["runtime"]["Version"].string();
    auto number = parseSystemdVersion(version.value_or(""));
    if (!number)
        return fail(EBADMSG, "io.systemd.Manager.Describe reports the version '{}', which has no number",
                    version.value_or(""));
    return *number;
}

// The Version property of org.freedesktop.systemd1.Manager on the system bus: older managers.
Result<unsigned> versionOverBus(std::chrono::milliseconds timeout) {
    sd_bus* raw = nullptr;
    if (int r = sd_bus_open_system(&raw); r < 0)
        return std::unexpected(Error::fromErrno(-r, "Failed to connect to the system bus"));
    std::unique_ptr<sd_bus, BusUnref> bus(raw);
    auto usec = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(timeout).count());
    (void)sd_bus_set_method_call_timeout(bus.get(), usec);
    sd_bus_error error{}; // SD_BUS_ERROR_NULL is a C compound literal (clang: -Wc99-extensions)
    char* version = nullptr;
    int r = sd_bus_get_property_string(bus.get(), "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "Version", &error, &version);
    std::unique_ptr<char, decltype(&std::free)> owned(version, &std::free);
    if (r < 0) {
        // sd-bus's message is often strerror() itself, which fromErrno() adds anyway.
        bool own = error.message != nullptr && std::string_view(error.message) != std::strerror(-r);
        Error failed = Error::fromErrno(-r, std::format("Failed to read the service manager's version{}{}",
                                                        own ? ": " : "", own ? error.message : ""));
        sd_bus_error_free(&error);
        return std::unexpected(std::move(failed));
    }
    auto number = parseSystemdVersion(version ? version : "");
    if (!number)
        return fail(EBADMSG, "The service manager reports the version '{}', which has no number",
                    version ? version : "");
    return *number;
}

} // namespace

Result<unsigned> runningSystemdVersion(std::chrono::milliseconds timeout) {
    auto overVarlink = versionOverVarlink(timeout);
    if (overVarlink)
        return overVarlink;
    auto overBus = versionOverBus(timeout);
    if (overBus)
        return overBus;
    return fail(overBus.error().code(), "{}; over varlink: {}", overBus.error().message(),
                overVarlink.error().message());
}

std::string socketUnitName(const ServiceSpec& spec, const SocketSpec& socket) {
    // As generateUnits(): the first Accept=no socket is NAME.socket, every other one NAME-SOCKET.socket.
    bool first = true;
    for (const SocketSpec& s : spec.sockets) {
        bool main = first && !s.accept;
        if (!s.accept)
            first = false;
        if (s.name == socket.name)
            return main ? spec.name + ".socket" : std::format("{}-{}.socket", spec.name, s.name);
    }
    return std::format("{}-{}.socket", spec.name, socket.name);
}

std::string serviceUnitName(const ServiceSpec& spec) {
    // The unit systemd runs this process in, when it is one of this service's: the one to give a drop-in. A
    // process started by hand inside some other unit (a login session, a test runner's service) is not.
    char* unit = nullptr;
    if (sd_pid_get_unit(0, &unit) >= 0 && unit) {
        std::string name = templateOf(unit);
        std::free(unit);
        if (name.starts_with(spec.name) && name.ends_with(".service"))
            return name;
    }
    return spec.name + ".service";
}

RepairAdvice adviceFor(const ServiceSpec& spec, std::span<const ActivationProblem> problems) {
    RepairAdvice advice;
    advice.serviceUnit = serviceUnitName(spec);
    advice.repairModeFixesAll = std::ranges::all_of(
        problems, [](const ActivationProblem& p) { return p.mismatch && p.mismatch->repairable; });
    for (const ActivationProblem& problem : problems) {
        if (!problem.mismatch)
            continue;
        auto socketSpec = std::ranges::find(spec.sockets, problem.socket, &SocketSpec::name);
        if (socketSpec == spec.sockets.end())
            continue;
        std::string setting;
        bool newer = false;
        switch (problem.mismatch->kind) {
        case Mismatch::Kind::PassCredentials:
            setting = "PassCredentials=yes";
            break;
        case Mismatch::Kind::PassPidfd:
            setting = "PassPIDFD=yes";
            newer = true;
            break;
        case Mismatch::Kind::AcceptFileDescriptors:
            setting =
                std::format("AcceptFileDescriptors={}", socketSpec->acceptFileDescriptors ? "yes" : "no");
            newer = true;
            break;
        default:
            continue; // family, type, state, address, file mode and owner: their own lines name the setting
        }
        auto entry = std::ranges::find(advice.sockets, problem.socket, &SocketRepair::socket);
        if (entry == advice.sockets.end()) {
            advice.sockets.push_back(
                {.socket = problem.socket, .socketUnit = socketUnitName(spec, *socketSpec)});
            entry = advice.sockets.end() - 1;
        }
        entry->settings.push_back(std::move(setting));
        entry->needsSystemd258 = entry->needsSystemd258 || newer;
    }
    return advice;
}

std::string describeRepair(const RepairAdvice& advice) {
    if (advice.sockets.empty())
        return {};
    bool newer = std::ranges::any_of(advice.sockets, &SocketRepair::needsSystemd258);
    if (!newer)
        return "To fix it, " + socketEdits(advice);
    std::string settings = newSettings(advice);
    if (!advice.systemdVersion)
        return std::format(
            "The running systemd's version is unknown ({}).\n"
            "With systemd >= 258, to fix it, {}\n"
            "With an older systemd, which cannot set {}: update it, or let the service set the "
            "options itself: {}",
            advice.versionUnknownReason.empty() ? "not asked" : advice.versionUnknownReason,
            socketEdits(advice), settings, repairModeEdit(advice));
    if (*advice.systemdVersion >= 258)
        return std::format("The running systemd is version {}, which can set {}. To fix it, {}",
                           *advice.systemdVersion, settings, socketEdits(advice));
    return std::format(
        "The running systemd is version {}, which cannot set {} (systemd >= 258 can), so no unit "
        "setting fixes this here. Update systemd, or let the service set the options itself: {}",
        *advice.systemdVersion, settings, repairModeEdit(advice));
}

Refusal verificationRefusal(const ServiceSpec& spec, std::span<const ActivationProblem> problems) {
    std::optional<Error> error = activationError(problems);
    if (!error)
        error = Error(EINVAL, "Failed to verify the activated sockets");
    RepairAdvice advice = adviceFor(spec, problems);
    bool newer = std::ranges::any_of(advice.sockets, &SocketRepair::needsSystemd258);
    if (newer) {
        // On the refusal path only: a service that starts never asks. Bounded, since a refusal that hangs is
        // worse than one that says the version is unknown.
        auto version = runningSystemdVersion(std::chrono::milliseconds(1000));
        if (version)
            advice.systemdVersion = *version;
        else
            advice.versionUnknownReason = version.error().message();
    }
    std::string message = error->message();
    if (std::string repair = describeRepair(advice); !repair.empty())
        message += "\n" + repair;

    std::vector<std::string> fields{"SVCKIT_SERVICE=" + spec.name};
    std::vector<std::string> sockets;
    for (const ActivationProblem& problem : problems)
        if (std::ranges::find(sockets, problem.socket) == sockets.end())
            sockets.push_back(problem.socket);
    for (const std::string& socket : sockets)
        fields.push_back("SVCKIT_SOCKET=" + socket);
    for (const SocketRepair& socket : advice.sockets)
        fields.push_back("SVCKIT_UNIT=" + socket.socketUnit);
    fields.push_back("SVCKIT_SERVICE_UNIT=" + advice.serviceUnit);
    if (advice.systemdVersion)
        fields.push_back(std::format("SVCKIT_SYSTEMD_VERSION={}", *advice.systemdVersion));
    bool oldSystemd = newer && advice.systemdVersion && *advice.systemdVersion < 258;
    if (!oldSystemd)
        for (const SocketRepair& socket : advice.sockets)
            for (const std::string& setting : socket.settings)
                fields.push_back("SVCKIT_FIX=" + setting);
    if (newer && (!advice.systemdVersion || oldSystemd))
        fields.push_back(std::format("SVCKIT_FIX={}", repairLine));
    return {.kind = RefusalKind::SocketVerification,
            .error = Error(error->code(), std::move(message)),
            .fields = std::move(fields)};
}

void recordRefusal(Refusal refusal) {
    recorded = std::move(refusal);
}

std::optional<Refusal> takeRefusal() {
    return std::exchange(recorded, std::nullopt);
}

std::vector<std::string> journalFields(const Refusal& refusal, std::string_view identifier) {
    std::vector<std::string> fields{
        "MESSAGE=" + refusal.error.message(),
        std::format("MESSAGE_ID={}", messageId(refusal.kind)),
        "PRIORITY=3",
        std::format("ERRNO={}", refusal.error.code()),
        std::format("SYSLOG_IDENTIFIER={}", identifier),
    };
    fields.insert(fields.end(), refusal.fields.begin(), refusal.fields.end());
    return fields;
}

void logRefusal(const Refusal& refusal) {
    if (stderrLogTarget() == LogTarget::Journal) {
        std::vector<std::string> fields = journalFields(refusal, program_invocation_short_name);
        std::vector<iovec> iov;
        iov.reserve(fields.size());
        for (std::string& field : fields)
            iov.push_back({.iov_base = field.data(), .iov_len = field.size()});
        if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0)
            return;
    }
    logError("{}", refusal.error.message());
}

} // namespace svckit::internal
