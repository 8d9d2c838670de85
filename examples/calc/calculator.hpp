// examples/calc/calculator.hpp — the calculator's logic, shared by both protocols of svckit-example-calc: its
// varlink interface (io.svckit.example.Calc) and its D-Bus object (org.svckit.example.Calc1) each decode a
// call, call the same Calculator, and map the outcome to a reply or an error of their own. The Calculator
// also keeps the count of successful calls (the D-Bus property Calls), over both protocols.
#pragma once

#include <svckit/event_loop.hpp>
#include <svckit/unique_fd.hpp>

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace calc_example {

enum class Operation { Add, Subtract, Multiply, Divide };

// "add", "subtract", "multiply", "divide": the names both interfaces use.
[[nodiscard]] std::optional<Operation> parseOperation(std::string_view name) noexcept;
[[nodiscard]] std::string_view toString(Operation op) noexcept;

// Why a call failed; each protocol maps it to an error of its own interface.
struct Failure {
    enum class Kind {
        DivisionByZero,
        Overflow,        // `op` overflowed
        BadLine,         // line `line` (from 1) of a file is not an integer: `text`
        InvalidArgument, // the argument named `text` is out of range or unusable
        System,          // errno `errnum`
    };
    Kind kind;
    Operation op = Operation::Add;
    int64_t line = 0;
    std::string text{};
    int errnum = 0;
};

template <class T>
using Outcome = std::expected<T, Failure>;

struct SumResult {
    int64_t sum = 0;
    int64_t count = 0;
};
struct FileSum {
    int64_t sum = 0;
    int64_t lines = 0;
};

class Calculator {
public:
    Calculator();
    ~Calculator();
    Calculator(const Calculator&) = delete;
    Calculator& operator=(const Calculator&) = delete;

    // Called after every change of calls() (e.g. to emit PropertiesChanged on D-Bus).
    void onCallsChanged(std::function<void()> changed) { callsChanged_ = std::move(changed); }

    [[nodiscard]] Outcome<int64_t> apply(Operation op, int64_t a, int64_t b);
    [[nodiscard]] Outcome<SumResult> sum(std::span<const int64_t> values);
    // F(0) .. F(n-1); n from 1 to 92 (F(92) is the largest that fits in int64).
    [[nodiscard]] Outcome<std::vector<int64_t>> fibonacci(int64_t n);

    // Sums the integers, one per line, read from `fd`; calls `done` exactly once. It never blocks the loop on
    // the caller's fd (docs/security.md): what could stall a read is either read without blocking or refused.
    // - A pipe, FIFO or socket is read from `loop` as its data arrives (`done` is called later), up to 1 MiB
    //   and for at most a minute. Its file description is set O_NONBLOCK (shared with the caller's copy: the
    //   caller passed it to be read).
    // - A regular file is read at once with pread() (`done` is called before sumFile returns), up to 1 MiB,
    //   but only from a filesystem whose reads do not wait on another party: FUSE (a caller can mount one and
    //   never answer) and network filesystems (a hung server) are refused, as is everything else (devices,
    //   directories).
    // `done` must not throw.
    using FileDone = std::move_only_function<void(Outcome<FileSum>)>;
    void sumFile(svckit::EventLoop& loop, svckit::UniqueFd fd, FileDone done);

    // Successful apply, sum, fibonacci and sumFile calls since the start or the last reset().
    [[nodiscard]] uint64_t calls() const noexcept { return calls_; }
    void reset();

private:
    struct StreamRead;
    void counted();
    void onReadable(StreamRead& read);
    void finish(StreamRead& read, Outcome<FileSum> result);

    uint64_t calls_ = 0;
    std::function<void()> callsChanged_;
    std::vector<std::unique_ptr<StreamRead>> reads_;
};

} // namespace calc_example
