// tests/fuzz/varlink_server_input.cpp — libFuzzer target: the bytes a varlink peer sends, through the real
// server. Each input is served on a fresh EventLoop and varlink::Server over a socketpair, as an accepted
// connection: reading and framing (NUL-separated messages, split into one write each), the envelope
// (protocol::parseCall), dispatch, org.varlink.service, and the generated typed decoding and encoding of the
// bench and calc examples' interfaces and of tests/codegen's rich interface (every kind of IDL type). The
// peer writes everything, shuts its side down and reads every reply until the server closes the connection.
//
// The first byte of an input chooses how it is sent (the rest are the bytes):
//   bit 0  SOCK_SEQPACKET instead of SOCK_STREAM (which the server must refuse: EPROTOTYPE)
//   bit 1  one fd (a memfd holding "1\n2\n3\n", for calc's SumFile) with every write
//   bit 2  16 fds with every write (hoarding: the server's cap per call closes the connection)
//   bit 3  PassCredentials= (SCM_CREDENTIALS with each message)
//   bit 4  AcceptFileDescriptors=no (the fds sent are refused or dropped)
//
// The handlers are the examples' (calc's SumFile reads the passed file), with the lengths of streams bounded
// so that a run stays short. See docs/testing.md ("Fuzzing").
#include "io.svckit.example.Calc.varlink.hpp"
#include "org.example.bench.varlink.hpp"
#include "org.example.rich.varlink.hpp"

#include <svckit/event_loop.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>

#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace svckit;
namespace bench = org::example::bench;
namespace calc = io::svckit::example::Calc;
namespace rich = org::example::rich;
using varlink::ErrorReply;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "varlink_server_input: %s\n", what);
    std::abort();
}

class Bench : public bench::Server {
public:
    bench::EchoReply Echo(bench::EchoIn in, bench::EchoContext&) override {
        return bench::EchoOut{.text = std::move(in.text)};
    }
    bench::AddReply Add(bench::AddIn in, bench::AddContext&) override {
        int64_t sum = 0;
        if (__builtin_add_overflow(in.a, in.b, &sum))
            return bench::Overflow{};
        return bench::AddOut{.sum = sum};
    }
    bench::CountReply Count(bench::CountIn in, bench::CountContext& ctx) override {
        if (in.n < 1)
            return ErrorReply::invalidParameter("n");
        return ctx.stream([n = std::min<int64_t>(in.n, 64), i = int64_t{0}](bench::CountOut& out) mutable {
            out.i = i;
            return ++i < n;
        });
    }
};

class Calc : public calc::Server {
public:
    calc::ApplyReply Apply(calc::ApplyIn in, calc::ApplyContext&) override {
        int64_t result = 0;
        bool overflow = false;
        switch (in.op) {
        case calc::Operation::add:
            overflow = __builtin_add_overflow(in.a, in.b, &result);
            break;
        case calc::Operation::subtract:
            overflow = __builtin_sub_overflow(in.a, in.b, &result);
            break;
        case calc::Operation::multiply:
            overflow = __builtin_mul_overflow(in.a, in.b, &result);
            break;
        case calc::Operation::divide:
            if (in.b == 0)
                return calc::DivisionByZero{};
            overflow = in.a == INT64_MIN && in.b == -1;
            if (!overflow)
                result = in.a / in.b;
            break;
        }
        if (overflow)
            return calc::Overflow{.op = in.op};
        return calc::ApplyOut{.result = result};
    }
    calc::SumReply Sum(calc::SumIn in, calc::SumContext&) override {
        int64_t sum = 0;
        for (int64_t v : in.values)
            if (__builtin_add_overflow(sum, v, &sum))
                return calc::Overflow{.op = calc::Operation::add};
        return calc::SumOut{.sum = sum, .count = static_cast<int64_t>(in.values.size())};
    }
    calc::FibonacciReply Fibonacci(calc::FibonacciIn in, calc::FibonacciContext& ctx) override {
        if (in.n < 1 || in.n > 92)
            return ErrorReply::invalidParameter("n");
        return ctx.stream(
            [n = in.n, i = int64_t{0}, a = int64_t{0}, b = int64_t{1}](calc::FibonacciOut& out) mutable {
                out = {.index = i, .value = a};
                if (++i == n)
                    return false; // the next sum is not needed, and after F(92) it overflows
                int64_t next = a + b;
                a = b;
                b = next;
                return true;
            });
    }
    calc::SumFileReply SumFile(calc::SumFileIn in, calc::SumFileContext& ctx) override {
        std::optional<int> fd = ctx.fd(in.fd);
        if (!fd)
            return calc::NoSuchFd{.fd = in.fd};
        struct stat st {};
        if (::fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 4096)
            return ErrorReply::invalidParameter("fd");
        std::string text(static_cast<size_t>(st.st_size), '\0');
        ssize_t n = ::pread(*fd, text.data(), text.size(), 0);
        if (n < 0)
            return ErrorReply::system(errno);
        text.resize(static_cast<size_t>(n));
        calc::SumFileOut out{.sum = 0, .lines = 0};
        size_t start = 0;
        while (start < text.size()) {
            size_t end = std::min(text.find('\n', start), text.size());
            std::string_view line(text.data() + start, end - start);
            start = end + 1;
            if (line.empty())
                continue;
            ++out.lines;
            int64_t value = 0;
            auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
            if (ec != std::errc() || ptr != line.data() + line.size())
                return calc::BadLine{.line = out.lines, .text = std::string(line)};
            if (__builtin_add_overflow(out.sum, value, &out.sum))
                return calc::Overflow{.op = calc::Operation::add};
        }
        return out;
    }
};

class Rich : public rich::Server {
public:
    rich::MirrorReply Mirror(rich::MirrorIn in, rich::MirrorContext&) override {
        return rich::MirrorOut{.everything = std::move(in.everything), .keywords = std::move(in.keywords)};
    }
    rich::TreeReply Tree(rich::TreeIn in, rich::TreeContext&) override {
        if (in.depth < 0)
            return ErrorReply::invalidParameter("depth");
        return rich::TreeOut{.root = tree(std::min<int64_t>(in.depth, 5))};
    }
    rich::WalkReply Walk(rich::WalkIn in, rich::WalkContext& ctx) override {
        if (in.steps < 1)
            return ErrorReply::invalidParameter("steps");
        return ctx.stream([from = in.from, n = std::min<int64_t>(in.steps, 64),
                           i = int64_t{0}](rich::WalkOut& out) mutable {
            out = {.at = {.x = from.x + static_cast<double>(i), .y = from.y}, .index = i};
            return ++i < n;
        });
    }
    rich::FailReply Fail(rich::FailIn in, rich::FailContext&) override {
        switch (in.which) {
        case rich::FailIn::Which::notFound:
            return rich::NotFound{.what = "it"};
        case rich::FailIn::Which::tooBig:
            return rich::TooBig{.limit = 1, .got = 2, .colors = std::vector{rich::Color::red}};
        case rich::FailIn::Which::moved:
            return rich::Moved{.from_ = "here", .to = "there"};
        }
        return ErrorReply::invalidParameter("which");
    }
    rich::PingReply Ping(rich::PingIn, rich::PingContext&) override { return rich::PingOut{}; }

private:
    static rich::Node tree(int64_t depth) {
        rich::Node node{.name = "n" + std::to_string(depth), .children = {}};
        if (depth > 0) {
            node.children.push_back(tree(depth - 1));
            node.children.push_back(tree(depth - 1));
        }
        return node;
    }
};

Bench benchService;
Calc calcService;
Rich richService;

// The file calc's SumFile is handed.
int numbersFd() {
    static int fd = [] {
        int memfd = ::memfd_create("numbers", MFD_CLOEXEC);
        if (memfd < 0 || ::write(memfd, "1\n2\n3\n", 6) != 6)
            die("memfd");
        return memfd;
    }();
    return fd;
}

// The peer's side: sends the chunks (each with its fds), then shuts down writing and reads until EOF.
struct Peer {
    UniqueFd fd;
    std::vector<std::string_view> chunks;
    size_t next = 0;
    size_t fdsPerWrite = 0;
    size_t fdsLeft = 512; // bounds the fds one input can have in flight
    bool shutDown = false;
    bool closed = false;
    EventSource source;

    void sendSome() {
        while (next < chunks.size()) {
            std::string_view chunk = chunks[next];
            msghdr msg{};
            iovec iov{.iov_base = const_cast<char*>(chunk.data()), .iov_len = chunk.size()};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            size_t nfds = std::min(fdsPerWrite, fdsLeft);
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)]{};
            if (nfds > 0) {
                msg.msg_control = control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                std::vector<int> fds(nfds, numbersFd());
                std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * nfds);
            }
            ssize_t n = ::sendmsg(fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN)
                    return;
                if (nfds > 0 && errno != EPIPE && errno != ECONNRESET) {
                    fdsPerWrite = 0; // the socket refuses fds (SO_PASSRIGHTS off): send the bytes alone
                    continue;
                }
                // The server closed the connection (protocol error, limits): nothing more to send.
                next = chunks.size();
                break;
            }
            fdsLeft -= nfds;
            if (static_cast<size_t>(n) < chunk.size()) {
                chunks[next] = chunk.substr(static_cast<size_t>(n)); // a stream took part of it
                return;
            }
            ++next;
        }
        if (!shutDown) {
            ::shutdown(fd.get(), SHUT_WR);
            shutDown = true;
            (void)source.setIoEvents(EPOLLIN);
        }
    }

    void readAll() {
        char buffer[65536];
        for (;;) {
            ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            if (n > 0)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            closed = true; // EOF, or the server reset the connection
            return;
        }
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    bool seqpacket = mode & 1;

    auto loop = EventLoop::create();
    if (!loop)
        die("EventLoop::create");
    varlink::ServerOptions options;
    options.info.vendor = "svckit";
    options.info.product = "fuzz";
    auto server = varlink::Server::create(*loop, std::move(options));
    if (!server)
        die("Server::create");
    if (!server->addInterface(benchService.interface()) ||
        !server->addInterface(calcService.interface({.SumFile = {.acceptFds = true}})) ||
        !server->addInterface(richService.interface()))
        die("addInterface");

    int pair[2];
    if (::socketpair(AF_UNIX, (seqpacket ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                     pair) < 0)
        die("socketpair");
    Peer peer;
    peer.fd = UniqueFd(pair[1]);
    peer.fdsPerWrite = (mode & 4) ? 16 : (mode & 2) ? 1 : 0;
    // One write per message (NUL included), the rest as the last.
    for (size_t start = 0; start < bytes.size();) {
        size_t end = bytes.find('\0', start);
        end = end == std::string_view::npos ? bytes.size() : end + 1;
        peer.chunks.push_back(bytes.substr(start, end - start));
        start = end;
    }

    SocketSpec spec{.name = "varlink",
                    .address = "/run/fuzz.sock",
                    .type = seqpacket ? SocketType::SeqPacket : SocketType::Stream,
                    .passCredentials = (mode & 8) != 0,
                    .passPidfd = true,
                    .acceptFileDescriptors = (mode & 16) == 0};
    auto served = server->serveConnection(UniqueFd(pair[0]), spec);
    if (seqpacket) {
        // Packets would be read as a stream (cut and spliced): refused, nothing more to send.
        if (served || served.error().code() != EPROTOTYPE)
            die("serveConnection did not refuse a SOCK_SEQPACKET socket with EPROTOTYPE");
        return 0;
    }
    if (!served) {
        std::fprintf(stderr, "serveConnection: %s\n", served.error().message().c_str());
        die("serveConnection");
    }

    auto source = loop->addIo(peer.fd.get(), EPOLLIN | EPOLLOUT, [&](uint32_t revents) {
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
            peer.readAll();
        if (!peer.shutDown && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            peer.sendSome();
        if (peer.closed)
            loop->exit(0);
    });
    if (!source)
        die("addIo");
    peer.source = std::move(*source);

    if (!loop->run())
        die("run");
    return 0;
}
