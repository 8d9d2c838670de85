#include <svckit/identity.hpp>

#include <svckit/internal/identity.hpp>
#include <svckit/internal/linux_socket.hpp>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/ioctl.h>
#include <unistd.h>

namespace svckit {
namespace {

// PIDFD_GET_INFO (Linux 6.13) in its first published layout (PIDFD_INFO_SIZE_VER0, 64 bytes). The kernel
// reads the struct's size from the ioctl number, so this size works on every kernel with the ioctl and we
// need no newer field. Declared here because <linux/pidfd.h> and glibc's <sys/pidfd.h> define struct
// pidfd_info differently (they cannot both be included) and older versions of either lack it.
struct PidfdInfo {
    uint64_t mask;
    uint64_t cgroupId;
    uint32_t pid;
    uint32_t tgid;
    uint32_t ppid;
    uint32_t ruid;
    uint32_t rgid;
    uint32_t euid;
    uint32_t egid;
    uint32_t suid;
    uint32_t sgid;
    uint32_t fsuid;
    uint32_t fsgid;
    int32_t exitCode;
};
static_assert(sizeof(PidfdInfo) == 64, "PIDFD_INFO_SIZE_VER0");

constexpr unsigned long pidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);
constexpr uint64_t pidfdInfoPid = 1u << 0;
constexpr uint64_t pidfdInfoCreds = 1u << 1;
constexpr uint64_t pidfdInfoCgroupId = 1u << 2;

std::unexpected<Error> processExited() {
    return fail(ESRCH, "Failed to read process facts: the process has exited");
}

// PIDFD_GET_INFO, or nullopt when this kernel (or this kind of pidfd: before pidfs, Linux 6.9, pidfds were
// anonymous inodes) has no such ioctl. ESRCH when the process has been reaped or is outside our pid
// namespace.
Result<std::optional<PidfdInfo>> queryPidfdInfo(int pidfd, uint64_t mask) {
    PidfdInfo info{};
    info.mask = mask;
    if (::ioctl(pidfd, pidfdGetInfo, &info) < 0) {
        if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP)
            return std::nullopt;
        return failErrno("Failed to query pidfd {} with PIDFD_GET_INFO", pidfd);
    }
    return info;
}

// Reads a whole (small, /proc) file relative to a directory fd.
Result<std::string> readFileAt(int dirFd, const char* name) {
    int raw = ::openat(dirFd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (raw < 0)
        return failErrno("Failed to open '{}'", name);
    UniqueFd fd(raw);
    std::string text;
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return failErrno("Failed to read '{}'", name);
        }
        if (n == 0)
            return text;
        text.append(chunk, static_cast<size_t>(n));
    }
}

// The value of the "Key:" line of a /proc text file, or nullopt.
std::optional<std::string_view> lineValue(std::string_view text, std::string_view key) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        if (line.starts_with(key))
            return line.substr(key.size());
        pos = end + 1;
    }
    return std::nullopt;
}

// The first `count` whitespace-separated unsigned numbers of a /proc status value ("0\t0\t0\t0").
template <typename T>
bool parseIds(std::string_view value, T* out, size_t count) {
    const char* p = value.data();
    const char* end = value.data() + value.size();
    for (size_t i = 0; i < count; ++i) {
        while (p < end && (*p == ' ' || *p == '\t'))
            ++p;
        auto [next, ec] = std::from_chars(p, end, out[i]);
        if (ec != std::errc())
            return false;
        p = next;
    }
    return true;
}

// The pid of a pidfd from /proc/self/fdinfo, for kernels without PIDFD_GET_INFO.
Result<pid_t> pidFromFdinfo(int pidfd) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    auto text = readFileAt(AT_FDCWD, path);
    if (!text)
        return std::unexpected(text.error());
    auto value = lineValue(*text, "Pid:");
    if (!value)
        return fail(EBADF, "Failed to read the pid of descriptor {}: not a pidfd", pidfd);
    while (!value->empty() && (value->front() == ' ' || value->front() == '\t'))
        value->remove_prefix(1);
    pid_t pid = 0;
    auto [next, ec] = std::from_chars(value->data(), value->data() + value->size(), pid);
    if (ec != std::errc())
        return fail(EIO, "Failed to parse the pid of pidfd {}: '{}'", pidfd, *value);
    // -1: the process has been reaped; 0: it lives in a pid namespace we cannot see. Either way no pid of
    // ours names it any more.
    if (pid <= 0)
        return fail(ESRCH, "Failed to read the pid of pidfd {}: the process has exited", pidfd);
    return pid;
}

// Credentials from /proc/PID/status, for kernels without PIDFD_GET_INFO.
Result<void> readStatusCredentials(int procDir, ProcessFacts& facts) {
    auto text = readFileAt(procDir, "status");
    if (!text)
        return std::unexpected(text.error());
    uid_t uids[2];
    gid_t gids[2];
    auto uidLine = lineValue(*text, "Uid:");
    auto gidLine = lineValue(*text, "Gid:");
    if (!uidLine || !gidLine || !parseIds(*uidLine, uids, 2) || !parseIds(*gidLine, gids, 2))
        return fail(EIO, "Failed to parse the Uid:/Gid: lines of /proc/{}/status", facts.pid);
    facts.uid = uids[0];
    facts.euid = uids[1];
    facts.gid = gids[0];
    facts.egid = gids[1];
    return {};
}

// Whether the process has begun to exit: its (only) thread is in do_exit(), past the point where it dropped
// its memory (so /proc/PID/exe no longer resolves) but before it becomes a zombie and its pidfd turns
// readable. Read from /proc/PID/stat: PF_EXITING in the flags field, and the thread count.
Result<bool> isExiting(int procDir) {
    constexpr unsigned long pfExiting = 0x00000004;
    auto text = readFileAt(procDir, "stat");
    if (!text)
        return std::unexpected(text.error());
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
    size_t close = text->rfind(')');
    if (close == std::string::npos)
        return fail(EIO, "Failed to parse /proc/PID/stat");
    std::string_view rest = std::string_view(*text).substr(close + 1);
    std::string_view fields[18];
    size_t count = 0;
    size_t pos = 0;
    while (count < 18) {
        while (pos < rest.size() && rest[pos] == ' ')
            ++pos;
        if (pos >= rest.size())
            break;
        size_t end = rest.find(' ', pos);
        if (end == std::string_view::npos)
            end = rest.size();
        fields[count++] = rest.substr(pos, end - pos);
        pos = end;
    }
    unsigned long flags = 0;
    long threads = 0;
    // fields[0] is field 3 (state): flags is field 9, num_threads field 20.
    if (count < 18 ||
        std::from_chars(fields[6].data(), fields[6].data() + fields[6].size(), flags).ec != std::errc() ||
        std::from_chars(fields[17].data(), fields[17].data() + fields[17].size(), threads).ec != std::errc())
        return fail(EIO, "Failed to parse /proc/PID/stat");
    // With other threads still running, an exited main thread leaves a live process whose exe is unreadable.
    return (flags & pfExiting) != 0 && threads <= 1;
}

Result<std::string> readExe(int procDir) {
    std::string target(256, '\0');
    for (;;) {
        ssize_t n = ::readlinkat(procDir, "exe", target.data(), target.size());
        if (n < 0)
            return failErrno("Failed to read the exe link");
        if (static_cast<size_t>(n) < target.size()) {
            target.resize(static_cast<size_t>(n));
            return target;
        }
        // Possibly truncated: readlink does not say, so retry with more room.
        if (target.size() >= 65536)
            return fail(ENAMETOOLONG, "Failed to read the exe link: too long");
        target.resize(target.size() * 2);
    }
}

// Everything read by PID. Runs between the two liveness checks of readProcessFacts().
Result<void> readByPid(ProcessFacts& facts) {
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d", static_cast<int>(facts.pid));
    // One directory fd for all reads: besides saving path building, an open /proc/PID stays bound to the
    // process it was opened for, so reads through it fail rather than wander to a new owner of the PID.
    int raw = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (raw < 0)
        return failErrno("Failed to open '{}'", path);
    UniqueFd procDir(raw);

    if (!facts.uid || !facts.gid || !facts.euid || !facts.egid) {
        if (auto r = readStatusCredentials(procDir.get(), facts); !r)
            return r;
    }

    auto cgroups = readFileAt(procDir.get(), "cgroup");
    if (!cgroups)
        return std::unexpected(
            cgroups.error().withContext(std::format("Failed to read the cgroup of pid {}", facts.pid)));
    // Only the cgroup v2 ("0::") hierarchy names units; a host without one leaves cgroup and unit absent.
    if (auto line = lineValue(*cgroups, "0::")) {
        facts.cgroup = std::string(*line);
        facts.unit = internal::unitOfCgroup(*facts.cgroup);
    }

    // Kernel threads have no exe, and another user's process may hide it from us: not an error. But a process
    // that has started to exit loses its exe while its pidfd still says "alive": that is a partial read of an
    // exiting process, and is reported as its exit.
    auto exe = readExe(procDir.get());
    if (exe) {
        facts.exe = std::move(*exe);
    } else if (exe.error().code() == ENOENT) {
        auto exiting = isExiting(procDir.get());
        if (!exiting)
            return std::unexpected(exiting.error());
        if (*exiting)
            return processExited();
    }

    auto comm = readFileAt(procDir.get(), "comm");
    if (!comm)
        return std::unexpected(
            comm.error().withContext(std::format("Failed to read the comm of pid {}", facts.pid)));
    if (comm->ends_with('\n'))
        comm->pop_back();
    facts.comm = std::move(*comm);
    return {};
}

// Unit names as systemd's unit_name_is_valid() accepts them (plain, or an instance when allowed).
bool isValidUnitName(std::string_view name, bool allowInstance) {
    if (name.empty() || name.size() >= 256)
        return false;
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0)
        return false;
    std::string_view prefix = name.substr(0, dot);
    size_t at = std::string_view::npos;
    for (size_t i = 0; i < prefix.size(); ++i) {
        char c = prefix[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
                  c == '-' || c == '_' || c == '.' || c == '\\' || c == '@';
        if (!ok)
            return false;
        if (c == '@' && at == std::string_view::npos)
            at = i;
    }
    if (at == std::string_view::npos)
        return true;
    // A template ("foo@.service") names no running unit; "@foo.service" is no name at all.
    return allowInstance && at != 0 && at + 1 < prefix.size();
}

// systemd escapes a cgroup name that could clash with the kernel's own files by prefixing '_' (cg_escape()).
std::string_view unescapeCgroupName(std::string_view name) {
    if (name.starts_with('_'))
        name.remove_prefix(1);
    return name;
}

} // namespace

std::optional<std::string> internal::unitOfCgroup(std::string_view cgroupPath) {
    size_t pos = 0;
    for (;;) {
        while (pos < cgroupPath.size() && cgroupPath[pos] == '/')
            ++pos;
        if (pos >= cgroupPath.size())
            return {};
        size_t end = cgroupPath.find('/', pos);
        if (end == std::string_view::npos)
            end = cgroupPath.size();
        std::string_view name = unescapeCgroupName(cgroupPath.substr(pos, end - pos));
        if (name.ends_with(".slice") && isValidUnitName(name, false)) {
            pos = end;
            continue;
        }
        // The first component below the slices decides: a unit there, or none at all (a unit's own
        // sub-cgroups, like "app.slice/x.service" under user@1000.service, belong to that unit).
        if ((name.ends_with(".service") || name.ends_with(".scope")) && isValidUnitName(name, true))
            return std::string(name);
        return {};
    }
}

Result<pid_t> pidOfPidfd(int pidfd) {
    if (pidfd < 0)
        return fail(EBADF, "Failed to read the pid of a pidfd: no pidfd");
    auto info = queryPidfdInfo(pidfd, pidfdInfoPid);
    if (!info) {
        if (info.error().code() == ESRCH)
            return fail(ESRCH, "Failed to read the pid of pidfd {}: the process has exited", pidfd);
        return std::unexpected(info.error());
    }
    if (*info && ((*info)->mask & pidfdInfoPid)) {
        if ((*info)->pid == 0)
            return fail(ESRCH, "Failed to read the pid of pidfd {}: the process has exited", pidfd);
        return static_cast<pid_t>((*info)->pid);
    }
    return pidFromFdinfo(pidfd);
}

Result<bool> isAlive(int pidfd) {
    if (pidfd < 0)
        return fail(EBADF, "Failed to poll a pidfd: no pidfd");
    // A pidfd becomes readable when its process exits (for a process pidfd: when the whole thread group has),
    // zombie or reaped alike.
    pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
    for (;;) {
        int n = ::poll(&p, 1, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return failErrno("Failed to poll pidfd {}", pidfd);
        }
        if (p.revents & POLLNVAL)
            return fail(EBADF, "Failed to poll pidfd {}: not an open descriptor", pidfd);
        return (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0;
    }
}

Result<ProcessFacts> readProcessFacts(int pidfd) {
    auto pid = pidOfPidfd(pidfd);
    if (!pid)
        return pid.error().code() == ESRCH
                   ? processExited()
                   : std::unexpected(pid.error().withContext("Failed to read process facts"));
    auto alive = isAlive(pidfd);
    if (!alive)
        return std::unexpected(alive.error().withContext("Failed to read process facts"));
    if (!*alive)
        return processExited();

    ProcessFacts facts;
    facts.pid = *pid;

    // Credentials and cgroup id through the pidfd itself: the kernel answers for the process the pidfd names,
    // so these need no re-validation. CREDS is always filled, CGROUPID when the kernel has cgroups; trust
    // only what the returned mask says was filled.
    auto info = queryPidfdInfo(pidfd, pidfdInfoPid | pidfdInfoCreds | pidfdInfoCgroupId);
    if (!info) {
        if (info.error().code() == ESRCH)
            return processExited();
        return std::unexpected(info.error().withContext("Failed to read process facts"));
    }
    if (*info) {
        const PidfdInfo& i = **info;
        if ((i.mask & pidfdInfoPid) && static_cast<pid_t>(i.pid) != facts.pid)
            return processExited();
        if (i.mask & pidfdInfoCreds) {
            facts.uid = i.ruid;
            facts.gid = i.rgid;
            facts.euid = i.euid;
            facts.egid = i.egid;
        }
        if (i.mask & pidfdInfoCgroupId)
            facts.cgroupId = i.cgroupId;
    }

    // Everything else can only be read by PID, through /proc.
    auto read = readByPid(facts);

    // Re-validate after the reads. A PID is only freed when its process is reaped; until then (running or
    // zombie) no other process can hold it. The process was alive before the reads; if it is still alive now,
    // it was not reaped at any point in between, so every /proc/PID read above was of the process this pidfd
    // names and not of a new owner of a recycled PID. If it has exited meanwhile, the reads may be partial (a
    // zombie has no exe) or, once it was reaped, of another process: discard them all. The pid comparison
    // guards the same property from the pidfd's side.
    auto stillAlive = isAlive(pidfd);
    if (!stillAlive)
        return std::unexpected(stillAlive.error().withContext("Failed to read process facts"));
    if (!*stillAlive)
        return processExited();
    auto pidNow = pidOfPidfd(pidfd);
    if (!pidNow) {
        if (pidNow.error().code() == ESRCH)
            return processExited();
        return std::unexpected(pidNow.error().withContext("Failed to read process facts"));
    }
    if (*pidNow != facts.pid)
        return processExited();

    if (!read) {
        if (read.error().code() == ESRCH)
            return processExited();
        return std::unexpected(read.error().withContext("Failed to read process facts"));
    }
    return facts;
}

} // namespace svckit
