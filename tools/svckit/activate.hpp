// tools/svckit/activate.hpp — `svckit activate`: socket activation like systemd >= 258, without it.
//
// For each listener of the given .socket units it creates the AF_UNIX socket, binds it with SocketMode= (and
// DirectoryMode= for missing parents), listens, and only then sets SO_PASSCRED, SO_PASSPIDFD and
// SO_PASSRIGHTS, the way systemd >= 258 does (a failure there is a warning, as in systemd's log). Then it
// runs the command with LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID and LISTEN_PIDFDID: once with the listening
// fds (Accept=no), or once per connection with the connected fd (Accept=yes).
//
// It deliberately shares no socket code with libsvckit: it is the harness the framework's own verification is
// tested against, so a bug in the framework's bindSocket()/applyOptions() must not hide itself here.
#pragma once

#include <svckit/error.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::tool {

struct ActivateOptions {
    std::vector<std::string> socketFiles; // --socket FILE.socket; their fds are passed in this order
    std::vector<std::string> command;     // COMMAND [ARGS...]
    // false only with the test switch SVCKIT_ACTIVATE_SKIP_OPTIONS=1: the sockets keep the kernel defaults,
    // so tests can prove that a service refuses them.
    bool applySocketOptions = true;
};

// The usage text of `svckit activate`.
[[nodiscard]] std::string_view activateUsage() noexcept;

// What parseActivateArguments() found: either options to run, or a request for the help text.
struct ActivateRequest {
    bool help = false;
    ActivateOptions options;
};

// Parses the arguments after "activate". Errors are usage errors (the caller prints the usage and exits 2).
// Reads SVCKIT_ACTIVATE_SKIP_OPTIONS from the environment.
[[nodiscard]] Result<ActivateRequest> parseActivateArguments(std::span<const std::string_view> args);

// Runs `svckit activate` and returns the process's exit status: the command's (128+signal when it was killed)
// with Accept=no, 0 after SIGTERM/SIGINT with Accept=yes, 1 when the sockets could not be set up.
// Errors are logged to stderr here, once.
[[nodiscard]] int runActivate(const ActivateOptions& options);

} // namespace svckit::tool
