// svckit/internal/activation.hpp — the seams of socket activation that the tests (and only they) use: the
// LISTEN_* values as plain data, an Activation built from given values instead of the environment, this
// process's pidfd id, and the pure comparison behind verifySocket(). Never installed: not part of svckit's
// API (svckit::internal is not exported from libsvckit.so; tests link the library's static variant).
#pragma once

#include <svckit/activation.hpp>
#include <svckit/error.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/socket_spec.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace svckit::internal {

// The LISTEN_* values as found in the environment (nullopt = unset).
struct ListenEnvironment {
    std::optional<std::string> pid;     // LISTEN_PID
    std::optional<std::string> fds;     // LISTEN_FDS
    std::optional<std::string> fdNames; // LISTEN_FDNAMES
    std::optional<std::string> pidfdId; // LISTEN_PIDFDID (systemd >= 259)

    // Reads the variables; with unset = true, removes them from the environment afterwards.
    static ListenEnvironment read(bool unset);
};

// What Activation::fromEnvironment() does, from given values, for a process `self` whose own pidfd id is
// `selfPidfdId` (nullopt when the kernel cannot tell). Takes ownership of fds 3 .. 3+LISTEN_FDS-1 only when
// they are meant for `self`.
[[nodiscard]] Result<Activation> activationFromValues(const ListenEnvironment& env, pid_t self,
                                                      std::optional<uint64_t> selfPidfdId);

// This process's own pidfd id (the inode number of a pidfd on pidfs), as systemd puts in LISTEN_PIDFDID.
[[nodiscard]] std::optional<uint64_t> ownPidfdId();

// The pure comparison behind verifySocket(): what differs between a socket (as inspected) with these applied
// options and the spec. A kernel without SO_PASSRIGHTS (acceptFileDescriptors == nullopt) is not a mismatch;
// it is reported in VerifyReport::notes by verifySocket().
[[nodiscard]] std::vector<Mismatch> compareWithSpec(const SocketInfo& info, const AppliedOptions& options,
                                                    const SocketSpec& spec, std::string_view fdName);

// Varlink is a stream of NUL-terminated messages: a SOCK_SEQPACKET socket would cut a packet longer than the
// read buffer and splice the next one onto what was kept. EPROTOTYPE, naming the unit line to use, unless fd
// is a SOCK_STREAM socket.
[[nodiscard]] Result<void> requireVarlinkStream(int fd, const SocketSpec& spec);

// One thing wrong with an activation, as verifyActivation() lists it: on a socket of the spec (`mismatch`
// set) or an fd of a name the service does not have (`mismatch` empty, `socket` the fd's name).
struct ActivationProblem {
    std::string socket;               // the SocketSpec's (or the unknown fd's) name
    std::optional<Mismatch> mismatch; // nullopt: the fd's name matches no spec
    std::string message;              // one line
};

// verifyActivation() before it is worded: every problem with the specs they concern (Repair mode: repairs and
// notes are logged as warnings here), so that a refusal can name the units and settings that fix them.
[[nodiscard]] std::vector<ActivationProblem>
checkActivation(const Activation& activation, std::span<const SocketSpec> specs, VerifyMode mode);
// The Error verifyActivation() returns for these problems (EINVAL, one line each); nullopt when there is
// none.
[[nodiscard]] std::optional<Error> activationError(std::span<const ActivationProblem> problems);

} // namespace svckit::internal
