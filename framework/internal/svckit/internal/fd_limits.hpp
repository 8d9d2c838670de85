// svckit/internal/fd_limits.hpp — the fds a service's connection caps need, against RLIMIT_NOFILE. Never
// installed.
//
// Every connection a service holds costs fds: its socket and the caller's pidfd (identityOfPeer). With
// systemd's default soft limit of 1024 a service runs out of fds long before the caps of its spec (varlink:
// 4096 connections, 1024 per UID), and a single UID can then fill the table with idle connections. So, as
// systemd's daemons do (rlimit_nofile_bump) and the Go runtime does, Service::run raises the soft limit to
// the hard one; where even that is short of what the caps need, the caps are lowered to what fits (and the
// service says so once), and the generated .service unit asks for LimitNOFILE= when the caps need more
// than the default soft limit. Nothing in svckit uses select(): FD_SETSIZE does not bound the fd numbers.
#pragma once

#include <svckit/error.hpp>
#include <svckit/service.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace svckit {

inline constexpr uint64_t fdsPerConnection = 2; // the connection's socket and its caller's pidfd
// A peer-to-peer D-Bus connection (Protocol::DBus) also holds sd-bus's own pidfd of the peer (SO_PEERPIDFD,
// taken when its handshake starts) and the two eventfds of its sdbus-c++ connection (wake-up and loop exit,
// made whether or not its loop is used): 5 in all, as counted in tests/integration/dbus_hostile_peers_test.
inline constexpr uint64_t fdsPerDBusConnection = fdsPerConnection + 3;
// stdio, the loop's own fds (epoll, signalfd, timers, the batch's epoll), the journal and notify sockets, the
// closer of received fds, and the service's own files
inline constexpr uint64_t reservedFds = 64;
inline constexpr uint64_t systemdDefaultSoftFdLimit = 1024;

// The fds one serving process needs at most for the connection caps of `spec` (its Accept=no sockets: an
// Accept=yes instance has one connection), with the reserve and the listening sockets; nullopt when a cap
// is unlimited (a raw socket with maxConnections 0).
[[nodiscard]] std::optional<uint64_t> fdsNeeded(const ServiceSpec& spec);

// "LimitNOFILE=N\n" for the .service unit when the caps need more than systemd's default soft limit, else
// "".
[[nodiscard]] std::string limitNofileLine(const ServiceSpec& spec);

struct ClampedCap {
    std::string what; // "varlink maxConnections", "socket 'raw' maxConnections", ...
    unsigned from;
    unsigned to;
};

// Lowers the caps of `spec` so that their connections fit in `limit` fds (each cap scaled by the same
// factor, at least 1); returns the caps lowered, none when they fit.
std::vector<ClampedCap> clampCapsToFdLimit(ServiceSpec& spec, uint64_t limit);

// One line for the log: which caps were lowered, and LimitNOFILE= for the caps as declared (`needed`:
// fdsNeeded() before clamping).
[[nodiscard]] std::string describeClamped(uint64_t limit, std::optional<uint64_t> needed,
                                          const std::vector<ClampedCap>& clamped);

// Raises the soft RLIMIT_NOFILE to the hard limit (to fs.nr_open when the hard limit is infinite); returns
// the soft limit in force afterwards.
Result<uint64_t> raiseFdLimit();

} // namespace svckit
