// tests/unit/activation_test_support.hpp — helpers for the activation layer's tests: running checks in a
// forked child, where fds 3, 4, ... can be set up the way systemd passes them without clobbering the test
// process's own descriptors; real AF_UNIX sockets; sending fds; counting open fds to prove nothing leaks.
#pragma once

#include <svckit/unique_fd.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <format>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::test {

// Inside a child: return a failure description from the enclosing lambda when a condition does not hold.
#define CHILD_CHECK(condition)                                                                               \
    do {                                                                                                     \
        if (!(condition))                                                                                    \
            return std::format("{}:{}: check failed: {}", __FILE__, __LINE__, #condition);                   \
    } while (0)
#define CHILD_CHECK_MSG(condition, ...)                                                                      \
    do {                                                                                                     \
        if (!(condition))                                                                                    \
            return std::format("{}:{}: check failed: {}: {}", __FILE__, __LINE__, #condition,                \
                               std::format(__VA_ARGS__));                                                    \
    } while (0)

// Runs `body` in a forked child and returns what it reported: "" when every check held, otherwise the failure
// (or how the child died). The child ends with _exit(), so nothing of the test process runs twice.
inline std::string runInChild(const std::function<std::string()>& body) {
    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC) < 0)
        return std::format("pipe2: {}", std::strerror(errno));
    UniqueFd readEnd(pipeFds[0]);
    UniqueFd writeEnd(pipeFds[1]);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0)
        return std::format("fork: {}", std::strerror(errno));
    if (pid == 0) {
        readEnd.reset();
        // Far away from 3, 4, ... which the body fills with the fds it passes.
        int report = ::fcntl(writeEnd.get(), F_DUPFD_CLOEXEC, 500);
        writeEnd.reset();
        std::string verdict;
        try {
            verdict = body();
        } catch (const std::exception& e) {
            verdict = std::format("exception: {}", e.what());
        } catch (...) {
            verdict = "unknown exception";
        }
        size_t done = 0;
        while (done < verdict.size()) {
            ssize_t n = ::write(report, verdict.data() + done, verdict.size() - done);
            if (n <= 0)
                break;
            done += static_cast<size_t>(n);
        }
        ::_exit(verdict.empty() ? 0 : 1);
    }
    writeEnd.reset();
    std::string verdict;
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(readEnd.get(), chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        verdict.append(chunk, static_cast<size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        return std::format("child killed by signal {} {}", WTERMSIG(status), verdict);
    if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && verdict.empty()))
        return std::format("child exited with status {}", WEXITSTATUS(status));
    return verdict;
}

// Puts the given descriptors on 3, 4, ... as a service manager would (without FD_CLOEXEC) and closes the
// originals. Only for a forked child: whatever was on 3, 4, ... is replaced.
inline std::string placeAsPassedFds(std::vector<UniqueFd> fds) {
    std::vector<int> high;
    for (UniqueFd& fd : fds) {
        int copy = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 600);
        if (copy < 0)
            return std::format("F_DUPFD: {}", std::strerror(errno));
        high.push_back(copy);
        fd.reset();
    }
    for (size_t i = 0; i < high.size(); ++i) {
        if (::dup2(high[i], 3 + static_cast<int>(i)) < 0)
            return std::format("dup2: {}", std::strerror(errno));
        ::close(high[i]);
    }
    return {};
}

inline bool isOpen(int fd) {
    return ::fcntl(fd, F_GETFD) >= 0;
}
inline bool hasCloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

// A unique abstract address for this test process: "@svckit-test-<pid>-<n>".
inline std::string uniqueAbstractAddress(std::string_view what) {
    static std::atomic<int> counter{0};
    return std::format("@svckit-test-{}-{}-{}", ::getpid(), what, counter.fetch_add(1));
}

inline sockaddr_un unixAddress(std::string_view address, socklen_t& length) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address.data(), address.size());
    if (!address.empty() && address.front() == '@') {
        addr.sun_path[0] = '\0';
        length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
    } else {
        length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + 1);
    }
    return addr;
}

// A socket bound to `address` with the kernel's default options; listening unless `listen` is false.
inline UniqueFd boundSocket(int type, std::string_view address, bool listen = true) {
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!fd)
        return fd;
    socklen_t length = 0;
    sockaddr_un addr = unixAddress(address, length);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) < 0)
        return UniqueFd();
    if (listen && ::listen(fd.get(), 16) < 0)
        return UniqueFd();
    return fd;
}

inline UniqueFd connectTo(int type, std::string_view address) {
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!fd)
        return fd;
    socklen_t length = 0;
    sockaddr_un addr = unixAddress(address, length);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) < 0)
        return UniqueFd();
    return fd;
}

// sendmsg() of `payload` with `fds` as SCM_RIGHTS; returns 0 or the errno.
inline int sendWithFds(int fd, std::string_view payload, const std::vector<int>& fds) {
    iovec iov{.iov_base = const_cast<char*>(payload.data()), .iov_len = payload.size()};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    std::vector<std::byte> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
        header.msg_control = control.data();
        header.msg_controllen = control.size();
        cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(fd, &header, MSG_NOSIGNAL) < 0 ? errno : 0;
}

// The number of open descriptors of this process: equal before and after means nothing leaked.
inline size_t countOpenFds() {
    size_t count = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir)
        return 0;
    while (dirent* entry = ::readdir(dir))
        if (entry->d_name[0] != '.')
            ++count;
    ::closedir(dir);
    return count;
}

// The number of open descriptors once it is `expected`, or after 5 s: svckit closes the fds callers pass on a
// background thread (closeAsync), so a count taken right after it dropped them may still include them.
inline size_t openFdsSoon(size_t expected) {
    for (int i = 0; i < 1000 && countOpenFds() != expected; ++i)
        ::usleep(5000);
    return countOpenFds();
}

inline bool kernelAtLeast(int major, int minor) {
    utsname name{};
    if (::uname(&name) < 0)
        return false;
    int haveMajor = 0, haveMinor = 0;
    if (std::sscanf(name.release, "%d.%d", &haveMajor, &haveMinor) != 2)
        return false;
    return haveMajor > major || (haveMajor == major && haveMinor >= minor);
}

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "svckit-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()))
            path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        if (!path_.empty())
            std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

} // namespace svckit::test
