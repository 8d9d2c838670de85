// Facts about a process read through its pidfd: of this process, of children, of a child in a cgroup of its
// own, and — the point of it all — never of a process that reused the pid of the one the pidfd names.
#include <svckit/identity.hpp>

#include <svckit/internal/identity.hpp>

#include <gtest/gtest.h>

#include <systemd/sd-login.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sched.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace svckit;

namespace {

// pidfd_open(2) by system call: glibc 2.43's <sys/pidfd.h> declares it without extern "C", so C++ cannot link
// it.
int pidfdOpen(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

struct FdPair {
    UniqueFd first;
    UniqueFd second;
};

FdPair makePipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string withoutNewline(std::string s) {
    if (!s.empty() && s.back() == '\n')
        s.pop_back();
    return s;
}

std::string readLink(const std::string& path) {
    char buffer[4096];
    ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
    return n < 0 ? std::string() : std::string(buffer, static_cast<size_t>(n));
}

// The cgroup v2 path in a /proc/PID/cgroup file: its "0::" line.
std::string unifiedCgroupOf(const std::string& procCgroupFile) {
    std::istringstream in(readFile(procCgroupFile));
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("0::"))
            return line.substr(3);
    return {};
}

// Where the cgroup v2 hierarchy is mounted (with our cgroup namespace's root at its root), or "".
std::string cgroup2Mount() {
    std::istringstream in(readFile("/proc/self/mountinfo"));
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::string id, parent, device, root, mountPoint;
        fields >> id >> parent >> device >> root >> mountPoint;
        size_t separator = line.find(" - ");
        if (separator != std::string::npos && line.compare(separator + 3, 8, "cgroup2 ") == 0 && root == "/")
            return mountPoint;
    }
    return {};
}

UniqueFd pidfdOf(pid_t pid) {
    UniqueFd fd(pidfdOpen(pid));
    if (!fd)
        ADD_FAILURE() << "pidfd_open(" << pid << "): " << std::strerror(errno);
    return fd;
}

// A child that names itself `comm`, reports ready on a pipe, and lives until told to go (its pipe closes).
// Killed and reaped when the test ends, however it ends.
class LiveChild {
public:
    explicit LiveChild(const char* comm) {
        auto [readyRead, readyWrite] = makePipe();
        auto [exitRead, exitWrite] = makePipe();
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_NAME, comm);
            ::write(readyWrite.get(), "r", 1);
            exitWrite.reset(); // or our own copy of it would keep the pipe from ever reaching EOF
            char byte;
            while (::read(exitRead.get(), &byte, 1) < 0 && errno == EINTR) {
            }
            ::_exit(0);
        }
        if (pid_ < 0) {
            ADD_FAILURE() << "fork: " << std::strerror(errno);
            return;
        }
        readyWrite.reset();
        char byte;
        if (::read(readyRead.get(), &byte, 1) != 1)
            ADD_FAILURE() << "the child did not get ready";
        exit_ = std::move(exitWrite);
    }
    LiveChild(const LiveChild&) = delete;
    LiveChild& operator=(const LiveChild&) = delete;
    ~LiveChild() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    [[nodiscard]] pid_t pid() const { return pid_; }
    // Lets the child exit and reaps it.
    void finish() {
        exit_.reset();
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
    UniqueFd exit_;
};

// ---- The PID-reuse scenario
// --------------------------------------------------------------------------------
//
// It may have to run in a child (inside a fresh pid namespace), where GoogleTest assertions cannot report; so
// it returns what went wrong as text and the test turns that into failures.

struct ScenarioOutcome {
    std::string skipped;               // non-empty: why the scenario could not run
    std::vector<std::string> failures; // every expectation that did not hold
};

// struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1), declared here because libc headers differ.
struct CloneArgs {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t childTid;
    uint64_t parentTid;
    uint64_t exitSignal;
    uint64_t stack;
    uint64_t stackSize;
    uint64_t tls;
    uint64_t setTid;
    uint64_t setTidSize;
};
static_assert(sizeof(CloneArgs) == 80);

constexpr char reuseComm[] = "svckit-pid-b";

// Creates child B with pid `wanted` (clone3 with set_tid). B names itself reuseComm, reports ready on
// `readyWrite`, and exits when `exitRead` reads EOF (it closes its copy of `exitWrite`). Returns B's pid, or
// -errno.
pid_t cloneWithPid(pid_t wanted, int readyWrite, int exitRead, int exitWrite) {
    pid_t tid[1] = {wanted};
    CloneArgs args{};
    args.exitSignal = SIGCHLD;
    args.setTid = reinterpret_cast<uintptr_t>(tid);
    args.setTidSize = 1;
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    if (r < 0)
        return -errno;
    if (r == 0) {
        // The child of a raw clone3: libc does not know it forked, so only plain system calls from here on.
        ::prctl(PR_SET_NAME, reuseComm);
        ::write(readyWrite, "r", 1);
        ::close(exitWrite);
        char byte;
        while (::read(exitRead, &byte, 1) < 0 && errno == EINTR) {
        }
        ::_exit(0);
    }
    return static_cast<pid_t>(r);
}

// `alone`: no other process can create processes in this pid namespace (a fresh one of our own), so A's
// freed pid cannot be taken by anyone else and one attempt must do. Otherwise another process on the machine
// may take A's pid in the instant between reaping A and cloning B, and it is tried a few times.
ScenarioOutcome pidReuseScenario(bool alone) {
    ScenarioOutcome out;
    auto expect = [&out](bool ok, std::string what) {
        if (!ok)
            out.failures.push_back(std::move(what));
    };

    const int attempts = alone ? 1 : 5;
    for (int attempt = 0; attempt < attempts; ++attempt) {
        // Child A exits at once; we keep a pidfd on it, then reap it, which frees its pid.
        pid_t a = ::fork();
        if (a == 0)
            ::_exit(0);
        if (a < 0) {
            out.failures.push_back(std::string("fork: ") + std::strerror(errno));
            return out;
        }
        UniqueFd pidfdA(pidfdOpen(a));
        int saved = errno;
        ::waitpid(a, nullptr, 0);
        if (!pidfdA) {
            out.failures.push_back(std::string("pidfd_open(A): ") + std::strerror(saved));
            return out;
        }

        auto [readyRead, readyWrite] = makePipe();
        auto [exitRead, exitWrite] = makePipe();
        pid_t b = cloneWithPid(a, readyWrite.get(), exitRead.get(), exitWrite.get());
        if (b == -EEXIST && alone) {
            out.failures.push_back(std::format("pid {} was taken again in a pid namespace of our own", a));
            return out;
        }
        if (b == -EEXIST)
            continue;
        if (b < 0) {
            out.skipped = std::string("clone3 with set_tid: ") + std::strerror(-b);
            return out;
        }
        readyWrite.reset();
        char byte;
        expect(::read(readyRead.get(), &byte, 1) == 1, "child B did not get ready");

        expect(b == a, std::format("B has pid {}, not A's pid {}", b, a));
        // The naive way, by PID, is fooled: /proc/PID now is B.
        std::string byPid = withoutNewline(readFile(std::format("/proc/{}/comm", a)));
        expect(byPid == reuseComm, std::format("/proc/{}/comm is '{}', so the pid was not reused", a, byPid));

        auto alive = isAlive(pidfdA.get());
        expect(alive && !*alive, "isAlive(pidfd of A) is not false");
        auto pid = pidOfPidfd(pidfdA.get());
        expect(!pid && pid.error().code() == ESRCH, pid ? std::format("pidOfPidfd(pidfd of A) gave {}", *pid)
                                                        : "pidOfPidfd(pidfd of A): " + pid.error().message());
        auto factsA = readProcessFacts(pidfdA.get());
        expect(!factsA,
               factsA ? std::format("readProcessFacts(pidfd of A) reported pid {} comm '{}' (B's facts)",
                                    factsA->pid, factsA->comm.value_or(""))
                      : std::string());
        expect(factsA || factsA.error().code() == ESRCH,
               factsA ? std::string() : "readProcessFacts(pidfd of A): " + factsA.error().message());

        UniqueFd pidfdB(pidfdOpen(b));
        expect(pidfdB.isValid(), std::string("pidfd_open(B): ") + std::strerror(errno));
        if (pidfdB) {
            auto factsB = readProcessFacts(pidfdB.get());
            expect(factsB && factsB->pid == b && factsB->comm == reuseComm,
                   factsB ? std::format("readProcessFacts(pidfd of B) reported pid {} comm '{}'", factsB->pid,
                                        factsB->comm.value_or(""))
                          : "readProcessFacts(pidfd of B): " + factsB.error().message());
        }

        exitWrite.reset();
        ::waitpid(b, nullptr, 0);
        return out;
    }
    out.skipped = "another process kept taking the freed pid";
    return out;
}

// Runs the scenario as init of a fresh pid namespace (with a /proc of that namespace, in a mount namespace of
// its own): no other process lives there, so nothing can take the freed pid, and the run is deterministic.
// Needs CAP_SYS_ADMIN (root): set_tid needs it over the namespace.
ScenarioOutcome pidReuseScenarioInNewNamespace() {
    auto [resultRead, resultWrite] = makePipe();
    pid_t helper = ::fork();
    if (helper == 0) {
        auto report = [&](const std::string& text) {
            ::write(resultWrite.get(), text.data(), text.size());
            ::_exit(0);
        };
        if (::unshare(CLONE_NEWPID | CLONE_NEWNS) < 0)
            report(std::string("SKIP unshare(CLONE_NEWPID|CLONE_NEWNS): ") + std::strerror(errno));
        // Keep the new /proc from propagating back to our mount namespace. "/proc", not "/": in a chroot the
        // root directory need not be a mount point.
        if (::mount(nullptr, "/proc", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
            report(std::string("SKIP making /proc private: ") + std::strerror(errno));
        pid_t init = ::fork();
        if (init == 0) {
            // /proc must show this namespace's pids, or reading by PID would read the wrong processes.
            if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
                report(std::string("SKIP mounting /proc for the new pid namespace: ") + std::strerror(errno));
            ScenarioOutcome outcome = pidReuseScenario(/*alone=*/true);
            std::string text = outcome.skipped.empty() ? "RAN" : "SKIP " + outcome.skipped;
            for (const auto& failure : outcome.failures)
                text += "\nFAIL " + failure;
            report(text);
        }
        ::waitpid(init, nullptr, 0);
        ::_exit(0);
    }
    resultWrite.reset();
    ScenarioOutcome outcome;
    if (helper < 0) {
        outcome.skipped = std::string("fork: ") + std::strerror(errno);
        return outcome;
    }
    std::string text;
    char chunk[512];
    for (ssize_t n; (n = ::read(resultRead.get(), chunk, sizeof chunk)) > 0;)
        text.append(chunk, static_cast<size_t>(n));
    ::waitpid(helper, nullptr, 0);
    std::istringstream lines(text);
    bool ran = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("SKIP "))
            outcome.skipped = line.substr(5);
        else if (line.starts_with("FAIL "))
            outcome.failures.push_back(line.substr(5));
        else if (line == "RAN")
            ran = true;
    }
    if (!ran && outcome.skipped.empty())
        outcome.failures.push_back("the scenario in a new pid namespace reported nothing: '" + text + "'");
    return outcome;
}

} // namespace

TEST(ProcessFacts, DescribesThisProcess) {
    UniqueFd self = pidfdOf(::getpid());
    ASSERT_TRUE(self.isValid());

    auto facts = readProcessFacts(self.get());
    ASSERT_TRUE(facts) << facts.error().message();
    EXPECT_EQ(facts->pid, ::getpid());
    EXPECT_EQ(facts->uid, ::getuid());
    EXPECT_EQ(facts->euid, ::geteuid());
    EXPECT_EQ(facts->gid, ::getgid());
    EXPECT_EQ(facts->egid, ::getegid());
    char comm[17] = {};
    ASSERT_EQ(::prctl(PR_GET_NAME, comm), 0);
    EXPECT_EQ(facts->comm, comm);
    EXPECT_EQ(facts->comm, withoutNewline(readFile("/proc/self/comm")));
    ASSERT_TRUE(facts->exe.has_value()) << "the test's own exe is readable";
    EXPECT_EQ(facts->exe, readLink("/proc/self/exe"));
    EXPECT_EQ(facts->cgroup, unifiedCgroupOf("/proc/self/cgroup"));
    EXPECT_EQ(facts->unit, internal::unitOfCgroup(facts->cgroup.value_or("")));

    std::string mount = cgroup2Mount();
    if (!mount.empty()) {
        // The cgroup id is the inode number of the cgroup's directory.
        struct stat st {};
        ASSERT_TRUE(facts->cgroup) << "no cgroup read on a cgroup v2 system";
        ASSERT_EQ(::stat((mount + *facts->cgroup).c_str(), &st), 0) << mount + *facts->cgroup;
        ASSERT_TRUE(facts->cgroupId.has_value()) << "PIDFD_GET_INFO gave no cgroup id on a cgroup v2 system";
        EXPECT_EQ(*facts->cgroupId, st.st_ino);
    }
}

TEST(ProcessFacts, DescribesALiveChildNotTheCaller) {
    LiveChild child("svckit-child");
    ASSERT_GT(child.pid(), 0);
    UniqueFd pidfd = pidfdOf(child.pid());
    ASSERT_TRUE(pidfd.isValid());

    auto alive = isAlive(pidfd.get());
    ASSERT_TRUE(alive) << alive.error().message();
    EXPECT_TRUE(*alive);
    auto pid = pidOfPidfd(pidfd.get());
    ASSERT_TRUE(pid) << pid.error().message();
    EXPECT_EQ(*pid, child.pid());

    auto facts = readProcessFacts(pidfd.get());
    ASSERT_TRUE(facts) << facts.error().message();
    EXPECT_EQ(facts->pid, child.pid());
    EXPECT_EQ(facts->comm, "svckit-child");
    EXPECT_EQ(facts->exe, readLink("/proc/self/exe"));
    EXPECT_EQ(facts->cgroup, unifiedCgroupOf("/proc/self/cgroup"));
    EXPECT_EQ(facts->uid, ::getuid());
}

TEST(ProcessFacts, NamesTheUnitOfTheCgroupTheProcessRunsIn) {
    std::string mount = cgroup2Mount();
    if (mount.empty())
        GTEST_SKIP() << "no cgroup v2 hierarchy is mounted";
    std::string slice = std::format("/svckit-test-{}.slice", ::getpid());
    std::string unit = std::format("facts-probe-{}.service", ::getpid());
    std::string cgroup = slice + "/" + unit;
    if (::mkdir((mount + slice).c_str(), 0755) < 0)
        GTEST_SKIP() << "cannot create a cgroup under " << mount << ": " << std::strerror(errno);
    struct Cleanup {
        std::string dirs[2];
        ~Cleanup() {
            for (const auto& d : dirs)
                if (!d.empty())
                    ::rmdir(d.c_str());
        }
    } cleanup{{mount + cgroup, mount + slice}};
    ASSERT_EQ(::mkdir((mount + cgroup).c_str(), 0755), 0) << std::strerror(errno);

    {
        LiveChild child("svckit-in-unit");
        ASSERT_GT(child.pid(), 0);
        {
            std::ofstream procs(mount + cgroup + "/cgroup.procs");
            procs << child.pid() << std::flush;
            ASSERT_TRUE(procs.good()) << "cannot move the child into " << cgroup;
        }
        UniqueFd pidfd = pidfdOf(child.pid());
        ASSERT_TRUE(pidfd.isValid());

        auto facts = readProcessFacts(pidfd.get());
        ASSERT_TRUE(facts) << facts.error().message();
        EXPECT_EQ(facts->cgroup, cgroup);
        EXPECT_EQ(facts->unit, unit);
        EXPECT_EQ(facts->comm, "svckit-in-unit");
        struct stat st {};
        ASSERT_EQ(::stat((mount + cgroup).c_str(), &st), 0);
        ASSERT_TRUE(facts->cgroupId.has_value());
        EXPECT_EQ(*facts->cgroupId, st.st_ino);

        // libsystemd reads the same process the same way.
        char* sdCgroup = nullptr;
        int r = sd_pidfd_get_cgroup(pidfd.get(), &sdCgroup);
        ASSERT_GE(r, 0) << "sd_pidfd_get_cgroup: " << std::strerror(-r);
        EXPECT_EQ(facts->cgroup, sdCgroup);
        std::free(sdCgroup);
        char* sdUnit = nullptr;
        r = sd_pidfd_get_unit(pidfd.get(), &sdUnit);
        ASSERT_GE(r, 0) << "sd_pidfd_get_unit: " << std::strerror(-r);
        EXPECT_EQ(facts->unit, sdUnit);
        std::free(sdUnit);

        child.finish();
    }
}

TEST(ProcessFacts, AZombieCountsAsExited) {
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_NAME, "svckit-zombie");
        ::_exit(0);
    }
    ASSERT_GT(pid, 0) << std::strerror(errno);
    UniqueFd pidfd = pidfdOf(pid);
    ASSERT_TRUE(pidfd.isValid());
    // Block until it has exited: it is a zombie now, its pid still held, not yet reaped.
    pollfd p{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(::poll(&p, 1, 10'000), 1);
    EXPECT_EQ(::access(std::format("/proc/{}/comm", pid).c_str(), F_OK), 0) << "not a zombie";

    auto alive = isAlive(pidfd.get());
    ASSERT_TRUE(alive) << alive.error().message();
    EXPECT_FALSE(*alive);
    auto facts = readProcessFacts(pidfd.get());
    EXPECT_FALSE(facts) << "facts of a zombie: comm " << facts->comm.value_or("") << ", exe '"
                        << facts->exe.value_or("") << "'";
    if (!facts) {
        EXPECT_EQ(facts.error().code(), ESRCH);
    }

    ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
    auto reaped = pidOfPidfd(pidfd.get());
    ASSERT_FALSE(reaped) << "a reaped process still has pid " << *reaped;
    EXPECT_EQ(reaped.error().code(), ESRCH);
    facts = readProcessFacts(pidfd.get());
    ASSERT_FALSE(facts);
    EXPECT_EQ(facts.error().code(), ESRCH);
    EXPECT_EQ(facts.error().message(), "Failed to read process facts: the process has exited");
}

TEST(ProcessFacts, RefusesADescriptorThatIsNotAPidfd) {
    auto [readEnd, writeEnd] = makePipe();
    auto pid = pidOfPidfd(readEnd.get());
    ASSERT_FALSE(pid) << "a pipe has pid " << *pid;
    EXPECT_EQ(pid.error().code(), EBADF);
    EXPECT_FALSE(readProcessFacts(readEnd.get()));

    EXPECT_EQ(pidOfPidfd(-1).error().code(), EBADF);
    EXPECT_EQ(isAlive(-1).error().code(), EBADF);
    EXPECT_EQ(readProcessFacts(-1).error().code(), EBADF);
    int closed = readEnd.release();
    ::close(closed);
    EXPECT_EQ(isAlive(closed).error().code(), EBADF);
}

TEST(ProcessFacts, NeverReportsAProcessThatReusedTheCallersPid) {
    // In a fresh pid namespace first: there the reuse happens every time. Only where that namespace cannot be
    // made (not root) is it tried in ours, where another process may keep taking the freed pid.
    ScenarioOutcome outcome = pidReuseScenarioInNewNamespace();
    std::string where = "a new pid namespace";
    if (!outcome.skipped.empty() && outcome.failures.empty() &&
        std::getenv("SVCKIT_TEST_PID_REUSE_IN_NAMESPACE") == nullptr) {
        std::string why = "in a new pid namespace: " + outcome.skipped;
        where = "this pid namespace";
        outcome = pidReuseScenario(/*alone=*/false);
        if (!outcome.skipped.empty())
            outcome.skipped = why + "; in ours: " + outcome.skipped;
    }
    for (const auto& failure : outcome.failures)
        ADD_FAILURE() << failure;
    if (!outcome.skipped.empty() && outcome.failures.empty())
        GTEST_SKIP() << "cannot create a process with a chosen pid: " << outcome.skipped;
    RecordProperty("ran_in", where);
}

TEST(ProcessFacts, AProcessExitingDuringTheReadIsGoneNotHalfDescribed) {
    // Each child names itself, says so, and exits at once: its exit races with readProcessFacts(). Whatever
    // the interleaving, the answer is the child's complete facts or ESRCH — never a zombie's half (no exe)
    // nor anything else.
    constexpr int rounds = 200;
    static constexpr char comm[] = "svckit-racer";
    const std::string exe = readLink("/proc/self/exe");
    const std::string cgroup = unifiedCgroupOf("/proc/self/cgroup");
    int described = 0;
    int gone = 0;
    for (int i = 0; i < rounds; ++i) {
        auto [readyRead, readyWrite] = makePipe();
        pid_t pid = ::fork();
        if (pid == 0) {
            ::prctl(PR_SET_NAME, comm);
            ::write(readyWrite.get(), "r", 1);
            ::_exit(0);
        }
        ASSERT_GT(pid, 0) << std::strerror(errno);
        readyWrite.reset();
        UniqueFd pidfd(pidfdOpen(pid)); // the child cannot be reaped before we wait for it
        char byte;
        bool ready = ::read(readyRead.get(), &byte, 1) == 1;
        auto facts = pidfd ? readProcessFacts(pidfd.get()) : std::unexpected(Error(EBADF, "no pidfd"));
        ::waitpid(pid, nullptr, 0);
        ASSERT_TRUE(pidfd.isValid());
        ASSERT_TRUE(ready);

        if (facts) {
            ++described;
            EXPECT_EQ(facts->pid, pid) << "round " << i;
            EXPECT_EQ(facts->comm, comm) << "round " << i;
            EXPECT_EQ(facts->exe, exe) << "round " << i << ": partial facts";
            EXPECT_EQ(facts->cgroup, cgroup) << "round " << i << ": partial facts";
            EXPECT_EQ(facts->uid, ::getuid()) << "round " << i;
        } else {
            ++gone;
            EXPECT_EQ(facts.error().code(), ESRCH) << "round " << i << ": " << facts.error().message();
        }
    }
    // Every round checked one of the two outcomes above; how they split depends on timing, so it is only
    // recorded.
    RecordProperty("described", described);
    RecordProperty("gone", gone);
}

TEST(UnitOfCgroup, FindsTheFirstServiceOrScopeBelowTheSlices) {
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/foo.service"), "foo.service");
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/foo.service/x"), "foo.service");
    EXPECT_EQ(internal::unitOfCgroup("/user.slice/user-1000.slice/session-2.scope"), "session-2.scope");
    EXPECT_EQ(internal::unitOfCgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/x.service"),
              "user@1000.service");
    EXPECT_EQ(internal::unitOfCgroup("/init.scope"), "init.scope");
    EXPECT_EQ(internal::unitOfCgroup("/-.slice/foo.service"), "foo.service");
    EXPECT_EQ(internal::unitOfCgroup("//system.slice//foo.service/"), "foo.service");
    EXPECT_EQ(internal::unitOfCgroup("/machine.slice/machine-x.scope/payload/system.slice/y.service"),
              "machine-x.scope");
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/getty@tty1.service"), "getty@tty1.service");
}

TEST(UnitOfCgroup, UndoesSystemdsCgroupNameEscaping) {
    // systemd prefixes '_' to a name that could clash with a kernel file ("cpu.service" -> "_cpu.service").
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/_cpu.service"), "cpu.service");
    EXPECT_EQ(internal::unitOfCgroup("/_cgroup.slice/x.service"), "x.service");
}

TEST(UnitOfCgroup, IsAbsentOutsideAnyServiceOrScope) {
    EXPECT_EQ(internal::unitOfCgroup(""), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/system.slice"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/user.slice/user-1000.slice"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/process_api/5a1b7c66"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/payload/foo.service"), std::nullopt)
        << "a unit must sit directly below the slices";
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/foo.mount"), std::nullopt)
        << "only services and scopes run callers";
}

TEST(UnitOfCgroup, RejectsComponentsThatAreNotUnitNames) {
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/.service"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/.scope"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/foo@.service"), std::nullopt)
        << "a template is not a running unit";
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/@foo.service"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/foo bar.service"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/foo.service.d"), std::nullopt);
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/" + std::string(250, 'a') + ".service"), std::nullopt)
        << "longer than 255";
    EXPECT_EQ(internal::unitOfCgroup("/system.slice/" + std::string(240, 'a') + ".service"),
              std::string(240, 'a') + ".service");
}
