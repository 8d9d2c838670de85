// tests/fuzz/listen_environment.cpp — libFuzzer target: the LISTEN_* variables of socket activation, as
// internal::activationFromValues() reads them (the seam behind Activation::fromEnvironment()).
//
// An input is lines of NAME=VALUE, NAME one of LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PIDFDID (a name
// given twice: the last counts; other lines are ignored). A VALUE of "$PID" is this process's pid and
// "$PIDFDID" its pidfd id, so that inputs reach past the "not this process" checks; a line "NOPIDFS" runs as
// on a kernel without pidfs. fds 3..7 are set up once as what activation may find there: a listening stream
// socket, a listening SOCK_SEQPACKET socket, a connected socket, a UDP socket and a pipe (not a socket);
// 8 and above are closed (unless the fuzzer itself holds them). Whatever an Activation takes is released,
// never closed, so that the next input finds the same fds. See docs/testing.md ("Fuzzing").
#include <svckit/activation.hpp>

#include <svckit/internal/activation.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

void placeAt(int target, int fd) {
    if (fd < 0) {
        std::perror("listen_environment: setting up fds");
        std::abort();
    }
    if (fd != target) {
        if (::dup2(fd, target) < 0)
            std::abort();
        ::close(fd);
    }
}

int listening(int type) {
    int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    // Autobind: an abstract address of the kernel's choice.
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(sa_family_t)) < 0 ||
        ::listen(fd, 8) < 0)
        return -1;
    return fd;
}

std::optional<uint64_t> selfPidfdId;

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // Only fds nobody holds: the fuzzer's own (if any) stay as they are.
    auto isFree = [](int fd) { return ::fcntl(fd, F_GETFD) < 0; };
    if (isFree(3))
        placeAt(3, listening(SOCK_STREAM));
    if (isFree(4))
        placeAt(4, listening(SOCK_SEQPACKET));
    if (isFree(5)) {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
            std::abort();
        placeAt(5, pair[0]); // pair[1] stays open elsewhere: a connected peer
    }
    if (isFree(6))
        placeAt(6, ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (isFree(7)) {
        int pipeFds[2];
        if (::pipe2(pipeFds, O_CLOEXEC) < 0)
            std::abort();
        placeAt(7, pipeFds[0]);
    }
    selfPidfdId = svckit::internal::ownPidfdId();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    svckit::internal::ListenEnvironment env;
    std::optional<uint64_t> pidfdId = selfPidfdId;
    auto value = [](std::string_view v) -> std::string {
        if (v == "$PID")
            return std::to_string(::getpid());
        if (v == "$PIDFDID")
            return selfPidfdId ? std::to_string(*selfPidfdId) : std::string("1");
        return std::string(v);
    };
    while (!text.empty()) {
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        if (line == "NOPIDFS") {
            pidfdId.reset();
            continue;
        }
        size_t eq = line.find('=');
        if (eq == std::string_view::npos)
            continue;
        std::string_view name = line.substr(0, eq);
        std::string v = value(line.substr(eq + 1));
        if (name == "LISTEN_PID")
            env.pid = std::move(v);
        else if (name == "LISTEN_FDS")
            env.fds = std::move(v);
        else if (name == "LISTEN_FDNAMES")
            env.fdNames = std::move(v);
        else if (name == "LISTEN_PIDFDID")
            env.pidfdId = std::move(v);
    }

    auto activation = svckit::internal::activationFromValues(env, ::getpid(), pidfdId);
    if (!activation)
        return 0;
    for (svckit::ActivatedFd& fd : activation->fds())
        (void)fd.fd.release(); // the fds stay for the next input
    return 0;
}
