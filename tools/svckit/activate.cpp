#include "activate.hpp"

#include "unit_file.hpp"

#include <svckit/internal/linux_socket.hpp>
#include <svckit/log.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <format>
#include <map>
#include <optional>
#include <utility>

namespace svckit::tool {
namespace {

// The filesystem type of pidfds on kernels >= 6.9, where a pidfd's inode number identifies its process.
constexpr long kPidFsMagic = 0x50494446;
constexpr auto kStopTimeout = std::chrono::seconds(10);

constexpr std::string_view kUsage =
    R"(Usage: svckit activate [--socket FILE.socket]... [--] COMMAND [ARGS...]

Runs COMMAND socket-activated, as systemd >= 258 would, without systemd: creates the AF_UNIX
sockets of each unit's ListenStream= and ListenSequentialPacket=, applies SocketMode= and
DirectoryMode=, listens, then sets PassCredentials=, PassPIDFD= and AcceptFileDescriptors=
(SO_PASSCRED, SO_PASSPIDFD, SO_PASSRIGHTS) after listen() as systemd does, and runs COMMAND
with LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID and LISTEN_PIDFDID set.

  Accept=no   COMMAND starts at once with the listening sockets as fds 3, 4, ... (in the order
              of the --socket files, then of their listeners). SIGTERM, SIGINT and SIGHUP are
              forwarded to it; svckit exits with its exit status (128+N when killed by signal N).
  Accept=yes  COMMAND runs once per connection with the connection as fd 3. MaxConnections=
              and MaxConnectionsPerSource= (per UID) drop connections beyond them. SIGTERM,
              SIGINT or SIGHUP stops the running instances and svckit exits 0.

Socket files are created afresh (a stale socket file is replaced; a socket someone listens on
is not) and removed at exit. All --socket units must agree on Accept=.

Options:
  --socket FILE.socket  a socket unit to honour; repeatable
  -h, --help            show this help

Environment:
  SVCKIT_ACTIVATE_SKIP_OPTIONS=1  for tests only: do not set SO_PASSCRED, SO_PASSPIDFD and
                                  SO_PASSRIGHTS, so that a test can prove a service refuses
                                  a socket without the options its unit promises
  SVCKIT_LOG_LEVEL                log threshold, 0-7 or a name such as "debug" (default: info)
)";

// ---- sockets ----------------------------------------------------------------------------------------------

struct UnixAddress {
    sockaddr_un address{};
    socklen_t length = 0;
};

Result<UnixAddress> unixAddress(std::string_view name) {
    UnixAddress result;
    result.address.sun_family = AF_UNIX;
    bool abstract = name.starts_with('@');
    std::string_view bytes = abstract ? name.substr(1) : name;
    // A path needs room for its NUL; an abstract name for the NUL byte in front of it.
    if (bytes.size() + 1 > sizeof(result.address.sun_path))
        return fail(ENAMETOOLONG, "Socket address '{}' is too long", name);
    std::memcpy(result.address.sun_path + (abstract ? 1 : 0), bytes.data(), bytes.size());
    // Abstract names are exactly as long as the address says; paths include their NUL.
    result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + bytes.size());
    return result;
}

int socketType(SocketType type) {
    return type == SocketType::Stream ? SOCK_STREAM : SOCK_SEQPACKET;
}

// The socket files this process created. They are removed at exit, but only while they are still the files we
// created (same device and inode): a later svckit activate may have replaced them meanwhile.
class SocketFiles {
public:
    SocketFiles() = default;
    SocketFiles(const SocketFiles&) = delete;
    SocketFiles& operator=(const SocketFiles&) = delete;
    ~SocketFiles() {
        for (const File& file : files_) {
            struct stat st{};
            if (::lstat(file.path.c_str(), &st) == 0 && st.st_dev == file.device && st.st_ino == file.inode)
                ::unlink(file.path.c_str());
        }
    }

    Result<void> add(const std::string& path) {
        struct stat st{};
        if (::lstat(path.c_str(), &st) < 0)
            return failErrno("Failed to stat '{}'", path);
        files_.push_back({.path = path, .device = st.st_dev, .inode = st.st_ino});
        return {};
    }

private:
    struct File {
        std::string path;
        dev_t device;
        ino_t inode;
    };
    std::vector<File> files_;
};

// Creates the missing parent directories of path with DirectoryMode=, as systemd does.
Result<void> makeParentDirectories(const std::string& path, mode_t mode) {
    for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
        std::string directory = path.substr(0, slash);
        if (::mkdir(directory.c_str(), mode) == 0) {
            // mkdir() honours the umask; DirectoryMode= is meant exactly.
            if (::chmod(directory.c_str(), mode) < 0)
                return failErrno("Failed to set mode {:04o} on '{}'", mode, directory);
        } else if (errno != EEXIST) {
            return failErrno("Failed to create directory '{}'", directory);
        }
    }
    return {};
}

// Something is in the way of bind(). A socket file nobody listens on is the leftover of a process that did
// not clean up and is replaced, as systemd would; a socket someone listens on, or any other file, is not
// touched.
Result<void> removeStaleSocket(const std::string& path, const UnixAddress& address, int type) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) < 0)
        return errno == ENOENT ? Result<void>{} : failErrno("Failed to stat '{}'", path);
    if (!S_ISSOCK(st.st_mode))
        return fail(EEXIST, "Failed to bind '{}': a file that is not a socket is in the way", path);
    UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe)
        return failErrno("Failed to create a socket to probe '{}'", path);
    int connected =
        ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address.address), address.length);
    if (connected < 0 && errno == ENOENT)
        return {}; // gone meanwhile
    // ECONNREFUSED: nobody listens. Anything else (connected, EAGAIN with a full backlog, EPROTOTYPE for a
    // listener of the other type) means a live socket.
    if (connected == 0 || errno != ECONNREFUSED)
        return fail(EADDRINUSE, "Failed to bind '{}': another process is listening on it", path);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return failErrno("Failed to remove the stale socket '{}'", path);
    logDebug("svckit activate: removed the stale socket file '{}'", path);
    return {};
}

int bindWithMode(int fd, const UnixAddress& address, mode_t mode) {
    // bind() creates the file with 0777 & ~umask; creating it with SocketMode= already leaves no window in
    // which the socket is more open than the unit says (systemd does the same).
    mode_t previous = ::umask(static_cast<mode_t>(~mode & 0777));
    int r = ::bind(fd, reinterpret_cast<const sockaddr*>(&address.address), address.length);
    int saved = errno;
    ::umask(previous);
    errno = saved;
    return r;
}

// socket(), bind() with SocketMode=, listen(): everything systemd does before it sets the options.
Result<UniqueFd> openListener(const SocketSpec& spec, mode_t directoryMode, SocketFiles& files) {
    auto address = unixAddress(spec.address);
    if (!address)
        return std::unexpected(address.error());
    int type = socketType(spec.type);
    // Blocking, as systemd passes them (NonBlocking=no); CLOEXEC until a child places them on purpose.
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!fd)
        return failErrno("Failed to create an AF_UNIX {} socket", toString(spec.type));

    if (spec.address.starts_with('@')) {
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address->address), address->length) < 0)
            return failErrno("Failed to bind '{}'", spec.address);
    } else {
        if (auto made = makeParentDirectories(spec.address, directoryMode); !made)
            return std::unexpected(made.error());
        if (bindWithMode(fd.get(), *address, spec.mode) < 0) {
            if (errno != EADDRINUSE)
                return failErrno("Failed to bind '{}'", spec.address);
            if (auto removed = removeStaleSocket(spec.address, *address, type); !removed)
                return std::unexpected(removed.error());
            if (bindWithMode(fd.get(), *address, spec.mode) < 0)
                return failErrno("Failed to bind '{}'", spec.address);
        }
        if (auto added = files.add(spec.address); !added)
            return std::unexpected(added.error());
        if (::chmod(spec.address.c_str(), spec.mode) < 0)
            return failErrno("Failed to set mode {:04o} on '{}'", spec.mode, spec.address);
    }
    if (::listen(fd.get(), SOMAXCONN) < 0)
        return failErrno("Failed to listen on '{}'", spec.address);
    return fd;
}

void setOption(int fd, int option, bool value, std::string_view optionName, std::string_view unitName) {
    int v = value ? 1 : 0;
    if (::setsockopt(fd, SOL_SOCKET, option, &v, sizeof(v)) < 0)
        logWarning("{}: {} failed: {}", unitName, optionName, std::strerror(errno));
}

// Exactly what systemd >= 258 does after listen(): only the options that differ from the kernel defaults are
// set, and a failure (an older kernel) is a warning, not a reason to stop. That gap is what a service built
// on svckit checks for at start-up.
void applySocketOptions(int fd, const SocketSpec& spec, std::string_view unitName) {
    if (spec.passCredentials)
        setOption(fd, SO_PASSCRED, true, "SO_PASSCRED", unitName);
    if (spec.passPidfd)
        setOption(fd, SO_PASSPIDFD, true, "SO_PASSPIDFD", unitName);
    if (!spec.acceptFileDescriptors)
        setOption(fd, SO_PASSRIGHTS, false, "SO_PASSRIGHTS", unitName);
}

// ---- signals ----------------------------------------------------------------------------------------------

// Blocks the signals svckit acts on and returns a signalfd for them. Blocking them before the first fork()
// means none is lost in between; the children unblock everything before exec().
Result<UniqueFd> watchSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP})
        sigaddset(&set, sig);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0)
        return failErrno("Failed to block signals");
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd)
        return failErrno("Failed to create a signalfd");
    return fd;
}

std::optional<int> readSignal(int signalFd) {
    signalfd_siginfo info{};
    for (;;) {
        ssize_t n = ::read(signalFd, &info, sizeof(info));
        if (n == static_cast<ssize_t>(sizeof(info)))
            return static_cast<int>(info.ssi_signo);
        if (n < 0 && errno == EINTR)
            continue;
        return std::nullopt; // EAGAIN: nothing pending
    }
}

// Waits until one of fds is readable (true) or timeoutMs passes (false; -1: no timeout).
Result<bool> waitReadable(std::span<pollfd> fds, int timeoutMs) {
    for (;;) {
        int n = ::poll(fds.data(), fds.size(), timeoutMs);
        if (n >= 0)
            return n > 0;
        if (errno != EINTR)
            return failErrno("Failed to poll");
    }
}

int exitStatusOf(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

std::string describeStatus(int status) {
    if (WIFSIGNALED(status))
        return std::format("was killed by signal {} ({})", WTERMSIG(status), ::sigdescr_np(WTERMSIG(status)));
    return std::format("exited with status {}", exitStatusOf(status));
}

// ---- the command ------------------------------------------------------------------------------------------

// Our environment without LISTEN_* variables (those of an activation around svckit must not leak through).
std::vector<std::string> commandEnvironment() {
    std::vector<std::string> environment;
    for (char** entry = environ; entry && *entry; ++entry) {
        std::string_view variable(*entry);
        if (variable.starts_with("LISTEN_PID=") || variable.starts_with("LISTEN_FDS=") ||
            variable.starts_with("LISTEN_FDNAMES=") || variable.starts_with("LISTEN_PIDFDID="))
            continue;
        environment.emplace_back(variable);
    }
    return environment;
}

std::string joined(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const std::string& part : parts) {
        if (!out.empty())
            out += separator;
        out += part;
    }
    return out;
}

// The id systemd >= 259 puts in LISTEN_PIDFDID: the inode number of a pidfd of the process, which identifies
// it only on pidfs (kernel >= 6.9); elsewhere systemd leaves the variable out, and so do we.
std::optional<ino_t> ownPidfdId() {
    // Through syscall(): glibc's <sys/pidfd.h> declares pidfd_open() without C linkage for C++.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    if (!pidfd)
        return std::nullopt;
    struct statfs fs{};
    struct stat st{};
    if (::fstatfs(pidfd.get(), &fs) < 0 || fs.f_type != kPidFsMagic || ::fstat(pidfd.get(), &st) < 0)
        return std::nullopt;
    return st.st_ino;
}

struct ChildSetup {
    std::span<const int> fds;                 // passed as fds 3, 4, ... in this order
    std::string fdNames;                      // LISTEN_FDNAMES
    std::span<const std::string> command;     // COMMAND [ARGS...]
    std::span<const std::string> environment; // without LISTEN_*
};

// Runs in the child between fork() and exec(). svckit is single-threaded, so allocating here is safe.
[[noreturn]] void execChild(const ChildSetup& setup) noexcept {
    try {
        // systemd starts services with default signal dispositions and nothing blocked.
        for (int sig = 1; sig < NSIG; ++sig)
            if (sig != SIGKILL && sig != SIGSTOP)
                ::signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);

        // Move the fds to 3, 4, ...: first all above that range, so that placing one cannot overwrite another
        // that is still to be placed. dup2() clears FD_CLOEXEC on the copy: these are meant to be inherited.
        const int count = static_cast<int>(setup.fds.size());
        std::vector<int> high;
        for (int fd : setup.fds) {
            int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3 + count);
            if (copy < 0) {
                logError("svckit activate: Failed to duplicate fd {}: {}", fd, std::strerror(errno));
                ::_exit(1);
            }
            high.push_back(copy);
        }
        for (int i = 0; i < count; ++i) {
            if (::dup2(high[static_cast<size_t>(i)], 3 + i) < 0) {
                logError("svckit activate: Failed to move fd to {}: {}", 3 + i, std::strerror(errno));
                ::_exit(1);
            }
        }
        // A service gets only the fds it is passed: everything else svckit holds (or inherited) is closed.
        ::close_range(static_cast<unsigned>(3 + count), ~0U, 0);

        std::vector<std::string> environment(setup.environment.begin(), setup.environment.end());
        environment.push_back(std::format("LISTEN_FDS={}", count));
        environment.push_back("LISTEN_FDNAMES=" + setup.fdNames);
        environment.push_back(std::format("LISTEN_PID={}", ::getpid()));
        if (auto id = ownPidfdId())
            environment.push_back(std::format("LISTEN_PIDFDID={}", *id));

        std::vector<char*> envp;
        for (std::string& variable : environment)
            envp.push_back(variable.data());
        envp.push_back(nullptr);
        std::vector<std::string> command(setup.command.begin(), setup.command.end());
        std::vector<char*> argv;
        for (std::string& arg : command)
            argv.push_back(arg.data());
        argv.push_back(nullptr);

        ::execvpe(argv[0], argv.data(), envp.data());
        int error = errno;
        logError("svckit activate: Failed to execute '{}': {}", command.front(), std::strerror(error));
        // The shell's convention: 127 for a command that is not there, 126 for one that cannot run.
        ::_exit(error == ENOENT ? 127 : 126);
    } catch (...) {
        ::_exit(1);
    }
}

Result<pid_t> spawn(const ChildSetup& setup) {
    pid_t pid = ::fork();
    if (pid < 0)
        return failErrno("Failed to fork");
    if (pid == 0)
        execChild(setup);
    return pid;
}

// ---- the two modes ----------------------------------------------------------------------------------------

struct Listener {
    const SocketUnit* unit;
    SocketSpec spec;
    UniqueFd fd;
};

// Accept=no: one command with every listening fd; signals are forwarded, its exit status is ours.
Result<int> runSingleService(std::vector<Listener>& listeners, const ActivateOptions& options, int signalFd) {
    std::vector<int> fds;
    std::vector<std::string> names;
    for (const Listener& listener : listeners) {
        fds.push_back(listener.fd.get());
        names.push_back(listener.spec.name);
    }
    const std::vector<std::string> environment = commandEnvironment();
    auto child = spawn(
        {.fds = fds, .fdNames = joined(names, ":"), .command = options.command, .environment = environment});
    if (!child)
        return std::unexpected(child.error());
    logDebug("svckit activate: started '{}' as PID {}", options.command.front(), *child);

    pollfd watch{.fd = signalFd, .events = POLLIN, .revents = 0};
    for (;;) {
        if (auto ready = waitReadable({&watch, 1}, -1); !ready)
            return std::unexpected(ready.error());
        while (auto sig = readSignal(signalFd)) {
            if (*sig != SIGCHLD) {
                logDebug("svckit activate: forwarding {} to PID {}", ::sigabbrev_np(*sig), *child);
                ::kill(*child, *sig);
                continue;
            }
            int status = 0;
            if (::waitpid(*child, &status, WNOHANG) == *child) {
                logDebug("svckit activate: '{}' {}", options.command.front(), describeStatus(status));
                return exitStatusOf(status);
            }
        }
    }
}

// Accept=yes: one command per connection, with the limits of its unit, until SIGTERM/SIGINT/SIGHUP.
class ConnectionServer {
public:
    ConnectionServer(std::vector<Listener>& listeners, const ActivateOptions& options, int signalFd)
        : listeners_(listeners), options_(options), signalFd_(signalFd), environment_(commandEnvironment()) {}

    Result<int> run() {
        std::vector<pollfd> watches{{.fd = signalFd_, .events = POLLIN, .revents = 0}};
        for (Listener& listener : listeners_) {
            // Only svckit accepts on them in this mode: non-blocking, so a vanished connection cannot hang
            // it.
            int flags = ::fcntl(listener.fd.get(), F_GETFL);
            if (flags < 0 || ::fcntl(listener.fd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
                return failErrno("Failed to make the socket '{}' non-blocking", listener.spec.address);
            watches.push_back({.fd = listener.fd.get(), .events = POLLIN, .revents = 0});
        }
        for (;;) {
            if (auto ready = waitReadable(watches, pauseTimeoutMs()); !ready)
                return std::unexpected(ready.error());
            if (watches[0].revents != 0) {
                bool stop = false;
                while (auto sig = readSignal(signalFd_)) {
                    if (*sig == SIGCHLD) {
                        reap();
                        resume(watches); // fds may be free again
                    } else {
                        stop = true;
                    }
                }
                if (stop)
                    break;
            }
            if (paused_ && std::chrono::steady_clock::now() >= resumeAt_)
                resume(watches);
            for (size_t i = 1; i < watches.size(); ++i)
                if (watches[i].fd >= 0 && watches[i].revents != 0 && !acceptAll(listeners_[i - 1]))
                    pause(watches);
        }
        return stopInstances();
    }

private:
    struct Instance {
        const SocketUnit* unit;
        uid_t uid;
    };

    // False when out of fds or memory: the client stays queued and the socket readable, so polling it again
    // at once would spin; the caller pauses instead.
    bool acceptAll(const Listener& listener) {
        for (;;) {
            UniqueFd connection(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!connection) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    if (!episode_)
                        logWarning("svckit activate: Failed to accept a connection on '{}': {}; accepting "
                                   "paused (retrying every {} to {} ms)",
                                   listener.spec.address, std::strerror(errno), firstBackoff.count(),
                                   lastBackoff.count());
                    episode_ = true;
                    return false;
                }
                if (errno != EAGAIN)
                    logWarning("svckit activate: Failed to accept a connection on '{}': {}",
                               listener.spec.address, std::strerror(errno));
                return true;
            }
            episode_ = false;
            backoff_ = firstBackoff;
            startInstance(listener, std::move(connection));
        }
    }

    // Every listening socket leaves the poll set (a negative fd is ignored) until resumeAt_ or a reaped
    // instance; the backoff doubles up to lastBackoff while the episode lasts.
    void pause(std::vector<pollfd>& watches) {
        if (paused_)
            return;
        paused_ = true;
        for (size_t i = 1; i < watches.size(); ++i)
            watches[i].fd = -1;
        resumeAt_ = std::chrono::steady_clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, lastBackoff);
    }

    void resume(std::vector<pollfd>& watches) {
        if (!paused_)
            return;
        paused_ = false;
        for (size_t i = 1; i < watches.size(); ++i)
            watches[i].fd = listeners_[i - 1].fd.get();
    }

    [[nodiscard]] int pauseTimeoutMs() const {
        if (!paused_)
            return -1;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(resumeAt_ -
                                                                          std::chrono::steady_clock::now());
        return static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count() + 1, 0));
    }

    void startInstance(const Listener& listener, UniqueFd connection) {
        const SocketUnit& unit = *listener.unit;
        ucred peer{.pid = 0, .uid = static_cast<uid_t>(-1), .gid = static_cast<gid_t>(-1)};
        socklen_t length = sizeof(peer);
        ::getsockopt(connection.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length);

        // Like systemd: the connection is accepted and closed at once when a limit is reached.
        unsigned running = 0;
        unsigned fromPeer = 0;
        for (const auto& [pid, instance] : instances_) {
            if (instance.unit != &unit)
                continue;
            ++running;
            if (instance.uid == peer.uid)
                ++fromPeer;
        }
        if (running >= unit.options.maxConnections) {
            logWarning("{}: Too many incoming connections ({}), dropping connection.", unit.name, running);
            return;
        }
        if (unit.options.maxConnectionsPerSource > 0 && fromPeer >= unit.options.maxConnectionsPerSource) {
            logWarning("{}: Too many incoming connections ({}) from source UID {}, dropping connection.",
                       unit.name, fromPeer, peer.uid);
            return;
        }

        // systemd >= 257 also sets $REMOTE_ADDR for AF_UNIX connections; it is left out here on purpose: the
        // peer of a local connection is almost always unnamed, and svckit services identify their peers by
        // SO_PEERCRED/SO_PEERPIDFD, never by address.
        const int fd = connection.get();
        auto child = spawn({.fds = std::span(&fd, 1),
                            .fdNames = listener.spec.name,
                            .command = options_.command,
                            .environment = environment_});
        if (!child) {
            logWarning("svckit activate: {}", child.error().message());
            return;
        }
        logDebug("svckit activate: connection from PID {} UID {} on '{}': started PID {}", peer.pid, peer.uid,
                 listener.spec.address, *child);
        instances_.emplace(*child, Instance{.unit = &unit, .uid = peer.uid});
    }

    void reap() {
        for (;;) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                return;
            if (instances_.erase(pid) > 0)
                logDebug("svckit activate: instance PID {} {}", pid, describeStatus(status));
        }
    }

    // Like stopping the socket's service instances: SIGTERM, then SIGKILL for what is left after a while.
    Result<int> stopInstances() {
        for (const auto& [pid, instance] : instances_)
            ::kill(pid, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
        pollfd watch{.fd = signalFd_, .events = POLLIN, .revents = 0};
        while (!instances_.empty()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                for (const auto& [pid, instance] : instances_) {
                    logWarning("svckit activate: instance PID {} did not stop, killing it", pid);
                    ::kill(pid, SIGKILL);
                    ::waitpid(pid, nullptr, 0);
                }
                instances_.clear();
                break;
            }
            if (auto ready = waitReadable({&watch, 1}, static_cast<int>(left.count())); !ready)
                return std::unexpected(ready.error());
            while (readSignal(signalFd_)) {
                // Only the SIGCHLDs matter now; another SIGTERM changes nothing.
            }
            reap();
        }
        return 0;
    }

    std::vector<Listener>& listeners_;
    const ActivateOptions& options_;
    int signalFd_;
    const std::vector<std::string> environment_;
    std::map<pid_t, Instance> instances_;
    static constexpr std::chrono::milliseconds firstBackoff{100};
    static constexpr std::chrono::milliseconds lastBackoff{1000};
    bool paused_ = false;
    bool episode_ = false; // logged once until a connection is accepted again
    std::chrono::milliseconds backoff_ = firstBackoff;
    std::chrono::steady_clock::time_point resumeAt_{};
};

// ---- setting it up ----------------------------------------------------------------------------------------

// What %t stands for, as for the service manager the user would run the unit under.
std::string runtimeDirectory() {
    if (::geteuid() == 0)
        return "/run";
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/')
        return xdg;
    return std::format("/run/user/{}", ::geteuid());
}

Result<std::vector<SocketUnit>> loadUnits(const ActivateOptions& options) {
    const ParseOptions parseOptions{.runtimeDirectory = runtimeDirectory()};
    std::vector<SocketUnit> units;
    for (const std::string& file : options.socketFiles) {
        auto unit = loadSocketUnit(file, parseOptions);
        if (!unit)
            return std::unexpected(unit.error());
        for (const std::string& note : unit->notes)
            log(LogLevel::Notice, "{}", note);
        units.push_back(std::move(*unit));
    }
    // One process either receives listening fds or connections: the units cannot disagree on that.
    for (const SocketUnit& unit : units)
        if (unit.options.accept != units.front().options.accept)
            return fail(EINVAL, "{} has Accept={} but {} has Accept={}: all --socket units must agree",
                        units.front().fileName, units.front().options.accept ? "yes" : "no", unit.fileName,
                        unit.options.accept ? "yes" : "no");
    // The second bind() would replace the first listener's socket file; refuse before creating anything.
    std::map<std::string, std::string> seen;
    for (const SocketUnit& unit : units)
        for (const SocketListener& listener : unit.listeners) {
            std::string where = std::format("{}:{}", unit.fileName, listener.line);
            if (auto [it, inserted] = seen.emplace(listener.address, where); !inserted)
                return fail(EINVAL, "{}: '{}' is already listened on by {}", where, listener.address,
                            it->second);
        }
    return units;
}

std::string describeListeners(const std::vector<Listener>& listeners) {
    std::string out;
    for (const Listener& listener : listeners) {
        if (!out.empty())
            out += ", ";
        out += std::format("{} ({}, '{}')", listener.spec.address, toString(listener.spec.type),
                           listener.spec.name);
    }
    return out;
}

Result<int> activate(const ActivateOptions& options) {
    auto units = loadUnits(options);
    if (!units)
        return std::unexpected(units.error());
    auto signalFd = watchSignals();
    if (!signalFd)
        return std::unexpected(signalFd.error());

    // Declared before the listeners: the files are removed after the sockets are closed.
    SocketFiles files;
    std::vector<Listener> listeners;
    for (const SocketUnit& unit : *units) {
        for (const SocketListener& socketListener : unit.listeners) {
            SocketSpec spec = unit.toSocketSpec(socketListener);
            auto fd = openListener(spec, unit.options.directoryMode, files);
            if (!fd)
                return std::unexpected(
                    fd.error().withContext(std::format("{}:{}", unit.fileName, socketListener.line)));
            if (options.applySocketOptions)
                applySocketOptions(fd->get(), spec, unit.name);
            listeners.push_back({.unit = &unit, .spec = std::move(spec), .fd = std::move(*fd)});
        }
    }
    if (!options.applySocketOptions)
        logWarning("svckit activate: SVCKIT_ACTIVATE_SKIP_OPTIONS is set: PassCredentials=, PassPIDFD= and "
                   "AcceptFileDescriptors= are not applied (a switch for tests)");

    const bool accept = units->front().options.accept;
    logInfo("svckit activate: listening on {}; running '{}' {}", describeListeners(listeners),
            joined(options.command, " "), accept ? "per connection (Accept=yes)" : "once (Accept=no)");
    if (accept)
        return ConnectionServer(listeners, options, signalFd->get()).run();
    return runSingleService(listeners, options, signalFd->get());
}

} // namespace

std::string_view activateUsage() noexcept {
    return kUsage;
}

Result<ActivateRequest> parseActivateArguments(std::span<const std::string_view> args) {
    ActivateRequest request;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        std::string_view arg = args[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "-h" || arg == "--help") {
            request.help = true;
            return request;
        }
        if (arg == "--socket") {
            if (i + 1 == args.size())
                return fail(EINVAL, "--socket needs a FILE.socket");
            request.options.socketFiles.emplace_back(args[++i]);
            continue;
        }
        if (arg.starts_with("--socket=")) {
            std::string_view file = arg.substr(std::string_view("--socket=").size());
            if (file.empty())
                return fail(EINVAL, "--socket needs a FILE.socket");
            request.options.socketFiles.emplace_back(file);
            continue;
        }
        if (arg.starts_with('-') && arg.size() > 1)
            return fail(EINVAL, "unknown option '{}'", arg);
        break; // the command: everything from here on is its own
    }
    for (; i < args.size(); ++i)
        request.options.command.emplace_back(args[i]);
    if (request.options.socketFiles.empty())
        return fail(EINVAL, "at least one --socket FILE.socket is needed");
    if (request.options.command.empty())
        return fail(EINVAL, "no COMMAND to run");
    if (const char* skip = std::getenv("SVCKIT_ACTIVATE_SKIP_OPTIONS"); skip && *skip) {
        auto value = parseBoolean(skip);
        if (!value)
            return fail(EINVAL, "SVCKIT_ACTIVATE_SKIP_OPTIONS='{}' is not a boolean", skip);
        request.options.applySocketOptions = !*value;
    }
    return request;
}

int runActivate(const ActivateOptions& options) {
    auto status = activate(options);
    if (!status) {
        logError("svckit activate: {}", status.error().message());
        return 1;
    }
    return *status;
}

} // namespace svckit::tool
