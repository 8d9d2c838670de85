// Writing a service's .socket and .service units from its ServiceSpec: the one declaration the binary also
// checks its activation against, so the units cannot drift from the code. In bus mode (ServiceSpec::bus) also
// the D-Bus activation file and the bus policy file (docs/dbus-bus.md).
#include "base/private.hpp"
#include "service/spec_names.hpp"

#include <svckit/service.hpp>

#include <svckit/internal/fd_limits.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <format>
#include <fstream>
#include <string_view>
#include <sys/stat.h>
#include <utility>
#include <vector>

namespace svckit {

namespace {

std::string_view yesNo(bool value) {
    return value ? "yes" : "no";
}

std::string header(const ServiceSpec& spec) {
    return std::format("# Generated from the ServiceSpec of {} (`{} --print-units`); do not edit.\n",
                       spec.name, spec.name);
}

// The .socket unit's name: the first Accept=no socket is NAME.socket; any other socket NAME-SOCKET.socket.
std::string socketUnitName(const ServiceSpec& spec, const SocketSpec& socket, bool first) {
    if (first && !socket.accept)
        return spec.name + ".socket";
    return std::format("{}-{}.socket", spec.name, socket.name);
}

bool onBus(const ServiceSpec& spec) {
    return !spec.bus.name.empty();
}

// An exit-on-idle service is started again by the first caller after every quiet spell: under bursty callers
// systemd's default start limit (5 starts in 10 s) would fail it, then its sockets, resetting the callers
// waiting in their queues. Each run of such a service lasts at least exitOnIdle, so in 10 s it cannot be
// started more than 10 s / exitOnIdle + 1 times: the burst allows that many, plus systemd's own 5 for
// failures. A service that fails at once (a socket it refuses, with a caller left in the queue that triggers
// it again) is still stopped by the limit, as systemd would stop it, rather than started again forever.
std::string startLimitLines(const ServiceSpec& spec) {
    if (spec.exitOnIdle.count() <= 0)
        return {};
    constexpr std::chrono::milliseconds interval = std::chrono::seconds(10);
    constexpr unsigned systemdBurst = 5;
    auto runs = static_cast<unsigned long long>(interval / spec.exitOnIdle) + 1;
    return std::format("StartLimitIntervalSec={}s\nStartLimitBurst={}\n",
                       std::chrono::duration_cast<std::chrono::seconds>(interval).count(),
                       runs + systemdBurst);
}

// Who the service runs as (Hardening::user): empty means a dynamic user, or the bus owner in bus mode (the
// one user the bus policy lets own the name). "root" (or an empty bus owner) gives no User= line.
std::string runAs(const ServiceSpec& spec) {
    if (!spec.hardening.user.empty())
        return spec.hardening.user;
    if (onBus(spec))
        return spec.bus.owner.empty() ? "root" : spec.bus.owner;
    return spec.hardening.enabled ? "" : "root";
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& w : words)
        out += (out.empty() ? "" : " ") + w;
    return out;
}

// The sandbox (docs/security.md has a line per setting: why, and what it costs). Each is a default the spec
// changes through Hardening, or overrides with a later line in Hardening::extraServiceLines.
std::string sandboxLines(const ServiceSpec& spec, const std::string& user) {
    const Hardening& h = spec.hardening;
    std::vector<std::string> capabilities = h.capabilities;
    if (h.peerProcesses == PeerProcesses::Readable &&
        std::ranges::find(capabilities, "CAP_SYS_PTRACE") == capabilities.end())
        capabilities.emplace_back("CAP_SYS_PTRACE"); // /proc/PID/exe of another user's process
    std::string s;
    if (user.empty())
        s += "DynamicUser=yes\n";
    s += std::format("CapabilityBoundingSet={}\n", joined(capabilities));
    if (user != "root" && !capabilities.empty())
        s += std::format("AmbientCapabilities={}\n", joined(capabilities));
    s += "NoNewPrivileges=yes\n"
         "ProtectSystem=strict\n"
         "ProtectHome=yes\n"
         "PrivateTmp=yes\n"
         "PrivateDevices=yes\n"
         // Sockets systemd passes and AF_UNIX paths (the system bus) still work in a network namespace.
         "PrivateNetwork=yes\n"
         "IPAddressDeny=any\n";
    // hidepid=invisible lets a process with CAP_SYS_PTRACE see every process: Readable keeps it.
    s += std::format("ProtectProc={}\n", h.peerProcesses == PeerProcesses::Visible ? "default" : "invisible");
    s += "ProcSubset=pid\n"
         "ProtectClock=yes\n"
         "ProtectHostname=yes\n"
         "ProtectKernelTunables=yes\n"
         "ProtectKernelModules=yes\n"
         "ProtectKernelLogs=yes\n"
         "ProtectControlGroups=yes\n"
         "RestrictAddressFamilies=AF_UNIX\n"
         "RestrictNamespaces=yes\n"
         "RestrictRealtime=yes\n"
         "RestrictSUIDSGID=yes\n"
         "LockPersonality=yes\n"
         "MemoryDenyWriteExecute=yes\n"
         "RemoveIPC=yes\n"
         "UMask=0077\n"
         "SystemCallArchitectures=native\n"
         "SystemCallFilter=@system-service\n"
         "SystemCallFilter=~@privileged @resources\n"
         "SystemCallErrorNumber=EPERM\n";
    return s;
}

// `main`: the service of the Accept=no sockets, holding their connections (an Accept=yes instance has one),
// and of the bus name. It stays Type=notify on the bus: READY=1 comes after the name is owned (and after
// every socket is served), so systemd's readiness is no earlier than Type=dbus's, and one lifecycle (STATUS=,
// WATCHDOG=, STOPPING=) serves every kind of service. BusName= keeps it bus-activatable.
std::string serviceSection(const ServiceSpec& spec, bool main) {
    std::string s = "[Service]\nType=notify\n";
    std::string user = runAs(spec);
    if (main && onBus(spec))
        s += std::format("BusName={}\n", spec.bus.name);
    if (!user.empty() && user != "root")
        s += std::format("User={}\n", user);
    std::string exe = spec.executable.empty() ? "/usr/bin/" + spec.name : spec.executable;
    s += std::format("ExecStart={}\n", exe);
    s += "NotifyAccess=main\n";
    if (spec.watchdog.count() > 0)
        s += std::format("WatchdogSec={}ms\n", spec.watchdog.count());
    if (main)
        s += limitNofileLine(spec); // the fds its connection caps need, when more than the default 1024
    if (spec.hardening.enabled)
        s += sandboxLines(spec, user);
    for (const std::string& line : spec.hardening.extraServiceLines)
        s += line + "\n";
    return s;
}

std::string unitSection(const ServiceSpec& spec, std::string_view suffix) {
    std::string s = std::format("[Unit]\nDescription={}{}\n", spec.description, suffix);
    if (!spec.documentation.empty())
        s += std::format("Documentation={}\n", spec.documentation);
    return s;
}

// The D-Bus activation file: the bus daemon asks systemd to start the unit (SystemdService=) when a message
// is sent to the name and nobody owns it. Exec=/bin/false: never started by the daemon itself. It names the
// unit itself, not its dbus-NAME.service alias: installing is enough, as for a static unit (the alias exists
// once the unit is enabled, for those who address bus services that way).
UnitFile activationFile(const ServiceSpec& spec) {
    bool system = spec.bus.bus == BusType::System;
    std::string text = header(spec);
    text += std::format("[D-BUS Service]\nName={}\nExec=/bin/false\n", spec.bus.name);
    if (system) // required on the system bus; the session bus runs everything as its own user
        text += std::format("User={}\n", spec.bus.owner.empty() ? "root" : spec.bus.owner);
    text += std::format("SystemdService={}.service\n", spec.name);
    return {.name = spec.bus.name + ".service",
            .text = std::move(text),
            .directory = system ? "dbus-1/system-services" : "dbus-1/services"};
}

std::string xmlEscape(std::string_view value) {
    std::string out;
    for (char c : value) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

// The <policy> element a rule belongs to: context="default" for anyone, else user= or group=.
std::string subjectOf(const BusAccess& rule) {
    if (!rule.user.empty() && rule.user != "*")
        return std::format("user=\"{}\"", xmlEscape(rule.user));
    if (!rule.group.empty())
        return std::format("group=\"{}\"", xmlEscape(rule.group));
    return "context=\"default\"";
}

// The bus policy file (system bus). dbus-daemon applies context="default", then group=, then user= policies,
// and inside each the later rule wins; every rule here is about the name alone (send_destination), so it
// grants or denies nothing else on the bus.
//   - the owner may own the name and call everything on it;
//   - anyone may call the standard read-only interfaces (Introspectable, Peer, Properties.Get/GetAll), as
//     systemd's own services allow: what an object exposes that way is guarded by its Policy in the service;
//   - each BusAccess rule, in order, allows or denies method calls to the name (one interface or all);
//     a subject allowed anything may also call Properties.Set (which interface it sets is an argument the bus
//     cannot see: the object's Policy decides);
//   - everything else is denied by the system bus's own default policy.
UnitFile policyFile(const ServiceSpec& spec) {
    std::string name = xmlEscape(spec.bus.name);
    std::string destination = std::format("send_destination=\"{}\"", name);
    std::string owner = xmlEscape(spec.bus.owner.empty() ? "root" : spec.bus.owner);
    // The rules of each subject, in the order subjects first appear (the default context first).
    std::vector<std::pair<std::string, std::string>> policies{{"context=\"default\"", ""}};
    auto rulesOf = [&policies](const std::string& subject) -> std::string& {
        for (auto& [s, rules] : policies)
            if (s == subject)
                return rules;
        return policies.emplace_back(subject, "").second;
    };
    for (std::string_view standard : {"org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer"})
        rulesOf("context=\"default\"") +=
            std::format("    <allow {} send_interface=\"{}\"/>\n", destination, standard);
    for (std::string_view member : {"Get", "GetAll"})
        rulesOf("context=\"default\"") += std::format(
            "    <allow {} send_interface=\"org.freedesktop.DBus.Properties\" send_member=\"{}\"/>\n",
            destination, member);
    for (const BusAccess& rule : spec.bus.access) {
        std::string& rules = rulesOf(subjectOf(rule));
        std::string interface =
            rule.interface.empty() ? "" : std::format(" send_interface=\"{}\"", xmlEscape(rule.interface));
        rules += std::format("    <{} {}{} send_type=\"method_call\"/>\n", rule.allow ? "allow" : "deny",
                             destination, interface);
        if (rule.allow && !rule.interface.empty())
            rules += std::format(
                "    <allow {} send_interface=\"org.freedesktop.DBus.Properties\" send_member=\"Set\"/>\n",
                destination);
    }

    std::string text = "<?xml version=\"1.0\"?>\n"
                       "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
                       "        \"https://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n";
    // "--" may not appear inside an XML comment (dbus-daemon refuses the file), hence no "--print-units"
    // here.
    std::string generated = xmlEscape(spec.name);
    for (size_t dash = generated.find("--"); dash != std::string::npos; dash = generated.find("--", dash))
        generated.replace(dash, 2, "- -");
    text += std::format(
        "<!-- Generated from the ServiceSpec of {} (its print-units option); do not edit. -->\n", generated);
    text += "<busconfig>\n";
    text += std::format("  <policy user=\"{}\">\n    <allow own=\"{}\"/>\n    <allow {}/>\n  </policy>\n",
                        owner, name, destination);
    for (const auto& [subject, rules] : policies)
        text += std::format("  <policy {}>\n{}  </policy>\n", subject, rules);
    text += "</busconfig>\n";
    return {.name = spec.bus.name + ".conf", .text = std::move(text), .directory = "dbus-1/system.d"};
}

} // namespace

std::vector<UnitFile> generateUnits(const ServiceSpec& spec) {
    return generateUnits(spec, UnitOptions{});
}

std::vector<UnitFile> generateUnits(const ServiceSpec& spec, const UnitOptions& options) {
    std::vector<UnitFile> units;
    std::vector<std::string> mainSockets;
    bool first = true;
    // The varlink registry (/run/varlink/registry/INTERFACE, systemd >= 260) names one socket per interface:
    // the first varlink socket of the spec.
    const SocketSpec* registered = nullptr;
    for (const SocketSpec& socket : spec.sockets)
        if (socket.protocol == Protocol::Varlink && socket.address.starts_with('/')) {
            registered = &socket;
            break;
        }
    for (const SocketSpec& socket : spec.sockets) {
        std::string name = socketUnitName(spec, socket, first);
        if (!socket.accept)
            first = false;
        std::string text = header(spec);
        text += unitSection(spec, std::format(" (socket '{}')", socket.name));
        text += "\n[Socket]\n";
        text += std::format("{}={}\n",
                            socket.type == SocketType::Stream ? "ListenStream" : "ListenSequentialPacket",
                            socket.address);
        text += std::format("FileDescriptorName={}\n", socket.name);
        text += std::format("SocketMode={:04o}\n", socket.mode);
        if (!socket.user.empty())
            text += std::format("SocketUser={}\n", socket.user);
        if (!socket.group.empty())
            text += std::format("SocketGroup={}\n", socket.group);
        if (socket.accept)
            text += "Accept=yes\n";
        else if (name != spec.name + ".socket")
            text += std::format("Service={}.service\n", spec.name);
        if (socket.passCredentials)
            text += "PassCredentials=yes\n";
        text += std::format("PassPIDFD={}\n", yesNo(socket.passPidfd));
        text += std::format("AcceptFileDescriptors={}\n", yesNo(socket.acceptFileDescriptors));
        text += std::format("MaxConnections={}\n", socket.limits.maxConnections);
        if (socket.limits.maxConnectionsPerUid != 0)
            text += std::format("MaxConnectionsPerSource={}\n", socket.limits.maxConnectionsPerUid);
        if (&socket == registered)
            for (const std::string& interface : options.varlinkInterfaces)
                text += std::format("Symlinks=/run/varlink/registry/{}\n", interface);
        text += "\n[Install]\nWantedBy=sockets.target\n";
        units.push_back({.name = name, .text = std::move(text)});
        if (!socket.accept)
            mainSockets.push_back(name);
        else {
            std::string instance = header(spec);
            instance += unitSection(spec, std::format(" (connection on '{}')", socket.name));
            instance += "\n" + serviceSection(spec, false);
            units.push_back(
                {.name = std::format("{}-{}@.service", spec.name, socket.name), .text = std::move(instance)});
        }
    }
    if (!mainSockets.empty() || onBus(spec)) {
        std::string text = header(spec);
        text += unitSection(spec, "");
        std::string list;
        for (const std::string& s : mainSockets)
            list += (list.empty() ? "" : " ") + s;
        if (!list.empty())
            text += std::format("Requires={}\nAfter={}\n", list, list);
        text += startLimitLines(spec);
        text += "\n" + serviceSection(spec, true);
        // As systemd's own bus services: `systemctl enable` adds the dbus-NAME.service alias.
        if (onBus(spec))
            text += std::format("\n[Install]\nAlias=dbus-{}.service\n", spec.bus.name);
        units.push_back({.name = spec.name + ".service", .text = std::move(text)});
    }
    if (onBus(spec)) {
        units.push_back(activationFile(spec));
        // The session bus lets its one user call and own everything: no policy file there.
        if (spec.bus.bus == BusType::System)
            units.push_back(policyFile(spec));
    }
    return units;
}

Result<void> writeUnits(const ServiceSpec& spec, const std::string& directory, const UnitOptions& options) {
    auto makeDirectory = [](const std::string& path) -> Result<void> {
        if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST)
            return failErrno("Failed to create '{}'", path);
        return {};
    };
    if (auto ok = makeDirectory(directory); !ok)
        return ok;
    for (const UnitFile& unit : generateUnits(spec, options)) {
        // "dbus-1/system.d": each level in turn.
        for (size_t slash = 0; !unit.directory.empty() && slash != std::string::npos;) {
            slash = unit.directory.find('/', slash + 1);
            if (auto ok = makeDirectory(directory + "/" + unit.directory.substr(0, slash)); !ok)
                return ok;
        }
        if (auto ok = detail::writeUnitFile(directory + "/" + unit.path(), unit.text); !ok)
            return ok;
    }
    return {};
}

Result<void> detail::writeUnitFile(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    if (!out)
        return fail(EIO, "Failed to write '{}'", path);
    return {};
}

} // namespace svckit
