#include <svckit/activation.hpp>

#include <svckit/internal/activation.hpp>
#include <svckit/socket_options.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace svckit {
namespace {

// linux/magic.h of older kernels lacks it; pidfs exists since Linux 6.9.
constexpr unsigned long pidfsMagic = 0x50494446;

constexpr int listenFdsStart = 3; // SD_LISTEN_FDS_START

// A plain decimal number: no sign, no blanks, no trailing text (stricter than strtoul, which would accept
// " +12"). The environment is written by systemd; anything else is a sign of a confused caller.
template <typename T>
std::optional<T> parseDecimal(std::string_view text) {
    if (text.empty() || text.front() < '0' || text.front() > '9')
        return std::nullopt;
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

// As libsystemd splits it (checked by a differential test): empty fields are kept, so "a::b" is three names
// and "" is one empty name.
std::vector<std::string> splitNames(std::string_view text) {
    std::vector<std::string> names;
    size_t start = 0;
    for (;;) {
        size_t colon = text.find(':', start);
        names.emplace_back(
            text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
        if (colon == std::string_view::npos)
            break;
        start = colon + 1;
    }
    return names;
}

std::optional<std::string> environmentValue(const char* name) {
    const char* value = std::getenv(name);
    if (!value)
        return std::nullopt;
    return std::string(value);
}

int socketTypeOf(SocketType type) noexcept {
    return type == SocketType::SeqPacket ? SOCK_SEQPACKET : SOCK_STREAM;
}

struct UnixAddress {
    sockaddr_un addr{};
    socklen_t length = 0;
    bool abstract = false;
};

Result<UnixAddress> parseAddress(const std::string& address) {
    UnixAddress result;
    result.addr.sun_family = AF_UNIX;
    if (address.size() >= 2 && address.front() == '@') {
        // Abstract: a leading NUL, then the name without a terminator; the length is part of the name.
        std::string_view name = std::string_view(address).substr(1);
        if (name.size() > sizeof(result.addr.sun_path) - 1)
            return fail(ENAMETOOLONG, "Failed to bind '{}': {}", address, std::strerror(ENAMETOOLONG));
        std::memcpy(result.addr.sun_path + 1, name.data(), name.size());
        result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        result.abstract = true;
        return result;
    }
    if (address.empty() || address.front() != '/')
        return fail(EINVAL, "Failed to bind '{}': an AF_UNIX address is an absolute path or '@name'",
                    address);
    if (address.size() > sizeof(result.addr.sun_path) - 1)
        return fail(ENAMETOOLONG, "Failed to bind '{}': {}", address, std::strerror(ENAMETOOLONG));
    if (address.find('\0') != std::string::npos)
        return fail(EINVAL, "Failed to bind '{}': the path contains a NUL byte", address);
    std::memcpy(result.addr.sun_path, address.data(), address.size());
    result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + 1);
    return result;
}

// A socket file at the path is stale when nobody listens on it any more (connect() is refused). A live one
// belongs to another running instance: replacing it would silently steal its clients.
Result<void> removeStaleSocket(const std::string& path, const UnixAddress& address, int type) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
        if (errno == ENOENT)
            return {};
        return failErrno("Failed to bind '{}'", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return fail(EEXIST, "Failed to bind '{}': {} (and it is not a socket, so it is not replaced)", path,
                    std::strerror(EEXIST));

    UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe)
        return failErrno("Failed to create a socket to probe '{}'", path);
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address.addr), address.length) == 0 ||
        errno == EAGAIN || errno == EPROTOTYPE)
        return fail(EADDRINUSE, "Failed to bind '{}': {}", path, std::strerror(EADDRINUSE));
    if (errno != ECONNREFUSED && errno != ENOENT)
        return failErrno("Failed to probe '{}'", path);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return failErrno("Failed to remove the stale socket '{}'", path);
    return {};
}

} // namespace

Result<SocketInfo> inspectSocket(int fd) {
    SocketInfo info;
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        return failErrno("Failed to inspect fd {}", fd);
    if (!S_ISSOCK(st.st_mode))
        return info;
    info.isSocket = true;

    auto intOption = [fd](int option, const char* name) -> Result<int> {
        int value = 0;
        socklen_t length = sizeof(value);
        if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) < 0)
            return failErrno("Failed to read {} of fd {}", name, fd);
        return value;
    };
    auto family = intOption(SO_DOMAIN, "SO_DOMAIN");
    if (!family)
        return std::unexpected(family.error());
    auto type = intOption(SO_TYPE, "SO_TYPE");
    if (!type)
        return std::unexpected(type.error());
    auto listening = intOption(SO_ACCEPTCONN, "SO_ACCEPTCONN");
    if (!listening)
        return std::unexpected(listening.error());
    info.family = *family;
    info.type = *type;
    info.listening = *listening != 0;

    if (info.family != AF_UNIX)
        return info;

    sockaddr_un addr{};
    socklen_t length = sizeof(addr);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) < 0)
        return failErrno("Failed to read the address of fd {}", fd);
    constexpr size_t pathOffset = offsetof(sockaddr_un, sun_path);
    if (length <= pathOffset)
        return info; // unnamed (socketpair, or a client that never bound)
    size_t pathLength = std::min<size_t>(length - pathOffset, sizeof(addr.sun_path));
    if (addr.sun_path[0] == '\0')
        info.address = "@" + std::string(addr.sun_path + 1, pathLength - 1);
    else
        info.address = std::string(addr.sun_path, ::strnlen(addr.sun_path, pathLength));
    // The socket file's mode and owner (what SocketMode=, SocketUser=, SocketGroup= set) are those of the
    // inode at the path: the socket fd's own fstat() reports the sockfs inode, not the file.
    if (!info.address.empty() && info.address.front() == '/') {
        struct stat file {};
        if (::stat(info.address.c_str(), &file) == 0 && S_ISSOCK(file.st_mode))
            info.file = SocketInfo::File{
                .mode = static_cast<mode_t>(file.st_mode & 07777), .uid = file.st_uid, .gid = file.st_gid};
    }
    return info;
}

} // namespace svckit

namespace svckit::internal {

ListenEnvironment ListenEnvironment::read(bool unset) {
    ListenEnvironment env{
        .pid = environmentValue("LISTEN_PID"),
        .fds = environmentValue("LISTEN_FDS"),
        .fdNames = environmentValue("LISTEN_FDNAMES"),
        .pidfdId = environmentValue("LISTEN_PIDFDID"),
    };
    if (unset) {
        // Children must not believe the fds are meant for them (they could not be: LISTEN_PID is ours).
        ::unsetenv("LISTEN_PID");
        ::unsetenv("LISTEN_FDS");
        ::unsetenv("LISTEN_FDNAMES");
        ::unsetenv("LISTEN_PIDFDID");
    }
    return env;
}

std::optional<uint64_t> ownPidfdId() {
    // The raw syscall: glibc 2.43's <sys/pidfd.h> declares pidfd_open() without C linkage for C++.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    if (!pidfd)
        return std::nullopt;
    // Before pidfs (Linux 6.9) every pidfd shares one anonymous inode: its number identifies nothing, and
    // systemd does not set LISTEN_PIDFDID then.
    struct statfs fs {};
    if (::fstatfs(pidfd.get(), &fs) < 0 || static_cast<unsigned long>(fs.f_type) != pidfsMagic)
        return std::nullopt;
    struct stat st {};
    if (::fstat(pidfd.get(), &st) < 0)
        return std::nullopt;
    return static_cast<uint64_t>(st.st_ino);
}

Result<Activation> activationFromValues(const ListenEnvironment& env, pid_t self,
                                        std::optional<uint64_t> selfPidfdId) {
    Activation activation;
    if (!env.pid) {
        if (env.fds)
            activation.ignoredReason_ = "LISTEN_FDS is set but LISTEN_PID is not";
        return activation;
    }
    auto pid = parseDecimal<pid_t>(*env.pid);
    if (!pid || *pid <= 0)
        return fail(EINVAL, "Invalid LISTEN_PID='{}': not a process id", *env.pid);
    if (*pid != self) {
        activation.ignoredReason_ = std::format("LISTEN_PID={} is not this process ({})", *pid, self);
        return activation;
    }

    if (env.pidfdId) {
        auto pidfdId = parseDecimal<uint64_t>(*env.pidfdId);
        if (!pidfdId)
            return fail(EINVAL, "Invalid LISTEN_PIDFDID='{}': not a pidfd id", *env.pidfdId);
        // The PID matched, but PIDs are reused: the pidfd id tells whether the fds were meant for this very
        // process. Without pidfs we cannot tell, and trust LISTEN_PID as libsystemd does.
        if (selfPidfdId && *pidfdId != *selfPidfdId) {
            activation.ignoredReason_ = std::format(
                "LISTEN_PIDFDID={} is not this process (its pidfd id is {})", *pidfdId, *selfPidfdId);
            return activation;
        }
    }

    if (!env.fds) {
        activation.ignoredReason_ = "LISTEN_PID names this process but LISTEN_FDS is not set";
        return activation;
    }
    auto count = parseDecimal<int>(*env.fds);
    if (!count || *count <= 0 || *count > INT_MAX - listenFdsStart)
        return fail(EINVAL, "Invalid LISTEN_FDS='{}': not a positive number of fds", *env.fds);

    // Before allocating anything per fd: LISTEN_FDS comes from the environment, and a huge count would
    // otherwise make a name and a SocketInfo for each fd before the first missing one is noticed. The fds are
    // 3 .. 3+count-1 in the fd table; if the last one is not open, the count cannot be right (the fd table
    // bounds how many there can be, so one fcntl() on the last bounds what follows).
    if (int last = listenFdsStart + *count - 1; ::fcntl(last, F_GETFD) < 0)
        return failErrno("Failed to take passed fd {} (the last of LISTEN_FDS={})", last, *count);

    std::vector<std::string> names;
    if (env.fdNames) {
        names = splitNames(*env.fdNames);
        if (names.size() != static_cast<size_t>(*count))
            return fail(EINVAL, "Invalid LISTEN_FDNAMES='{}': it names {} fds but LISTEN_FDS={}",
                        *env.fdNames, names.size(), *count);
    }

    // Check every fd before owning any, so that an error leaves the fds as they were (not closed). Without
    // LISTEN_FDNAMES nothing is allocated per fd before its check: a LISTEN_FDS of billions stops at the
    // first fd that is not open.
    std::vector<SocketInfo> infos;
    for (int i = 0; i < *count; ++i) {
        int fd = listenFdsStart + i;
        if (::fcntl(fd, F_GETFD) < 0)
            return failErrno("Failed to take passed fd {} ('{}')", fd,
                             names.empty() ? "unknown" : names[static_cast<size_t>(i)]);
        auto info = inspectSocket(fd);
        if (!info)
            return std::unexpected(info.error());
        infos.push_back(std::move(*info));
    }
    if (!env.fdNames)
        names.assign(static_cast<size_t>(*count), "unknown");

    activation.fds_.reserve(names.size());
    for (int i = 0; i < *count; ++i) {
        int fd = listenFdsStart + i;
        int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        activation.fds_.push_back(ActivatedFd{
            .fd = UniqueFd(fd),
            .name = std::move(names[static_cast<size_t>(i)]),
            .info = std::move(infos[static_cast<size_t>(i)]),
        });
    }
    activation.activated_ = true;
    return activation;
}

} // namespace svckit::internal

namespace svckit {

Result<Activation> Activation::fromEnvironment() {
    internal::ListenEnvironment env = internal::ListenEnvironment::read(true);
    std::optional<uint64_t> selfPidfdId;
    if (env.pidfdId)
        selfPidfdId = internal::ownPidfdId();
    return internal::activationFromValues(env, ::getpid(), selfPidfdId);
}

ActivatedFd* Activation::find(std::string_view name) noexcept {
    for (ActivatedFd& fd : fds_)
        if (fd.name == name)
            return &fd;
    return nullptr;
}

std::vector<ActivatedFd> Activation::take(std::string_view name) {
    // Allocate before moving anything, so that running out of memory cannot lose an fd half-way.
    std::vector<ActivatedFd> taken;
    std::vector<ActivatedFd> kept;
    taken.reserve(fds_.size());
    kept.reserve(fds_.size());
    for (ActivatedFd& fd : fds_)
        (fd.name == name ? taken : kept).push_back(std::move(fd));
    fds_ = std::move(kept);
    return taken;
}

Result<UniqueFd> bindSocket(const SocketSpec& spec) {
    auto address = parseAddress(spec.address);
    if (!address)
        return std::unexpected(address.error());
    int type = socketTypeOf(spec.type);

    if (!address->abstract) {
        if (auto removed = removeStaleSocket(spec.address, *address, type); !removed)
            return std::unexpected(removed.error());
    }

    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        return failErrno("Failed to create a socket for '{}'", spec.address);

    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address->addr), address->length) < 0) {
        if (errno == ENOENT && !address->abstract) {
            // The directory is the unit's (RuntimeDirectory=) or the administrator's to create, with its
            // owner and mode; creating it here would guess both.
            std::string_view path = spec.address;
            std::string_view dir = path.substr(0, std::max<size_t>(path.rfind('/'), 1));
            return failErrno("Failed to bind '{}' (the directory '{}' must exist)", spec.address, dir);
        }
        return failErrno("Failed to bind '{}'", spec.address);
    }

    // From here on a failure removes the file we created, so a retry does not find it in the way.
    auto cleanup = [&](Error error) -> Result<UniqueFd> {
        if (!address->abstract)
            ::unlink(spec.address.c_str());
        return std::unexpected(std::move(error));
    };

    // A socket's inode cannot be fchmod()ed through the socket fd, only through its path. No client can
    // connect before listen(), so the window with the umask's mode is harmless.
    if (!address->abstract && ::chmod(spec.address.c_str(), spec.mode) < 0)
        return cleanup(Error::fromErrno(errno, std::format("Failed to set the mode of '{}'", spec.address)));

    // Before listen(): a client that connects must already inherit the options (Linux >= 6.16); systemd sets
    // them after listen() and leaves a gap, which acceptConnection() has to cover.
    if (auto applied = applyOptions(fd.get(), spec); !applied)
        return cleanup(applied.error());

    if (::listen(fd.get(), SOMAXCONN) < 0)
        return cleanup(Error::fromErrno(errno, std::format("Failed to listen on '{}'", spec.address)));
    return fd;
}

} // namespace svckit
