// Writing a service's .socket and .service units from its ServiceSpec: the one declaration the binary also
// checks its activation against, so the units cannot drift from the code.
#include "base/private.hpp"

#include <svckit/service.hpp>

#include <svckit/internal/fd_limits.hpp>

#include <cerrno>
#include <format>
#include <fstream>
#include <sys/stat.h>

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

// `main`: the service of the Accept=no sockets, holding their connections (an Accept=yes instance has one).
std::string serviceSection(const ServiceSpec& spec, bool main) {
    std::string s = "[Service]\nType=notify\n";
    std::string exe = spec.executable.empty() ? "/usr/bin/" + spec.name : spec.executable;
    s += std::format("ExecStart={}\n", exe);
    s += "NotifyAccess=main\n";
    if (spec.watchdog.count() > 0)
        s += std::format("WatchdogSec={}ms\n", spec.watchdog.count());
    if (main)
        s += limitNofileLine(spec); // the fds its connection caps need, when more than the default 1024
    if (spec.hardening.enabled)
        s += "NoNewPrivileges=yes\n"
             "ProtectSystem=strict\n"
             "ProtectHome=read-only\n"
             "PrivateTmp=yes\n"
             "PrivateDevices=yes\n"
             "ProtectKernelTunables=yes\n"
             "ProtectKernelModules=yes\n"
             "ProtectControlGroups=yes\n"
             "RestrictAddressFamilies=AF_UNIX\n"
             "RestrictNamespaces=yes\n"
             "RestrictRealtime=yes\n"
             "RestrictSUIDSGID=yes\n"
             "LockPersonality=yes\n"
             "SystemCallArchitectures=native\n";
    return s;
}

std::string unitSection(const ServiceSpec& spec, std::string_view suffix) {
    std::string s = std::format("[Unit]\nDescription={}{}\n", spec.description, suffix);
    if (!spec.documentation.empty())
        s += std::format("Documentation={}\n", spec.documentation);
    return s;
}

} // namespace

std::vector<UnitFile> generateUnits(const ServiceSpec& spec) {
    std::vector<UnitFile> units;
    std::vector<std::string> mainSockets;
    bool first = true;
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
    if (!mainSockets.empty()) {
        std::string text = header(spec);
        text += unitSection(spec, "");
        std::string list;
        for (const std::string& s : mainSockets)
            list += (list.empty() ? "" : " ") + s;
        text += std::format("Requires={}\nAfter={}\n", list, list);
        text += "\n" + serviceSection(spec, true);
        units.push_back({.name = spec.name + ".service", .text = std::move(text)});
    }
    return units;
}

Result<void> writeUnits(const ServiceSpec& spec, const std::string& directory) {
    if (::mkdir(directory.c_str(), 0755) < 0 && errno != EEXIST)
        return failErrno("Failed to create '{}'", directory);
    for (const UnitFile& unit : generateUnits(spec)) {
        std::string path = directory + "/" + unit.name;
        std::ofstream out(path, std::ios::trunc);
        out << unit.text;
        out.close();
        if (!out)
            return fail(EIO, "Failed to write '{}'", path);
    }
    return {};
}

} // namespace svckit
