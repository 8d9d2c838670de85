// svckit/identity.hpp — who is calling: the peer of a connection or the sender of one message, and facts
// about that process read through its pidfd so that a recycled PID is never reported as the caller.
//
// A PeerIdentity is taken once per connection (SO_PEERCRED, SO_PEERPIDFD, SO_PEERGROUPS, SO_PEERSEC) or per
// message (SCM_CREDENTIALS, SCM_PIDFD). Process facts (readProcessFacts) are read by PID and then
// re-validated against the pidfd: if the process has exited by then, the read is discarded and ESRCH
// returned.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>
#include <svckit/message.hpp>
#include <svckit/unique_fd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace svckit {

struct PeerIdentity {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    pid_t pid = 0;
    std::vector<gid_t> groups; // supplementary groups (SO_PEERGROUPS; connections only)
    UniqueFd pidfd;            // the caller's pidfd; invalid when the kernel or the sender gave none
    std::optional<std::string> securityLabel; // SO_PEERSEC (an AppArmor or SELinux label); none without one

    // Whether `pid` is pinned by `pidfd`: the kernel (SO_PEERPIDFD, SCM_PIDFD) or the bus daemon (ProcessFD)
    // gave a pidfd of the caller, so process facts read through it are the caller's even if it exits and its
    // pid is reused. False: the pid alone (e.g. a bus daemon without ProcessFD), which may name another
    // process by the time it is used (docs/identity.md).
    [[nodiscard]] bool pinned() const noexcept { return static_cast<bool>(pidfd); }
};

// The peer of a connected AF_UNIX socket. The pidfd comes from SO_PEERPIDFD (Linux >= 6.5).
[[nodiscard]] SVCKIT_EXPORT Result<PeerIdentity> identityOfPeer(int connectedFd);

// The sender of one received message (SCM_CREDENTIALS, needs PassCredentials=yes; SCM_PIDFD, needs
// PassPIDFD=yes). Takes the message's pidfd. EPROTO when the message carried no credentials.
[[nodiscard]] SVCKIT_EXPORT Result<PeerIdentity> identityOfMessage(ReceivedMessage& message);

// Facts about a process, all read through (and checked against) its pidfd.
struct ProcessFacts {
    pid_t pid = 0;                    // the pid the pidfd refers to now
    std::optional<uid_t> uid;         // real uid (PIDFD_GET_INFO, Linux >= 6.13, or /proc status)
    std::optional<gid_t> gid;         // real gid
    std::optional<uid_t> euid;        // effective uid
    std::optional<gid_t> egid;        // effective gid
    std::optional<uint64_t> cgroupId; // PIDFD_GET_INFO_CGROUPID
    // Each of these is absent when the process does not have it or it cannot be read:
    std::optional<std::string> cgroup; // cgroup v2 path, e.g. "/system.slice/foo.service" (none without v2)
    std::optional<std::string> unit;   // the systemd unit of that cgroup ("foo.service", "session-2.scope")
    std::optional<std::string> exe;    // resolved /proc/PID/exe (none: a kernel thread, or no permission)
    std::optional<std::string> comm;   // /proc/PID/comm
};

// The pid a pidfd refers to. ESRCH when the process has exited (it may still be a zombie: see isAlive).
[[nodiscard]] SVCKIT_EXPORT Result<pid_t> pidOfPidfd(int pidfd);
// Whether the process has not exited yet (a zombie counts as exited).
[[nodiscard]] SVCKIT_EXPORT Result<bool> isAlive(int pidfd);
// Reads the facts; ESRCH ("the process has exited") when the process is gone before or during the read, so a
// reused PID's facts are never returned.
[[nodiscard]] SVCKIT_EXPORT Result<ProcessFacts> readProcessFacts(int pidfd);

} // namespace svckit
