#include "base/private.hpp"

#include <svckit/internal/fd_limits.hpp>

#include <algorithm>
#include <format>
#include <fstream>
#include <sys/resource.h>

namespace svckit {

namespace {

uint64_t fdsPer(Protocol protocol) {
    return protocol == Protocol::DBus ? fdsPerDBusConnection : fdsPerConnection;
}

// The fds of the connections the caps allow at most, or nullopt when one is unlimited.
std::optional<uint64_t> connectionFds(const ServiceSpec& spec) {
    uint64_t fds = 0;
    bool varlink = false;
    for (const SocketSpec& socket : spec.sockets) {
        if (socket.accept)
            continue;
        if (socket.protocol == Protocol::Varlink) {
            varlink = true; // one server, its caps over all its sockets
            continue;
        }
        if (socket.limits.maxConnections == 0)
            return std::nullopt;
        fds += fdsPer(socket.protocol) * socket.limits.maxConnections;
    }
    if (varlink)
        fds += fdsPerConnection * spec.varlink.maxConnections;
    return fds;
}

uint64_t overhead(const ServiceSpec& spec) {
    return reservedFds + spec.sockets.size();
}

} // namespace

std::optional<uint64_t> fdsNeeded(const ServiceSpec& spec) {
    auto fds = connectionFds(spec);
    if (!fds)
        return std::nullopt;
    return overhead(spec) + *fds;
}

std::string limitNofileLine(const ServiceSpec& spec) {
    auto needed = fdsNeeded(spec);
    if (!needed || *needed <= systemdDefaultSoftFdLimit)
        return {};
    return std::format("LimitNOFILE={}\n", *needed);
}

std::vector<ClampedCap> clampCapsToFdLimit(ServiceSpec& spec, uint64_t limit) {
    std::vector<ClampedCap> clamped;
    auto fds = connectionFds(spec);
    if (!fds || *fds == 0 || overhead(spec) + *fds <= limit)
        return clamped;
    // Every cap scaled by the same factor: what the limit leaves for connections over what they need.
    uint64_t room = limit > overhead(spec) ? limit - overhead(spec) : 0;
    auto scaled = [&](unsigned cap) {
        return static_cast<unsigned>(std::max<uint64_t>(1, cap * room / *fds));
    };
    auto lower = [&](unsigned& cap, unsigned to, std::string what) {
        if (cap == 0 || cap <= to)
            return;
        clamped.push_back({.what = std::move(what), .from = cap, .to = to});
        cap = to;
    };
    bool varlink = std::ranges::any_of(
        spec.sockets, [](const SocketSpec& s) { return !s.accept && s.protocol == Protocol::Varlink; });
    if (varlink) {
        unsigned to = scaled(spec.varlink.maxConnections);
        lower(spec.varlink.maxConnections, to, "varlink maxConnections");
        lower(spec.varlink.maxConnectionsPerUid, to, "varlink maxConnectionsPerUid");
    }
    for (SocketSpec& socket : spec.sockets) {
        if (socket.accept || socket.protocol == Protocol::Varlink)
            continue;
        unsigned to = scaled(socket.limits.maxConnections);
        lower(socket.limits.maxConnections, to, std::format("socket '{}' maxConnections", socket.name));
    }
    return clamped;
}

std::string describeClamped(uint64_t limit, std::optional<uint64_t> needed,
                            const std::vector<ClampedCap>& clamped) {
    std::string caps;
    for (const ClampedCap& c : clamped)
        caps += std::format("{}{} {} -> {}", caps.empty() ? "" : ", ", c.what, c.from, c.to);
    return std::format(
        "RLIMIT_NOFILE is {}, too low for the connection caps of the spec ({} fds): lowered {}; "
        "raise LimitNOFILE= to {} (as the generated unit asks) to keep them",
        limit, needed ? std::to_string(*needed) : "unbounded", caps,
        needed ? std::to_string(*needed) : "what they need");
}

Result<uint64_t> raiseFdLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) < 0)
        return failErrno("Failed to read RLIMIT_NOFILE");
    rlim_t target = limit.rlim_max;
    if (target == RLIM_INFINITY) {
        // The kernel refuses more than fs.nr_open.
        std::ifstream in("/proc/sys/fs/nr_open");
        uint64_t nrOpen = 0;
        target = (in >> nrOpen) && nrOpen > 0 ? static_cast<rlim_t>(nrOpen) : 1024 * 1024;
    }
    if (limit.rlim_cur >= target)
        return static_cast<uint64_t>(limit.rlim_cur);
    rlimit raised{.rlim_cur = target, .rlim_max = limit.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &raised) < 0)
        return failErrno("Failed to raise RLIMIT_NOFILE from {} to {}", limit.rlim_cur, target);
    return static_cast<uint64_t>(target);
}

} // namespace svckit
