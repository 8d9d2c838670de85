// svckit/activation.hpp — acquiring a service's sockets: from systemd's socket activation, or by binding
// them.
//
// Activation::fromEnvironment() reads LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PIDFDID once (and
// unsets them, like sd_listen_fds(1)), classifies each passed fd (family, type, listening or connected, bound
// address) and hands them out by name. bindSocket() creates a socket from a SocketSpec when the service was
// not activated, applying the spec's options before listen() as systemd >= 258 would.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace svckit {

// What a descriptor is, read from the kernel (fstat, SO_DOMAIN, SO_TYPE, SO_ACCEPTCONN, getsockname).
struct SocketInfo {
    bool isSocket = false;
    int family = 0;         // AF_UNIX, AF_INET, ... (0 when not a socket)
    int type = 0;           // SOCK_STREAM, SOCK_SEQPACKET, ...
    bool listening = false; // SO_ACCEPTCONN
    std::string address;    // AF_UNIX: "/path", "@abstract", or "" when unnamed
    // AF_UNIX bound to a path: the socket file's permission bits and owner as stat() reports them
    // (SocketMode=, SocketUser=, SocketGroup=); nullopt for abstract or unnamed sockets, or when the file
    // is gone (a socket whose file was removed keeps its fd but has no mode left to compare).
    struct File {
        mode_t mode = 0; // the permission bits only (07777)
        uid_t uid = 0;
        gid_t gid = 0;
    };
    std::optional<File> file;
};

[[nodiscard]] SVCKIT_EXPORT Result<SocketInfo> inspectSocket(int fd);

struct ActivatedFd {
    UniqueFd fd;
    std::string name; // from LISTEN_FDNAMES; "unknown" when systemd gave none
    SocketInfo info;
};

class Activation;
namespace internal {
// svckit/internal/activation.hpp, not installed: Activation from given LISTEN_* values, for the tests.
struct ListenEnvironment;
Result<Activation> activationFromValues(const ListenEnvironment& env, pid_t self,
                                        std::optional<uint64_t> selfPidfdId);
} // namespace internal

class SVCKIT_EXPORT Activation {
public:
    // Reads the environment once and unsets LISTEN_*. A process that was not activated (or whose LISTEN_PID
    // or LISTEN_PIDFDID names another process) gets an empty Activation, not an error; malformed values are
    // errors.
    static Result<Activation> fromEnvironment();

    Activation() = default;
    Activation(Activation&&) noexcept = default;
    Activation& operator=(Activation&&) noexcept = default;

    [[nodiscard]] bool activated() const noexcept { return activated_; }
    // Why the passed fds were ignored ("LISTEN_PID=123 is not this process" ...), empty otherwise.
    [[nodiscard]] const std::string& ignoredReason() const noexcept { return ignoredReason_; }

    [[nodiscard]] std::span<ActivatedFd> fds() noexcept { return fds_; }
    [[nodiscard]] std::span<const ActivatedFd> fds() const noexcept { return fds_; }
    // The first fd with that name still held, or nullptr.
    [[nodiscard]] ActivatedFd* find(std::string_view name) noexcept;
    // Removes every fd with that name from the set and returns them.
    [[nodiscard]] std::vector<ActivatedFd> take(std::string_view name);

private:
    friend Result<Activation> internal::activationFromValues(const internal::ListenEnvironment& env,
                                                             pid_t self, std::optional<uint64_t> selfPidfdId);

    bool activated_ = false;
    std::string ignoredReason_;
    std::vector<ActivatedFd> fds_;
};

// Creates, binds and (for listening specs) listens on the spec's socket: SOCK_CLOEXEC|SOCK_NONBLOCK, a stale
// socket file at the path is replaced, SocketMode= applied, and the spec's options set before listen().
[[nodiscard]] SVCKIT_EXPORT Result<UniqueFd> bindSocket(const SocketSpec& spec);

} // namespace svckit
