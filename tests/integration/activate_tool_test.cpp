// Tests of `svckit activate` (tools/svckit/activate.cpp): the built binary, run with temporary .socket units
// and a probe command that writes down what it was handed.
//
// This file is built twice: as the GoogleTest program, and with SVCKIT_ACTIVATE_PROBE defined as the probe
// that svckit activates (see tests/integration/meson.build). The test finds both through $SVCKIT_TOOL and
// $SVCKIT_ACTIVATE_PROBE.

#include <svckit/internal/linux_socket.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <format>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

// The inode number of a pidfd of `pid` (what LISTEN_PIDFDID carries), when pidfds live on pidfs.
std::optional<ino_t> pidfdIdOf(pid_t pid) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0)
        return std::nullopt;
    struct statfs fs{};
    struct stat st{};
    bool ok =
        ::fstatfs(pidfd, &fs) == 0 && fs.f_type == 0x50494446 /* PID_FS_MAGIC */ && ::fstat(pidfd, &st) == 0;
    ::close(pidfd);
    return ok ? std::optional<ino_t>(st.st_ino) : std::nullopt;
}

} // namespace

#ifdef SVCKIT_ACTIVATE_PROBE
// ---- the probe --------------------------------------------------------------------------------------------
//
// activate_probe REPORT_DIR MODE [ARG]
//   Writes REPORT_DIR/report-PID (key=value lines; atomically, so a test that sees it sees all of it), then
//   exit N    exits with status N
//   signal N  kills itself with signal N
//   wait      waits for SIGTERM, writes REPORT_DIR/terminated-PID and exits 43
//   serve     (Accept=yes) writes "pid=PID\n" to fd 3, then reads it until the peer closes it and exits 0

namespace {

volatile sig_atomic_t gotSigterm = 0;

void onSigterm(int) {
    gotSigterm = 1;
}

std::string typeName(int type) {
    switch (type) {
    case SOCK_STREAM:
        return "stream";
    case SOCK_SEQPACKET:
        return "seqpacket";
    case SOCK_DGRAM:
        return "dgram";
    default:
        return std::to_string(type);
    }
}

std::string intOption(int fd, int option) {
    int value = 0;
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) < 0)
        return errno == ENOPROTOOPT ? "unsupported" : std::string("error:") + std::strerror(errno);
    return value ? "1" : "0";
}

std::string describeFd(int fd) {
    std::string out;
    auto add = [&](std::string_view key, const std::string& value) {
        out += std::format("fd.{}.{}={}\n", fd, key, value);
    };
    int domain = 0;
    socklen_t length = sizeof(domain);
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) < 0) {
        add("family", "none");
        return out;
    }
    int type = 0;
    length = sizeof(type);
    ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length);
    add("family", domain == AF_UNIX ? "unix" : std::to_string(domain));
    add("type", typeName(type));
    add("listening", intOption(fd, SO_ACCEPTCONN));
    sockaddr_un address{};
    socklen_t addressLength = sizeof(address);
    std::string name;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &addressLength) == 0 &&
        addressLength > offsetof(sockaddr_un, sun_path)) {
        size_t size = addressLength - offsetof(sockaddr_un, sun_path);
        if (address.sun_path[0] == '\0')
            name = "@" + std::string(address.sun_path + 1, size - 1);
        else
            name = std::string(address.sun_path, ::strnlen(address.sun_path, size));
    }
    add("address", name);
    add("passcred", intOption(fd, SO_PASSCRED));
    add("passpidfd", intOption(fd, SO_PASSPIDFD));
    add("passrights", intOption(fd, SO_PASSRIGHTS));
    int flags = ::fcntl(fd, F_GETFL);
    add("nonblock", (flags >= 0 && (flags & O_NONBLOCK)) ? "1" : "0");
    ucred peer{};
    socklen_t peerLength = sizeof(peer);
    add("peer_pid", ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peerLength) == 0
                        ? std::to_string(peer.pid)
                        : "none");
    return out;
}

std::string variable(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "unset";
}

// Every open fd above the passed ones: svckit must pass nothing else.
std::string extraFds(int firstExtra) {
    std::string out;
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir)
        return "error";
    for (dirent* entry = ::readdir(dir); entry; entry = ::readdir(dir)) {
        int fd = std::atoi(entry->d_name);
        if (entry->d_name[0] == '.' || fd < firstExtra || fd == ::dirfd(dir))
            continue;
        out += (out.empty() ? "" : ",") + std::to_string(fd);
    }
    ::closedir(dir);
    return out;
}

int writeReport(const std::string& dir) {
    int count = std::atoi(variable("LISTEN_FDS").c_str());
    std::optional<ino_t> ownId = pidfdIdOf(::getpid());
    std::string report =
        std::format("pid={}\nppid={}\nuid={}\nlisten_pid={}\nlisten_fds={}\nlisten_fdnames={}\nlisten_"
                    "pidfdid={}\nown_pidfdid={}\n"
                    "extra_fds={}\n",
                    ::getpid(), ::getppid(), ::getuid(), variable("LISTEN_PID"), variable("LISTEN_FDS"),
                    variable("LISTEN_FDNAMES"), variable("LISTEN_PIDFDID"),
                    ownId ? std::to_string(*ownId) : "none", extraFds(3 + count));
    for (int fd = 3; fd < 3 + count; ++fd)
        report += describeFd(fd);
    std::string temporary = std::format("{}/.report-{}", dir, ::getpid());
    FILE* file = std::fopen(temporary.c_str(), "we");
    if (!file || std::fwrite(report.data(), 1, report.size(), file) != report.size() ||
        std::fclose(file) != 0)
        return 1;
    return std::rename(temporary.c_str(), std::format("{}/report-{}", dir, ::getpid()).c_str()) == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3)
        return 2;
    const std::string dir = argv[1];
    const std::string_view mode = argv[2];
    // Should svckit itself die (a failing test), the probe must not linger.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);

    // SIGTERM is blocked before the report is written, so one sent as soon as the report exists is not lost.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    if (mode == "wait") {
        std::signal(SIGTERM, onSigterm);
        ::sigprocmask(SIG_BLOCK, &term, nullptr);
    }
    if (writeReport(dir) != 0)
        return 3;

    if (mode == "exit" && argc > 3)
        return std::atoi(argv[3]);
    if (mode == "signal" && argc > 3) {
        int sig = std::atoi(argv[3]);
        std::signal(sig, SIG_DFL);
        ::raise(sig);
        return 4;
    }
    if (mode == "wait") {
        sigset_t none;
        sigemptyset(&none);
        while (!gotSigterm)
            ::sigsuspend(&none);
        if (FILE* marker = std::fopen(std::format("{}/terminated-{}", dir, ::getpid()).c_str(), "we"))
            std::fclose(marker);
        return 43;
    }
    if (mode == "serve") {
        std::string hello = std::format("pid={}\n", ::getpid());
        if (::write(3, hello.data(), hello.size()) != static_cast<ssize_t>(hello.size()))
            return 5;
        char buffer[256];
        while (::read(3, buffer, sizeof(buffer)) > 0) {
        }
        return 0;
    }
    return 6;
}

#else
// ---- the tests --------------------------------------------------------------------------------------------

#include <grp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kTimeout = 10s;
constexpr uid_t kNobody = 65534;

// Polls `done` until it holds or the timeout passes: the only kind of waiting these tests do.
bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = kTimeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
}

using Report = std::map<std::string, std::string>;

Report parseReport(const std::string& text) {
    Report report;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        if (auto eq = line.find('='); eq != std::string::npos)
            report[line.substr(0, eq)] = line.substr(eq + 1);
    return report;
}

bool kernelAtLeast(int major, int minor) {
    utsname name{};
    int haveMajor = 0;
    int haveMinor = 0;
    return ::uname(&name) == 0 && std::sscanf(name.release, "%d.%d", &haveMajor, &haveMinor) == 2 &&
           (haveMajor > major || (haveMajor == major && haveMinor >= minor));
}

// A connected client socket, or -1.
int connectTo(const std::string& address, int type = SOCK_STREAM) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    bool abstract = address.starts_with('@');
    std::memcpy(sa.sun_path + (abstract ? 1 : 0), address.data() + (abstract ? 1 : 0),
                address.size() - (abstract ? 1 : 0));
    socklen_t length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (abstract ? 0 : 1));
    int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), length) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Reads up to the first newline; "" on end of file, nullopt on timeout.
std::optional<std::string> readLine(int fd, std::chrono::milliseconds timeout = kTimeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return std::nullopt;
        char buffer[256];
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n <= 0)
            return line;
        line.append(buffer, static_cast<size_t>(n));
    }
    return line.substr(0, line.find('\n'));
}

struct StartOptions {
    std::vector<std::string> environment{}; // added to ours
    std::optional<uid_t> uid{};             // run svckit as this user (and its group), needs root
    mode_t umask = 022;
};

// One run of the svckit binary, its output captured in files.
struct ToolRun {
    pid_t pid = -1;
    std::string out;
    std::string err;
    std::optional<int> status{}; // the wait status, once it exited
};

class ActivateTool : public ::testing::Test {
protected:
    void SetUp() override {
        const char* tool = std::getenv("SVCKIT_TOOL");
        const char* probe = std::getenv("SVCKIT_ACTIVATE_PROBE");
        ASSERT_TRUE(tool && probe)
            << "run through meson test: $SVCKIT_TOOL and $SVCKIT_ACTIVATE_PROBE name the binaries";
        tool_ = tool;
        probe_ = probe;
        char dir[] = "/tmp/svckit-activate-test-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        dir_ = dir;
    }

    void TearDown() override {
        // Whatever a failed test left running: asked to stop first (so an Accept=no command is stopped with
        // it).
        for (ToolRun* run : runs_) {
            // A sanitizer build reports into svckit's stderr; UBSan does not even change the exit status.
            std::string err = readFile(run->err);
            EXPECT_THAT(err, Not(HasSubstr("Sanitizer"))) << err;
            EXPECT_THAT(err, Not(HasSubstr("runtime error:"))) << err;
            if (run->status)
                continue;
            ::kill(run->pid, SIGTERM);
            if (!waitExit(*run, 5s)) {
                ::kill(run->pid, SIGKILL);
                ::waitpid(run->pid, nullptr, 0);
            }
        }
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }

    std::string abstractName(std::string_view what) {
        return std::format("@svckit-activate-test-{}-{}-{}", ::getpid(), what, counter_++);
    }

    std::string writeUnit(std::string_view name, std::string_view text, const std::string& directory = "") {
        std::string file = (directory.empty() ? dir_ : directory) + "/" + std::string(name);
        std::ofstream(file) << text;
        return file;
    }

    // svckit ARGS...; its stdout and stderr go to files. A leaked non-CLOEXEC fd proves svckit passes no
    // extra fds.
    ToolRun& start(const std::vector<std::string>& args, const StartOptions& options = {}) {
        auto run = std::make_unique<ToolRun>();
        run->out = path(std::format("svckit-{}.out", counter_));
        run->err = path(std::format("svckit-{}.err", counter_++));
        std::vector<std::string> argv{tool_};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<std::string> environment;
        for (char** e = environ; *e; ++e)
            environment.emplace_back(*e);
        environment.emplace_back("SVCKIT_LOG_LEVEL=debug");
        environment.insert(environment.end(), options.environment.begin(), options.environment.end());

        pid_t pid = ::fork();
        if (pid == 0) {
            int out = ::open(run->out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            int err = ::open(run->err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0)
                ::_exit(120);
            (void)::open("/dev/null", O_RDONLY); // deliberately inherited
            ::umask(options.umask);
            if (options.uid &&
                (::setgroups(0, nullptr) < 0 || ::setgid(*options.uid) < 0 || ::setuid(*options.uid) < 0))
                ::_exit(121);
            std::vector<char*> cargv;
            for (std::string& arg : argv)
                cargv.push_back(arg.data());
            cargv.push_back(nullptr);
            std::vector<char*> cenv;
            for (std::string& variable : environment)
                cenv.push_back(variable.data());
            cenv.push_back(nullptr);
            ::execve(tool_.c_str(), cargv.data(), cenv.data());
            ::_exit(122);
        }
        EXPECT_GT(pid, 0);
        run->pid = pid;
        runs_.push_back(run.get());
        owned_.push_back(std::move(run));
        return *owned_.back();
    }

    // `svckit activate --socket UNIT... -- PROBE REPORT_DIR MODE [ARG]`
    ToolRun& activate(const std::vector<std::string>& units, const std::vector<std::string>& probeArgs,
                      const StartOptions& options = {}, const std::string& reportDir = "") {
        std::vector<std::string> args{"activate"};
        for (const std::string& unit : units) {
            args.push_back("--socket");
            args.push_back(unit);
        }
        args.push_back("--");
        args.push_back(probe_);
        args.push_back(reportDir.empty() ? dir_ : reportDir);
        args.insert(args.end(), probeArgs.begin(), probeArgs.end());
        return start(args, options);
    }

    bool waitExit(ToolRun& run, std::chrono::milliseconds timeout = kTimeout) {
        if (run.status)
            return true;
        return waitUntil(
            [&] {
                int status = 0;
                if (::waitpid(run.pid, &status, WNOHANG) != run.pid)
                    return false;
                run.status = status;
                return true;
            },
            timeout);
    }

    // The exit status of a run that must end within the timeout; -1 when it did not end or was killed.
    int exitCode(ToolRun& run) {
        if (!waitExit(run)) {
            ADD_FAILURE() << "svckit did not exit; stderr:\n" << readFile(run.err);
            return -1;
        }
        EXPECT_TRUE(WIFEXITED(*run.status)) << "svckit was killed by signal " << WTERMSIG(*run.status);
        return WIFEXITED(*run.status) ? WEXITSTATUS(*run.status) : -1;
    }

    // The report of the probe with that PID, or (pid 0) of the only probe that wrote one, once it exists.
    Report waitReport(ToolRun& run, pid_t pid = 0, const std::string& reportDir = "") {
        const std::string dir = reportDir.empty() ? dir_ : reportDir;
        std::string found;
        bool ok = waitUntil([&] {
            if (pid != 0) {
                found = std::format("{}/report-{}", dir, pid);
                return std::filesystem::exists(found);
            }
            for (const auto& entry : std::filesystem::directory_iterator(dir))
                if (entry.path().filename().string().starts_with("report-")) {
                    found = entry.path();
                    return true;
                }
            return false;
        });
        EXPECT_TRUE(ok) << "no probe report appeared; svckit's stderr:\n" << readFile(run.err);
        return ok ? parseReport(readFile(found)) : Report{};
    }

    // Waits until svckit has set up its sockets (options included): it logs that after the last setsockopt().
    void waitListening(ToolRun& run) {
        ASSERT_TRUE(waitUntil([&] { return readFile(run.err).find("listening on") != std::string::npos; }))
            << "svckit did not start listening; stderr:\n"
            << readFile(run.err);
    }

    std::string tool_;
    std::string probe_;
    std::string dir_;
    int counter_ = 0;
    std::vector<std::unique_ptr<ToolRun>> owned_;
    std::vector<ToolRun*> runs_;
};

// ---- Accept=no --------------------------------------------------------------------------------------------

TEST_F(ActivateTool, PassesListenersInOrderWithTheirNames) {
    const std::string abstract = abstractName("seq");
    std::string a =
        writeUnit("a.socket", std::format("[Unit]\nDescription=a\n[Socket]\nListenStream={}\n"
                                          "ListenSequentialPacket={}\nFileDescriptorName=varlink\n",
                                          path("run/a.sock"), abstract));
    std::string b = writeUnit("b.socket", std::format("[Socket]\nListenStream={}\n", path("b.sock")));
    ToolRun& run = activate({a, b}, {"wait"});
    Report report = waitReport(run);

    EXPECT_EQ(report["listen_fds"], "3");
    EXPECT_EQ(report["listen_fdnames"], "varlink:varlink:b.socket"); // the default name includes ".socket"
    EXPECT_EQ(report["listen_pid"], report["pid"]);
    EXPECT_EQ(report["ppid"], std::to_string(run.pid)); // svckit forked it, and waits for it
    EXPECT_EQ(report["extra_fds"], "") << "fds other than the listeners reached the command";

    EXPECT_EQ(report["fd.3.family"], "unix");
    EXPECT_EQ(report["fd.3.type"], "stream");
    EXPECT_EQ(report["fd.3.listening"], "1");
    EXPECT_EQ(report["fd.3.address"], path("run/a.sock"));
    EXPECT_EQ(report["fd.3.nonblock"], "0"); // systemd passes blocking fds (NonBlocking=no)
    EXPECT_EQ(report["fd.4.family"], "unix");
    EXPECT_EQ(report["fd.4.type"], "seqpacket");
    EXPECT_EQ(report["fd.4.listening"], "1");
    EXPECT_EQ(report["fd.4.address"], abstract);
    EXPECT_EQ(report["fd.5.type"], "stream");
    EXPECT_EQ(report["fd.5.listening"], "1");
    EXPECT_EQ(report["fd.5.address"], path("b.sock"));

    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 43);
}

TEST_F(ActivateTool, ListenPidfdIdIsTheIdOfAPidfdOfTheCommand) {
    std::string unit = writeUnit("p.socket", std::format("[Socket]\nListenStream={}\n", path("p.sock")));
    ToolRun& run = activate({unit}, {"wait"});
    Report report = waitReport(run);
    pid_t pid = std::stoi(report["pid"]);

    // Taken here, from outside, while the command is alive.
    std::optional<ino_t> id = pidfdIdOf(pid);
    if (!id) {
        EXPECT_EQ(report["listen_pidfdid"], "unset") << "without pidfs there is no id to pass";
    } else {
        EXPECT_EQ(report["listen_pidfdid"], std::to_string(*id));
        EXPECT_EQ(report["own_pidfdid"], std::to_string(*id));
        EXPECT_NE(report["listen_pidfdid"], std::to_string(pidfdIdOf(run.pid).value_or(0)))
            << "LISTEN_PIDFDID names svckit, not the command";
    }
    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 43);
}

TEST_F(ActivateTool, AppliesSocketOptionsAsTheUnitSays) {
    std::string on =
        writeUnit("on.socket", std::format("[Socket]\nListenStream={}\nListenSequentialPacket={}\n"
                                           "PassCredentials=yes\nPassPIDFD=yes\nAcceptFileDescriptors=no\n",
                                           path("on.sock"), path("on.seq")));
    std::string off = writeUnit("off.socket", std::format("[Socket]\nListenStream={}\n", path("off.sock")));
    std::string mixed =
        writeUnit("mixed.socket", std::format("[Socket]\nListenStream={}\nPassCredentials=no\n"
                                              "PassPIDFD=yes\nAcceptFileDescriptors=yes\n",
                                              path("mixed.sock")));
    ToolRun& run = activate({on, off, mixed}, {"exit", "0"});
    Report report = waitReport(run);
    EXPECT_EQ(exitCode(run), 0);

    ASSERT_NE(report["fd.3.passrights"], "unsupported") << "this kernel lacks SO_PASSRIGHTS (Linux >= 6.16)";
    EXPECT_EQ(report["fd.3.passcred"], "1");
    EXPECT_EQ(report["fd.3.passpidfd"], "1");
    EXPECT_EQ(report["fd.3.passrights"], "0");
    EXPECT_EQ(report["fd.4.type"], "seqpacket");
    EXPECT_EQ(report["fd.4.passcred"], "1");
    EXPECT_EQ(report["fd.4.passpidfd"], "1");
    EXPECT_EQ(report["fd.4.passrights"], "0");
    // The kernel defaults, as systemd leaves them.
    EXPECT_EQ(report["fd.5.passcred"], "0");
    EXPECT_EQ(report["fd.5.passpidfd"], "0");
    EXPECT_EQ(report["fd.5.passrights"], "1");
    EXPECT_EQ(report["fd.6.passcred"], "0");
    EXPECT_EQ(report["fd.6.passpidfd"], "1");
    EXPECT_EQ(report["fd.6.passrights"], "1");
    EXPECT_THAT(readFile(run.err), Not(HasSubstr("failed")));
}

TEST_F(ActivateTool, SkipOptionsSwitchLeavesTheKernelDefaults) {
    std::string on = writeUnit("on.socket", std::format("[Socket]\nListenStream={}\nPassCredentials=yes\n"
                                                        "PassPIDFD=yes\nAcceptFileDescriptors=no\n",
                                                        path("on.sock")));
    ToolRun& run = activate({on}, {"exit", "0"}, {.environment = {"SVCKIT_ACTIVATE_SKIP_OPTIONS=1"}});
    Report report = waitReport(run);
    EXPECT_EQ(exitCode(run), 0);
    EXPECT_EQ(report["fd.3.listening"], "1");
    EXPECT_EQ(report["fd.3.passcred"], "0");
    EXPECT_EQ(report["fd.3.passpidfd"], "0");
    EXPECT_EQ(report["fd.3.passrights"], "1");
    EXPECT_THAT(readFile(run.err), HasSubstr("SVCKIT_ACTIVATE_SKIP_OPTIONS"));
}

TEST_F(ActivateTool, AppliesSocketModeAndDirectoryModeWhateverTheUmask) {
    std::string strict = writeUnit("m.socket", std::format("[Socket]\nListenStream={}\nSocketMode=0600\n"
                                                           "DirectoryMode=0710\n",
                                                           path("x/y/m.sock")));
    std::string open = writeUnit("d.socket", std::format("[Socket]\nListenStream={}\n", path("d.sock")));
    ToolRun& run = activate({strict, open}, {"wait"}, {.umask = 077});
    waitReport(run);

    struct stat st{};
    ASSERT_EQ(::stat(path("x/y/m.sock").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(::stat(path("x").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0710u);
    ASSERT_EQ(::stat(path("x/y").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0710u);
    ASSERT_EQ(::stat(path("d.sock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0666u); // the default SocketMode=, despite umask 077

    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 43);
    EXPECT_FALSE(std::filesystem::exists(path("x/y/m.sock"))) << "svckit removes the socket files it created";
    EXPECT_FALSE(std::filesystem::exists(path("d.sock")));
}

TEST_F(ActivateTool, ForwardsSignalsAndExitsWithTheCommandsStatus) {
    std::string unit = writeUnit("s.socket", std::format("[Socket]\nListenStream={}\n", path("s.sock")));

    // The probe catches SIGTERM and exits 43: svckit was sent the signal, the probe got it, 43 came back.
    ToolRun& term = activate({unit}, {"wait"});
    Report report = waitReport(term);
    ASSERT_EQ(::kill(term.pid, SIGTERM), 0);
    EXPECT_EQ(exitCode(term), 43);
    EXPECT_TRUE(std::filesystem::exists(path("terminated-" + report["pid"])));

    // SIGINT and SIGHUP kill the probe: 128 + the signal.
    for (int sig : {SIGINT, SIGHUP}) {
        std::filesystem::remove(path("report-" + report["pid"]));
        ToolRun& run = activate({unit}, {"wait"});
        report = waitReport(run);
        ASSERT_EQ(::kill(run.pid, sig), 0);
        EXPECT_EQ(exitCode(run), 128 + sig) << ::sigabbrev_np(sig);
    }
}

TEST_F(ActivateTool, ExitsWithTheCommandsExitStatus) {
    std::string unit = writeUnit("e.socket", std::format("[Socket]\nListenStream={}\n", path("e.sock")));
    ToolRun& exits = activate({unit}, {"exit", "42"});
    EXPECT_EQ(exitCode(exits), 42);
    ToolRun& killed = activate({unit}, {"signal", std::to_string(SIGKILL)});
    EXPECT_EQ(exitCode(killed), 128 + SIGKILL);
    ToolRun& missing = start({"activate", "--socket", unit, path("no-such-command")});
    EXPECT_EQ(exitCode(missing), 127);
    EXPECT_FALSE(std::filesystem::exists(path("e.sock")));
}

TEST_F(ActivateTool, ReplacesAStaleSocketFileButNotALiveOne) {
    // A socket file whose listener is gone, as a crashed service leaves it.
    int stale = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string stalePath = path("stale.sock");
    std::memcpy(sa.sun_path, stalePath.c_str(), stalePath.size() + 1);
    ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    ::close(stale);
    std::string unit = writeUnit("stale.socket", std::format("[Socket]\nListenStream={}\n", stalePath));
    ToolRun& replaced = activate({unit}, {"exit", "0"});
    Report report = waitReport(replaced);
    EXPECT_EQ(exitCode(replaced), 0);
    EXPECT_EQ(report["fd.3.listening"], "1");
    EXPECT_EQ(report["fd.3.address"], stalePath);

    // Someone listens on this one: svckit must neither steal it nor run the command.
    int live = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    std::string livePath = path("live.sock");
    std::memcpy(sa.sun_path, livePath.c_str(), livePath.size() + 1);
    ASSERT_EQ(::bind(live, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    ASSERT_EQ(::listen(live, 4), 0);
    struct stat before{};
    ASSERT_EQ(::stat(livePath.c_str(), &before), 0);
    std::string liveUnit = writeUnit("live.socket", std::format("[Socket]\nListenStream={}\n", livePath));
    std::filesystem::remove(path("report-" + report["pid"]));
    ToolRun& refused = activate({liveUnit}, {"exit", "0"});
    EXPECT_EQ(exitCode(refused), 1);
    EXPECT_THAT(readFile(refused.err), HasSubstr("another process is listening on it"));
    struct stat after{};
    ASSERT_EQ(::stat(livePath.c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before.st_ino);
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
        EXPECT_FALSE(entry.path().filename().string().starts_with("report-")) << "the command ran anyway";
    ::close(live);
}

// ---- Accept=yes -------------------------------------------------------------------------------------------

TEST_F(ActivateTool, AcceptYesRunsOneInstancePerConnection) {
    const std::string seq = abstractName("acc-seq");
    std::string streamUnit = writeUnit("acc.socket", std::format("[Socket]\nListenStream={}\nAccept=yes\n"
                                                                 "PassCredentials=yes\nPassPIDFD=yes\n"
                                                                 "AcceptFileDescriptors=no\n",
                                                                 path("acc.sock")));
    std::string seqUnit =
        writeUnit("accseq.socket", std::format("[Socket]\nListenSequentialPacket={}\nAccept=yes\n"
                                               "FileDescriptorName=conn-seq\n",
                                               seq));
    ToolRun& run = activate({streamUnit, seqUnit}, {"serve"});
    waitListening(run);

    int first = connectTo(path("acc.sock"));
    int second = connectTo(path("acc.sock"));
    int third = connectTo(seq, SOCK_SEQPACKET);
    ASSERT_GE(first, 0);
    ASSERT_GE(second, 0);
    ASSERT_GE(third, 0);
    std::vector<pid_t> pids;
    for (int fd : {first, second, third}) {
        std::optional<std::string> hello = readLine(fd);
        ASSERT_TRUE(hello && hello->starts_with("pid=")) << readFile(run.err);
        pids.push_back(std::stoi(hello->substr(4)));
    }
    EXPECT_NE(pids[0], pids[1]);
    EXPECT_NE(pids[1], pids[2]);

    for (size_t i = 0; i < pids.size(); ++i) {
        SCOPED_TRACE(std::format("instance {}", i));
        Report report = waitReport(run, pids[i]);
        EXPECT_EQ(report["listen_fds"], "1");
        EXPECT_EQ(report["listen_pid"], std::to_string(pids[i]));
        EXPECT_EQ(report["listen_pidfdid"], report["own_pidfdid"]);
        EXPECT_EQ(report["ppid"], std::to_string(run.pid));
        EXPECT_EQ(report["extra_fds"], "");
        EXPECT_EQ(report["fd.3.family"], "unix");
        EXPECT_EQ(report["fd.3.listening"], "0");
        EXPECT_EQ(report["fd.3.nonblock"], "0");
        EXPECT_EQ(report["fd.3.peer_pid"], std::to_string(::getpid()))
            << "fd 3 is the connection from this test";
        if (i < 2) {
            EXPECT_EQ(report["listen_fdnames"], "connection");
            EXPECT_EQ(report["fd.3.type"], "stream");
            if (kernelAtLeast(6, 16)) {
                // Linux >= 6.16 copies the listener's flags to the connection at connect(): they were set
                // before.
                EXPECT_EQ(report["fd.3.passcred"], "1");
                EXPECT_EQ(report["fd.3.passpidfd"], "1");
                EXPECT_EQ(report["fd.3.passrights"], "0");
            }
        } else {
            EXPECT_EQ(report["listen_fdnames"], "conn-seq");
            EXPECT_EQ(report["fd.3.type"], "seqpacket");
        }
    }
    for (int fd : {first, second, third})
        ::close(fd);
    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 0);
}

TEST_F(ActivateTool, AcceptYesDropsConnectionsBeyondMaxConnections) {
    std::string unit =
        writeUnit("max.socket",
                  std::format("[Socket]\nListenStream={}\nAccept=yes\nMaxConnections=1\n", path("max.sock")));
    ToolRun& run = activate({unit}, {"serve"});
    waitListening(run);

    int first = connectTo(path("max.sock"));
    ASSERT_GE(first, 0);
    std::optional<std::string> hello = readLine(first);
    ASSERT_TRUE(hello && hello->starts_with("pid="));

    // The second is accepted and closed at once, as systemd does.
    int second = connectTo(path("max.sock"));
    ASSERT_GE(second, 0);
    EXPECT_EQ(readLine(second), std::optional<std::string>(""));
    ::close(second);
    EXPECT_THAT(readFile(run.err), HasSubstr("Too many incoming connections (1), dropping connection."));

    // Once the first instance is gone (and reaped), there is room again.
    ::close(first);
    bool servedAgain = waitUntil([&] {
        int fd = connectTo(path("max.sock"));
        if (fd < 0)
            return false;
        std::optional<std::string> line = readLine(fd, 2s);
        ::close(fd);
        return line && line->starts_with("pid=");
    });
    EXPECT_TRUE(servedAgain) << readFile(run.err);
    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 0);
}

// utime + stime of a process, in seconds.
double cpuSeconds(pid_t pid) {
    std::string stat = readFile(std::format("/proc/{}/stat", pid));
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos)
        return -1;
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    unsigned long long ticks = 0;
    for (int i = 3; fields >> field && i <= 15; ++i) // field 3 is the state; 14 and 15 utime and stime
        if (i >= 14)
            ticks += std::stoull(field);
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Out of fds, accept4() fails with EMFILE and leaves the client queued: the listening socket stays readable.
// svckit pauses accepting (instead of polling it again at once, ~100% CPU) and serves the client once it can.
TEST_F(ActivateTool, AcceptYesPausesInsteadOfSpinningWhileOutOfFds) {
    std::string unit =
        writeUnit("fds.socket", std::format("[Socket]\nListenStream={}\nAccept=yes\n", path("fds.sock")));
    ToolRun& run = activate({unit}, {"serve"});
    waitListening(run);

    rlimit before{};
    ASSERT_EQ(::prlimit(run.pid, RLIMIT_NOFILE, nullptr, &before), 0) << std::strerror(errno);
    // The lowest free fd number as the limit: none is left below it. (Not 0: poll() refuses more fds than
    // RLIMIT_NOFILE.)
    std::set<int> open;
    for (const auto& entry : std::filesystem::directory_iterator(std::format("/proc/{}/fd", run.pid)))
        open.insert(std::atoi(entry.path().filename().c_str()));
    rlim_t lowestFree = 0;
    while (open.contains(static_cast<int>(lowestFree)))
        ++lowestFree;
    rlimit full{.rlim_cur = lowestFree, .rlim_max = before.rlim_max};
    ASSERT_EQ(::prlimit(run.pid, RLIMIT_NOFILE, &full, nullptr), 0) << std::strerror(errno);
    int waiting = connectTo(path("fds.sock"));
    ASSERT_GE(waiting, 0);
    std::this_thread::sleep_for(200ms);

    double used = cpuSeconds(run.pid);
    auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(1000ms);
    used = cpuSeconds(run.pid) - used;
    double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << std::format("CPU time of svckit activate out of fds: {:.2f} s in {:.2f} s ({:.0f}%)\n", used,
                             window, 100 * used / window);
    EXPECT_LT(used, 0.2 * window) << "svckit activate spins while out of fds";

    ASSERT_EQ(::prlimit(run.pid, RLIMIT_NOFILE, &before, nullptr), 0) << std::strerror(errno);
    std::optional<std::string> hello = readLine(waiting, 5s);
    EXPECT_TRUE(hello && hello->starts_with("pid=")) << readFile(run.err);
    ::close(waiting);
    std::string err = readFile(run.err);
    size_t warnings = 0;
    for (size_t at = err.find("Too many open files"); at != std::string::npos;
         at = err.find("Too many open files", at + 1))
        ++warnings;
    EXPECT_EQ(warnings, 1u) << err;
    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 0);
}

TEST_F(ActivateTool, AcceptYesLimitsConnectionsPerSourceUid) {
    std::string unit = writeUnit("src.socket", std::format("[Socket]\nListenStream={}\nAccept=yes\n"
                                                           "MaxConnectionsPerSource=1\n",
                                                           path("src.sock")));
    ToolRun& run = activate({unit}, {"serve"});
    waitListening(run);
    int first = connectTo(path("src.sock"));
    ASSERT_GE(first, 0);
    std::optional<std::string> hello = readLine(first);
    ASSERT_TRUE(hello && hello->starts_with("pid="));
    int second = connectTo(path("src.sock"));
    ASSERT_GE(second, 0);
    EXPECT_EQ(readLine(second), std::optional<std::string>(""));
    EXPECT_THAT(readFile(run.err), HasSubstr(std::format("from source UID {}", ::getuid())));
    ::close(first);
    ::close(second);
    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 0);
}

TEST_F(ActivateTool, AcceptYesStopsItsInstancesOnSigterm) {
    std::string unit =
        writeUnit("stop.socket", std::format("[Socket]\nListenStream={}\nAccept=yes\n", path("stop.sock")));
    ToolRun& run = activate({unit}, {"serve"});
    waitListening(run);
    int connection = connectTo(path("stop.sock"));
    ASSERT_GE(connection, 0);
    std::optional<std::string> hello = readLine(connection);
    ASSERT_TRUE(hello && hello->starts_with("pid="));
    pid_t instance = std::stoi(hello->substr(4));

    ASSERT_EQ(::kill(run.pid, SIGTERM), 0);
    EXPECT_EQ(exitCode(run), 0);
    // The instance, the only other holder of the connection, is gone: svckit stopped and reaped it before
    // exiting.
    EXPECT_EQ(readLine(connection), std::optional<std::string>(""));
    EXPECT_EQ(::kill(instance, 0), -1);
    EXPECT_EQ(errno, ESRCH);
    ::close(connection);
    EXPECT_FALSE(std::filesystem::exists(path("stop.sock")));
}

// ---- refusals and usage -----------------------------------------------------------------------------------

TEST_F(ActivateTool, UnknownSettingFailsNamingTheLine) {
    std::string unit =
        writeUnit("bad.socket", std::format("[Unit]\nDescription=typo\n[Socket]\nPassPidfd=yes\n"
                                            "ListenStream={}\n",
                                            path("bad.sock")));
    ToolRun& run = activate({unit}, {"exit", "0"});
    EXPECT_EQ(exitCode(run), 1);
    EXPECT_THAT(readFile(run.err), HasSubstr("bad.socket:4: unknown setting 'PassPidfd' in [Socket]"));
    EXPECT_FALSE(std::filesystem::exists(path("bad.sock")));
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
        EXPECT_FALSE(entry.path().filename().string().starts_with("report-")) << "the command ran anyway";
}

TEST_F(ActivateTool, RefusesUnitsThatDisagreeOnAccept) {
    std::string yes =
        writeUnit("yes.socket", std::format("[Socket]\nListenStream={}\nAccept=yes\n", path("y.sock")));
    std::string no = writeUnit("no.socket", std::format("[Socket]\nListenStream={}\n", path("n.sock")));
    ToolRun& run = activate({yes, no}, {"exit", "0"});
    EXPECT_EQ(exitCode(run), 1);
    EXPECT_THAT(readFile(run.err), HasSubstr("all --socket units must agree"));

    // Two listeners on one path: the second bind() would replace the first one's socket file.
    std::string twice = writeUnit("twice.socket", std::format("[Socket]\nListenStream={}\n", path("n.sock")));
    ToolRun& duplicate = activate({no, twice}, {"exit", "0"});
    EXPECT_EQ(exitCode(duplicate), 1);
    EXPECT_THAT(readFile(duplicate.err),
                HasSubstr("twice.socket:2: '" + path("n.sock") + "' is already listened on by " + no + ":2"))
        << readFile(duplicate.err);
    ToolRun& same = activate({no, no}, {"exit", "0"});
    EXPECT_EQ(exitCode(same), 1);
}

TEST_F(ActivateTool, BadUsageExitsWithTwo) {
    std::string unit = writeUnit("u.socket", std::format("[Socket]\nListenStream={}\n", path("u.sock")));
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {},
             {"frobnicate"},
             {"activate"},
             {"activate", "--socket", unit},
             {"activate", "--socket"},
             {"activate", "--bogus", "--socket", unit, "true"},
             {"activate", "true"},
         }) {
        ToolRun& run = start(args);
        EXPECT_EQ(exitCode(run), 2) << ::testing::PrintToString(args);
        EXPECT_THAT(readFile(run.err), HasSubstr("Usage: svckit")) << ::testing::PrintToString(args);
    }
    ToolRun& badSwitch = start({"activate", "--socket", unit, "true"},
                               {.environment = {"SVCKIT_ACTIVATE_SKIP_OPTIONS=perhaps"}});
    EXPECT_EQ(exitCode(badSwitch), 2);

    ToolRun& help = start({"help"});
    EXPECT_EQ(exitCode(help), 0);
    EXPECT_THAT(readFile(help.out), HasSubstr("activate [--socket FILE.socket]... [--] COMMAND [ARGS...]"));
    ToolRun& activateHelp = start({"activate", "--help"});
    EXPECT_EQ(exitCode(activateHelp), 0);
    EXPECT_THAT(readFile(activateHelp.out), HasSubstr("SVCKIT_ACTIVATE_SKIP_OPTIONS=1"));
    ToolRun& version = start({"--version"});
    EXPECT_EQ(exitCode(version), 0);
    EXPECT_THAT(readFile(version.out), ::testing::StartsWith("svckit "));
}

// ---- as an ordinary user ----------------------------------------------------------------------------------

TEST_F(ActivateTool, WorksAsAnUnprivilegedUser) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to switch to an unprivileged user (this run is unprivileged already)";
    // nobody must be able to run the binaries where they were built.
    pid_t check = ::fork();
    if (check == 0) {
        bool ok = ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0 && ::access(tool_.c_str(), X_OK) == 0 &&
                  ::access(probe_.c_str(), X_OK) == 0;
        ::_exit(ok ? 0 : 1);
    }
    int checkStatus = 0;
    ASSERT_EQ(::waitpid(check, &checkStatus, 0), check);
    if (!WIFEXITED(checkStatus) || WEXITSTATUS(checkStatus) != 0)
        GTEST_SKIP() << "the build directory is not accessible to UID " << kNobody;

    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    const std::string home = path("user");
    ASSERT_TRUE(std::filesystem::create_directory(home));
    ASSERT_EQ(::chown(home.c_str(), kNobody, kNobody), 0);
    std::string unit = writeUnit("user.socket",
                                 std::format("[Socket]\nListenStream={}/run/user.sock\n"
                                             "PassCredentials=yes\nPassPIDFD=yes\n"
                                             "AcceptFileDescriptors=no\nSocketMode=0600\n",
                                             home),
                                 home);
    ToolRun& run = activate({unit}, {"wait"}, {.uid = kNobody}, home);
    Report report = waitReport(run, 0, home);
    EXPECT_EQ(report["uid"], std::to_string(kNobody));
    EXPECT_EQ(report["listen_fds"], "1");
    EXPECT_EQ(report["fd.3.listening"], "1");
    EXPECT_EQ(report["fd.3.passcred"], "1");
    EXPECT_EQ(report["fd.3.passpidfd"], "1");
    EXPECT_EQ(report["fd.3.passrights"], "0");
    struct stat st{};
    ASSERT_EQ(::stat((home + "/run/user.sock").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kNobody);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ::kill(run.pid, SIGTERM);
    EXPECT_EQ(exitCode(run), 43);
    EXPECT_FALSE(std::filesystem::exists(home + "/run/user.sock"));
}

} // namespace

#endif // SVCKIT_ACTIVATE_PROBE
