// svckit-example-calc — a calculator on typed varlink bindings generated from io.svckit.example.Calc.varlink:
// typed errors (DivisionByZero, Overflow with a parameter), a streaming method (Fibonacci, one reply per
// number, requires `more` as its IDL says), and a method that reads a file descriptor passed with the call
// (SumFile; the socket is declared with AcceptFileDescriptors=yes and only that method accepts fds). SumFile
// reads a pipe or socket from the loop as data arrives, so a caller that never writes stalls only its own
// call.
//
//   svckit-example-calc [--listen=PATH | --print-units[=DIR] | --check | --help]
//   varlinkctl call /run/svckit-example-calc.sock io.svckit.example.Calc.Apply '{"op":"add","a":1,"b":2}'
//   varlinkctl call --more /run/svckit-example-calc.sock io.svckit.example.Calc.Fibonacci '{"n":5}'
//   varlinkctl call --push-fd=0 /run/svckit-example-calc.sock io.svckit.example.Calc.SumFile '{"fd":0}'
//   <numbers
#include <svckit/service.hpp>

#include "io.svckit.example.Calc.varlink.hpp"

#include <charconv>
#include <chrono>
#include <fcntl.h>
#include <memory>
#include <sys/epoll.h>
#include <sys/statfs.h>
#include <vector>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace {

namespace calc = io::svckit::example::Calc;
using svckit::varlink::ErrorReply;

constexpr off_t maxFileSize = 1024 * 1024;

svckit::ServiceSpec calcSpec() {
    return {
        .name = "svckit-example-calc",
        .description = "svckit example: a calculator over varlink",
        .version = "0.1.0",
        .sockets = {svckit::SocketSpec{.name = "varlink",
                                       .address = "/run/svckit-example-calc.sock",
                                       .passPidfd = true,
                                       .acceptFileDescriptors = true}},
        // Nothing to keep between calls: after a minute without callers the process goes away and the socket
        // starts it again on the next connection.
        .exitOnIdle = std::chrono::seconds(60),
    };
}

class Calc : public svckit::Service, private calc::Server {
public:
    Calc() : Service(calcSpec()) {
        // Fibonacci requires `more`: its doc comment in the .varlink file says so ([Requires 'more' flag]).
        addVarlink(interface({.SumFile = {.acceptFds = true}}));
    }

private:
    // Errors are returned as values: an error of the interface (`calc::Overflow{...}`) or, for the standard
    // ones, an ErrorReply.
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

    // Every number but the last goes out as a reply with "continues": true; the last is the final reply.
    // ctx.stream() sends while the caller keeps up and waits for room when it reads slowly.
    calc::FibonacciReply Fibonacci(calc::FibonacciIn in, calc::FibonacciContext& ctx) override {
        if (in.n < 1 || in.n > 92) // F(92) is the largest that fits in int64
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

    // SumFile never blocks the loop on the caller's fd (docs/security.md): what could stall a read is either
    // read without blocking or refused.
    // - A pipe, FIFO or socket is read from the loop as its data arrives (an io source; the call is deferred
    //   and answered when the writer closes), up to 1 MiB and for at most a minute. Its file description is
    //   set O_NONBLOCK (shared with the caller's copy: the caller passed it to be read).
    // - A regular file is read at once with pread(), up to 1 MiB, but only from a filesystem whose reads do
    //   not wait on another party: FUSE (a caller can mount one and never answer) and network filesystems
    //   (a hung server) are refused, as is everything else (devices, directories).
    calc::SumFileReply SumFile(calc::SumFileIn in, calc::SumFileContext& ctx) override {
        std::erase_if(reads_, [](const std::unique_ptr<StreamRead>& read) { return read->done; });
        std::optional<int> fd = ctx.fd(in.fd);
        if (!fd)
            return calc::NoSuchFd{.fd = in.fd};
        struct stat st {};
        if (::fstat(*fd, &st) < 0)
            return ErrorReply::invalidParameter("fd");
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
            return readLater(std::move(ctx.fds()[static_cast<size_t>(in.fd)]), ctx);
        if (!S_ISREG(st.st_mode) || st.st_size > maxFileSize || !onLocalFilesystem(*fd))
            return ErrorReply::invalidParameter("fd");
        std::string text(static_cast<size_t>(st.st_size), '\0');
        ssize_t n = ::pread(*fd, text.data(), text.size(), 0);
        if (n < 0)
            return ErrorReply::system(errno);
        text.resize(static_cast<size_t>(n));
        return sumOf(text);
    }

    static calc::SumFileReply sumOf(std::string_view text) {
        calc::SumFileOut out{.sum = 0, .lines = 0};
        size_t start = 0;
        while (start < text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string::npos)
                end = text.size();
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

    // Reads whose data the kernel fetches from elsewhere (a FUSE daemon, a network server) can wait forever.
    static bool onLocalFilesystem(int fd) {
        struct statfs fs {};
        if (::fstatfs(fd, &fs) < 0)
            return false;
        switch (static_cast<unsigned long>(fs.f_type)) {
        case 0x65735546: // FUSE_SUPER_MAGIC
        case 0x6969:     // NFS_SUPER_MAGIC
        case 0xFF534D42: // CIFS_MAGIC_NUMBER
        case 0xFE534D42: // SMB2_MAGIC_NUMBER
        case 0x01021997: // V9FS_MAGIC
        case 0x00C36400: // CEPH_SUPER_MAGIC
        case 0x6B414653: // AFS_FS_MAGIC
            return false;
        default:
            return true;
        }
    }

    // A pipe or socket being read for a deferred SumFile call.
    struct StreamRead {
        svckit::UniqueFd fd;
        svckit::varlink::DeferredReply<calc::SumFileOut> reply;
        std::string text;
        svckit::EventSource io;
        svckit::EventSource timer;
        bool done = false;
    };

    calc::SumFileReply readLater(svckit::UniqueFd fd, calc::SumFileContext& ctx) {
        int flags = ::fcntl(fd.get(), F_GETFL);
        if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
            svckit::closeAsync(std::move(fd));
            return ErrorReply::system(errno);
        }
        auto read = std::make_unique<StreamRead>();
        StreamRead* r = read.get();
        r->fd = std::move(fd);
        auto io = loop().addIo(r->fd.get(), EPOLLIN, [this, r](uint32_t) { onReadable(*r); });
        auto timer = loop().addTimer(readTimeout, [this, r] { finish(*r, ErrorReply::system(ETIMEDOUT)); });
        if (!io || !timer) {
            svckit::closeAsync(std::move(r->fd));
            return ErrorReply::system(!io ? io.error().code() : timer.error().code());
        }
        r->io = std::move(*io);
        r->timer = std::move(*timer);
        r->reply = ctx.defer();
        reads_.push_back(std::move(read));
        return svckit::varlink::deferred;
    }

    void onReadable(StreamRead& r) {
        char buffer[16 * 1024];
        for (;;) {
            ssize_t n = ::read(r.fd.get(), buffer, sizeof buffer);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return; // more later
            if (n < 0)
                return finish(r, ErrorReply::system(errno));
            if (n == 0)
                return finish(r, sumOf(r.text)); // every writer has closed
            if (r.text.size() + static_cast<size_t>(n) > static_cast<size_t>(maxFileSize))
                return finish(r, ErrorReply::invalidParameter("fd"));
            r.text.append(buffer, static_cast<size_t>(n));
        }
    }

    // Answers once; the sources are only disabled here (a source is not destroyed from its own handler) and
    // dropped with the entry at the next SumFile call.
    void finish(StreamRead& r, const calc::SumFileReply& result) {
        if (r.done)
            return;
        r.done = true;
        (void)r.io.setEnabled(false);
        (void)r.timer.setEnabled(false);
        svckit::closeAsync(std::move(r.fd)); // the caller's fd: a close can block
        r.text = {};
        if (result.isDeferred())
            return;
        // A caller that has gone gets nothing (ENOTCONN): nothing more to do.
        if (const auto* out = result.out())
            (void)r.reply.reply(*out);
        else if (const auto* error = result.error())
            (void)r.reply.error(*error);
    }

    static constexpr std::chrono::seconds readTimeout{60};
    std::vector<std::unique_ptr<StreamRead>> reads_;
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Calc>(argc, argv);
}
