#include <svckit/identity.hpp>

#include <svckit/internal/linux_socket.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace svckit {
namespace {

// The kernel creates pidfds CLOEXEC (SO_PEERPIDFD, SCM_PIDFD), but a descriptor that leaks into an exec'd
// child would hand it a handle on our caller, so do not rely on it.
Result<void> ensureCloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0)
        return failErrno("Failed to read the flags of descriptor {}", fd);
    if (!(flags & FD_CLOEXEC) && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return failErrno("Failed to set FD_CLOEXEC on descriptor {}", fd);
    return {};
}

// SO_PEERGROUPS; on ERANGE the kernel reports the size it needs, so grow to it and ask again (the peer's
// groups are fixed at connect() time, so this settles at once).
Result<std::vector<gid_t>> peerGroups(int fd) {
    std::vector<gid_t> groups(32);
    for (int attempt = 0; attempt < 8; ++attempt) {
        socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            return groups;
        }
        if (errno == ENOPROTOOPT) // before Linux 4.13: no groups to report
            return std::vector<gid_t>{};
        if (errno != ERANGE)
            return failErrno("Failed to read SO_PEERGROUPS of socket {}", fd);
        size_t needed = len / sizeof(gid_t);
        groups.resize(needed > groups.size() ? needed : groups.size() * 2);
    }
    return fail(ERANGE, "Failed to read SO_PEERGROUPS of socket {}: the group list keeps growing", fd);
}

// SO_PEERSEC: the peer's LSM label. ENOPROTOOPT means no LSM labels sockets: no label, not an error.
Result<std::string> peerSecurityLabel(int fd) {
    std::string label(256, '\0');
    for (int attempt = 0; attempt < 8; ++attempt) {
        socklen_t len = static_cast<socklen_t>(label.size());
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERSEC, label.data(), &len) == 0) {
            label.resize(len);
            // Some LSMs count a terminating NUL in the label.
            while (!label.empty() && label.back() == '\0')
                label.pop_back();
            return label;
        }
        if (errno == ENOPROTOOPT)
            return std::string();
        if (errno != ERANGE)
            return failErrno("Failed to read SO_PEERSEC of socket {}", fd);
        label.resize(len > label.size() ? len : label.size() * 2);
    }
    return fail(ERANGE, "Failed to read SO_PEERSEC of socket {}: the label keeps growing", fd);
}

} // namespace

Result<PeerIdentity> identityOfPeer(int connectedFd) {
    PeerIdentity identity;

    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(connectedFd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return failErrno("Failed to read SO_PEERCRED of socket {}", connectedFd);
    identity.uid = cred.uid;
    identity.gid = cred.gid;
    identity.pid = cred.pid;

    int pidfd = -1;
    len = sizeof pidfd;
    if (::getsockopt(connectedFd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
        identity.pidfd.reset(pidfd);
        if (auto r = ensureCloexec(identity.pidfd.get()); !r)
            return std::unexpected(r.error());
    } else if (errno != ENOPROTOOPT && errno != EINVAL && errno != ESRCH) {
        // ENOPROTOOPT: a kernel before 6.5. EINVAL/ESRCH: kernels before 6.16 refuse a pidfd for a peer that
        // has already been reaped. Both leave the identity without a pidfd, which callers must treat as
        // "cannot be verified" rather than trusting the pid.
        return failErrno("Failed to read SO_PEERPIDFD of socket {}", connectedFd);
    }

    auto groups = peerGroups(connectedFd);
    if (!groups)
        return std::unexpected(groups.error());
    identity.groups = std::move(*groups);

    auto label = peerSecurityLabel(connectedFd);
    if (!label)
        return std::unexpected(label.error());
    if (!label->empty())
        identity.securityLabel = std::move(*label);
    return identity;
}

Result<PeerIdentity> identityOfMessage(ReceivedMessage& message) {
    if (!message.credentials)
        return fail(EPROTO, "message carried no SCM_CREDENTIALS: the socket needs PassCredentials=yes");

    PeerIdentity identity;
    identity.uid = message.credentials->uid;
    identity.gid = message.credentials->gid;
    identity.pid = message.credentials->pid;
    identity.pidfd = std::move(message.pidfd);
    if (!identity.pidfd)
        return identity;
    if (auto r = ensureCloexec(identity.pidfd.get()); !r)
        return std::unexpected(r.error());

    // SCM_CREDENTIALS may carry a pid the sender chose (with CAP_SYS_ADMIN), SCM_PIDFD is the kernel's: when
    // both name a process they must be the same one. pid 0 means the sender is outside our pid namespace.
    if (identity.pid > 0) {
        auto pidfdPid = pidOfPidfd(identity.pidfd.get());
        if (pidfdPid) {
            if (*pidfdPid != identity.pid)
                return fail(EPROTO,
                            "Failed to identify the sender: SCM_CREDENTIALS names pid {} but SCM_PIDFD "
                            "refers to pid {}",
                            identity.pid, *pidfdPid);
        } else if (pidfdPid.error().code() != ESRCH) {
            return std::unexpected(pidfdPid.error().withContext("Failed to identify the sender"));
        }
        // ESRCH: the sender has exited since it sent the message. The identity is still what the kernel
        // attached, so keep it; readProcessFacts() on its pidfd will report ESRCH, never a reused PID's
        // facts.
    }
    return identity;
}

} // namespace svckit
