// tests/fuzz/varlink_client_replies.cpp — libFuzzer target: the bytes a varlink server sends back, as the
// blocking client and the generated typed clients read them. The input is what the "server" end of a
// socketpair has written (then it shuts down); the client makes calls of the rich, bench and calc interfaces
// one after the other until the connection fails: framing, the reply envelope (parseReply), error replies,
// `continues`, and the generated typed decoding of every output and error type.
//
// The first byte of an input: bits 0-2 pick the first method, and the calls go round from there; bit 3 sends
// one fd with every message (a memfd), which the client must take or drop without leaking. See
// docs/testing.md ("Fuzzing").
#include "io.svckit.example.Calc.varlink.hpp"
#include "org.example.bench.varlink.hpp"
#include "org.example.rich.varlink.hpp"

#include <svckit/unique_fd.hpp>
#include <svckit/varlink_client.hpp>

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

using namespace svckit;
namespace bench = org::example::bench;
namespace calc = io::svckit::example::Calc;
namespace rich = org::example::rich;

int anyFd() {
    static int fd = ::memfd_create("reply", MFD_CLOEXEC);
    if (fd < 0)
        std::abort();
    return fd;
}

// Writes every message (up to its NUL) with one sendmsg(), each with an fd when asked. Replies fit the socket
// buffer: libFuzzer's inputs are small.
bool writeReplies(int fd, std::string_view bytes, bool withFds) {
    while (!bytes.empty()) {
        size_t end = bytes.find('\0');
        end = end == std::string_view::npos ? bytes.size() : end + 1;
        iovec iov{.iov_base = const_cast<char*>(bytes.data()), .iov_len = end};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
        if (withFds) {
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            int passed = anyFd();
            std::memcpy(CMSG_DATA(cmsg), &passed, sizeof passed);
        }
        ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n != static_cast<ssize_t>(end))
            return false;
        bytes.remove_prefix(end);
    }
    return true;
}

// One call of the method numbered `which`; false once the connection failed (a transport error).
bool callOne(varlink::Client& connection, unsigned which) {
    rich::Client richClient(connection);
    bench::Client benchClient(connection);
    calc::Client calcClient(connection);
    auto each = [](auto&&) {};
    switch (which % 8) {
    case 0:
        return richClient.Mirror(rich::MirrorIn{}).has_value();
    case 1:
        return richClient.Tree(rich::TreeIn{.depth = 2}).has_value();
    case 2:
        return richClient.Walk(rich::WalkIn{.from = {}, .steps = 3}, each).has_value();
    case 3:
        return richClient.Fail(rich::FailIn{.which = rich::FailIn::Which::tooBig}).has_value();
    case 4:
        return benchClient.Count(bench::CountIn{.n = 3}, each).has_value();
    case 5:
        return benchClient.Echo(bench::EchoIn{.text = "x"}).has_value();
    case 6:
        return calcClient.Apply(calc::ApplyIn{.op = calc::Operation::divide, .a = 1, .b = 0}).has_value();
    default:
        return calcClient.Fibonacci(calc::FibonacciIn{.n = 5}, each).has_value();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        std::abort();
    UniqueFd server(pair[1]);
    // The client's calls go into the socket buffer unread; its replies are all there before the first call.
    if (!writeReplies(server.get(), bytes, (mode & 8) != 0))
        return 0;
    ::shutdown(server.get(), SHUT_WR);

    varlink::Client connection = varlink::Client::adopt(UniqueFd(pair[0]));
    for (unsigned call = 0; call < 64; ++call)
        if (!callOne(connection, (mode & 7) + call))
            break;
    return 0;
}
