// svckit-example-calc — a calculator on typed varlink bindings generated from io.svckit.example.Calc.varlink:
// typed errors (DivisionByZero, Overflow with a parameter), a streaming method (Fibonacci, one reply per
// number, requires `more` as its IDL says), and a method that reads a file descriptor passed with the call
// (SumFile; the socket is declared with AcceptFileDescriptors=yes and only that method accepts fds).
//
//   svckit-example-calc [--listen=PATH | --print-units[=DIR] | --check | --help]
//   varlinkctl call /run/svckit-example-calc.sock io.svckit.example.Calc.Apply '{"op":"add","a":1,"b":2}'
//   varlinkctl call --more /run/svckit-example-calc.sock io.svckit.example.Calc.Fibonacci '{"n":5}'
//   varlinkctl call --push-fd=0 /run/svckit-example-calc.sock io.svckit.example.Calc.SumFile '{"fd":0}'
//   <numbers
#include <svckit/service.hpp>

#include "io.svckit.example.Calc.varlink.hpp"

#include <charconv>
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

    // Reads a regular file only (never a pipe: a caller could keep it open and stall the loop), up to 1 MiB.
    calc::SumFileReply SumFile(calc::SumFileIn in, calc::SumFileContext& ctx) override {
        std::optional<int> fd = ctx.fd(in.fd);
        if (!fd)
            return calc::NoSuchFd{.fd = in.fd};
        struct stat st {};
        if (::fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > maxFileSize)
            return ErrorReply::invalidParameter("fd");
        std::string text(static_cast<size_t>(st.st_size), '\0');
        ssize_t n = ::pread(*fd, text.data(), text.size(), 0);
        if (n < 0)
            return ErrorReply::system(errno);
        text.resize(static_cast<size_t>(n));

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
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Calc>(argc, argv);
}
