// svckit/socket_options.hpp — checking that a socket really carries the options its SocketSpec promises.
//
// systemd >= 258 applies PassCredentials=, PassPIDFD= and AcceptFileDescriptors= after listen() and only logs
// a failure, so a service checks its listening fds at start-up (verifySocket) and every accepted connection
// (checkAcceptedSocket): a client that connected in the gap carries the kernel defaults. Mismatches name the
// .socket setting that fixes them.
#pragma once

#include <svckit/export.hpp>
#include <svckit/activation.hpp>
#include <svckit/error.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit {

// The options as the kernel reports them for one socket.
struct AppliedOptions {
    bool passCredentials = false; // SO_PASSCRED
    bool passPidfd = false;       // SO_PASSPIDFD
    std::optional<bool>
        acceptFileDescriptors; // SO_PASSRIGHTS; nullopt: the kernel has no SO_PASSRIGHTS (< 6.16)
};

[[nodiscard]] SVCKIT_EXPORT Result<AppliedOptions> readAppliedOptions(int fd);
// Sets SO_PASSCRED, SO_PASSPIDFD and SO_PASSRIGHTS as the spec says. A kernel without SO_PASSRIGHTS is not an
// error (the fds are then refused by closing them on receipt).
[[nodiscard]] SVCKIT_EXPORT Result<void> applyOptions(int fd, const SocketSpec& spec);

enum class VerifyMode {
    Strict, // a mismatch refuses start-up (the default)
    Repair, // option mismatches are fixed with setsockopt and reported as warnings
};

struct Mismatch {
    enum class Kind {
        Family,
        Type,
        Listening,
        Address,
        Mode,  // SocketMode=: the socket file grants more than the spec
        Owner, // SocketUser=, SocketGroup=: the socket file's owner or group differs
        PassCredentials,
        PassPidfd,
        AcceptFileDescriptors
    };
    Kind kind;
    bool repairable;     // an option that setsockopt can fix
    std::string message; // one sentence, naming the .socket setting (and the systemd version) that fixes it
};

struct VerifyReport {
    std::vector<Mismatch> mismatches;  // what is wrong and was not repaired
    std::vector<std::string> repaired; // Repair mode: what was fixed (each a warning to log)
    std::vector<std::string> notes;    // facts that are not mismatches (e.g. the kernel lacks SO_PASSRIGHTS)
    [[nodiscard]] bool ok() const noexcept { return mismatches.empty(); }
};

// Checks an activated fd against its spec: family (AF_UNIX), type, listening state (listening unless
// spec.accept), bound address, the socket file's mode, owner and group (path sockets), SO_PASSCRED,
// SO_PASSPIDFD, SO_PASSRIGHTS.
[[nodiscard]] SVCKIT_EXPORT VerifyReport verifySocket(const ActivatedFd& fd, const SocketSpec& spec,
                                                      VerifyMode mode);

// Verifies a whole activation against the specs: every passed fd must have a spec of its name. Returns an
// Error whose message lists every mismatch (one per line) in Strict mode; logs repairs as warnings.
[[nodiscard]] SVCKIT_EXPORT Result<void> verifyActivation(const Activation& activation,
                                                          std::span<const SocketSpec> specs, VerifyMode mode);

enum class AcceptedPolicy {
    Repair, // set the missing options on the accepted socket (the default: the gap is a race, not a
            // misconfiguration)
    Refuse, // close connections that lack them
};

// Counters of what the per-connection checks did; shared by the listeners of one service.
struct ConnectionCounters {
    std::atomic<uint64_t> repairedConnections{0};
    std::atomic<uint64_t> refusedConnections{0};
    std::atomic<uint64_t> unwantedFdsClosed{0};
};

// Checks an accepted (connected) socket against the spec of its listener and repairs or refuses it.
// Refusal is an Error with EPROTO; the caller closes the socket.
[[nodiscard]] SVCKIT_EXPORT Result<void> checkAcceptedSocket(int fd, const SocketSpec& spec,
                                                             AcceptedPolicy policy,
                                                             ConnectionCounters* counters = nullptr);

// accept4() with SOCK_CLOEXEC (and SOCK_NONBLOCK when nonblocking), then checkAcceptedSocket().
// EAGAIN is returned as an Error with code EAGAIN.
[[nodiscard]] SVCKIT_EXPORT Result<UniqueFd> acceptConnection(int listenFd, const SocketSpec& spec,
                                                              AcceptedPolicy policy,
                                                              ConnectionCounters* counters = nullptr,
                                                              bool nonblocking = true);

} // namespace svckit
