// svckit-example-peercred-client — calls svckit-example-peercred and prints the identity the service saw.
//
//   svckit-example-peercred-client [--seqpacket] [--send-fd] [--verify-self] [--count N] [--timeout S] PATH
//
// --send-fd attaches a file descriptor (SCM_RIGHTS) to the request: on a socket with AcceptFileDescriptors=no
// the kernel refuses the send with EPERM, which is printed as "send-fd: EPERM" before the request is sent
// again without it. --verify-self checks that the reply names this very process (pid, uid, gid, cgroup) and
// exits 1 otherwise. --count N sends N requests on one seqpacket connection. --timeout S (default 10) bounds
// the wait for each reply.
#include <svckit/error.hpp>
#include <svckit/unique_fd.hpp>

#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

using namespace svckit;

struct Options {
    bool seqpacket = false;
    bool sendFd = false;
    bool verifySelf = false;
    int count = 1;
    int timeoutSeconds = 10;
    std::string path;
};

Result<UniqueFd> connectTo(const Options& o) {
    UniqueFd fd(::socket(AF_UNIX, (o.seqpacket ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0));
    if (!fd)
        return failErrno("Failed to create socket");
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (o.path.size() >= sizeof sa.sun_path)
        return fail(ENAMETOOLONG, "Socket path '{}' is too long", o.path);
    std::memcpy(sa.sun_path, o.path.data(), o.path.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + o.path.size());
    if (o.path.starts_with('@'))
        sa.sun_path[0] = '\0';
    else
        len += 1;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) < 0)
        return failErrno("Failed to connect to '{}'", o.path);
    timeval tv{.tv_sec = o.timeoutSeconds, .tv_usec = 0};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return failErrno("Failed to set a receive timeout");
    return fd;
}

// Sends the request, with a descriptor attached when asked. Returns the errno of the send (0 on success).
int sendRequest(int fd, bool withFd) {
    static const char request[] = "identity\n";
    iovec iov{const_cast<char*>(request), sizeof request - 1};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    UniqueFd devnull;
    if (withFd) {
        devnull = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        std::memset(control, 0, sizeof control);
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        cmsghdr* cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        int raw = devnull.get();
        std::memcpy(CMSG_DATA(cm), &raw, sizeof raw);
    }
    if (::sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
        return errno;
    return 0;
}

Result<std::string> readReply(int fd, bool seqpacket) {
    std::string reply;
    char buf[8192];
    while (true) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return fail(ETIMEDOUT, "No reply from the service in time");
            return failErrno("Failed to read the reply");
        }
        if (n == 0)
            break;
        reply.append(buf, static_cast<size_t>(n));
        if (seqpacket || reply.ends_with('\n'))
            break;
    }
    if (reply.empty())
        return fail(ECONNRESET, "The service closed the connection without a reply");
    return reply;
}

// The value of "key" at the top level of the flat reply (numbers and strings only; enough for checking).
std::optional<std::string> field(const std::string& json, std::string_view key, size_t from = 0) {
    std::string needle = std::format("\"{}\":", key);
    size_t at = json.find(needle, from);
    if (at == std::string::npos)
        return std::nullopt;
    at += needle.size();
    if (json[at] == '"') {
        size_t end = json.find('"', at + 1);
        return json.substr(at + 1, end - at - 1);
    }
    size_t end = json.find_first_of(",}", at);
    return json.substr(at, end - at);
}

std::string ownCgroup() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with("0::"))
            return line.substr(3);
    return {};
}

int verifySelf(const std::string& reply) {
    std::string problems;
    auto expect = [&](std::string_view what, std::optional<std::string> got, const std::string& want) {
        if (!got || *got != want)
            problems +=
                std::format(" {}: service saw '{}', client is '{}';", what, got.value_or("<none>"), want);
    };
    expect("pid", field(reply, "pid"), std::to_string(::getpid()));
    expect("uid", field(reply, "uid"), std::to_string(::getuid()));
    expect("gid", field(reply, "gid"), std::to_string(::getgid()));
    size_t process = reply.find("\"process\":");
    expect("pidfd pid", field(reply, "pid", process), std::to_string(::getpid()));
    expect("cgroup", field(reply, "cgroup", process), ownCgroup());
    if (!problems.empty()) {
        std::printf("verify-self: MISMATCH%s\n", problems.c_str());
        return 1;
    }
    std::printf("verify-self: ok (pid %d, uid %u, cgroup %s)\n", ::getpid(), ::getuid(), ownCgroup().c_str());
    return 0;
}

int usage(FILE* out, int status) {
    std::fputs("Usage: svckit-example-peercred-client [--seqpacket] [--send-fd] [--verify-self] [--count N]\n"
               "                                      [--timeout S] PATH\n",
               out);
    return status;
}

} // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--seqpacket")
            o.seqpacket = true;
        else if (a == "--send-fd")
            o.sendFd = true;
        else if (a == "--verify-self")
            o.verifySelf = true;
        else if (a == "--count" && i + 1 < argc)
            o.count = std::atoi(argv[++i]);
        else if (a == "--timeout" && i + 1 < argc)
            o.timeoutSeconds = std::atoi(argv[++i]);
        else if (a == "--help" || a == "-h")
            return usage(stdout, 0);
        else if (!a.starts_with("--") && o.path.empty())
            o.path = a;
        else
            return usage(stderr, 2);
    }
    if (o.path.empty() || o.count < 1 || o.timeoutSeconds < 1)
        return usage(stderr, 2);

    auto fd = connectTo(o);
    if (!fd) {
        std::fprintf(stderr, "%s\n", fd.error().message().c_str());
        return 1;
    }
    int status = 0;
    for (int i = 0; i < o.count; ++i) {
        if (o.sendFd && i == 0) {
            int err = sendRequest(fd->get(), true);
            if (err == 0) {
                std::puts("send-fd: accepted by the kernel");
            } else {
                std::printf("send-fd: %s (%s)\n", err == EPERM ? "EPERM" : "error", std::strerror(err));
                if (int again = sendRequest(fd->get(), false); again != 0) {
                    std::fprintf(stderr, "Failed to send the request: %s\n", std::strerror(again));
                    return 1;
                }
            }
        } else if (int err = sendRequest(fd->get(), false); err != 0) {
            std::fprintf(stderr, "Failed to send the request: %s\n", std::strerror(err));
            return 1;
        }
        auto reply = readReply(fd->get(), o.seqpacket);
        if (!reply) {
            std::fprintf(stderr, "%s\n", reply.error().message().c_str());
            return 1;
        }
        std::fputs(reply->c_str(), stdout);
        if (!reply->ends_with('\n'))
            std::fputc('\n', stdout);
        if (o.verifySelf && verifySelf(*reply) != 0)
            status = 1;
    }
    return status;
}
