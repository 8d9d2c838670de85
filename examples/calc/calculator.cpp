// The calculator's logic (calculator.hpp): no protocol in here.
#include "calculator.hpp"

#include <charconv>
#include <chrono>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

namespace calc_example {

namespace {

constexpr off_t maxFileSize = 1024 * 1024;
constexpr std::chrono::seconds readTimeout{60};

Failure overflowIn(Operation op) {
    return Failure{.kind = Failure::Kind::Overflow, .op = op};
}

Failure invalidArgument(std::string name) {
    return Failure{.kind = Failure::Kind::InvalidArgument, .text = std::move(name)};
}

Failure systemError(int errnum) {
    return Failure{.kind = Failure::Kind::System, .errnum = errnum};
}

Outcome<FileSum> sumOf(std::string_view text) {
    FileSum out;
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
            return std::unexpected(
                Failure{.kind = Failure::Kind::BadLine, .line = out.lines, .text = std::string(line)});
        if (__builtin_add_overflow(out.sum, value, &out.sum))
            return std::unexpected(overflowIn(Operation::Add));
    }
    return out;
}

// Reads whose data the kernel fetches from elsewhere (a FUSE daemon, a network server) can wait forever.
bool onLocalFilesystem(int fd) {
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

} // namespace

std::optional<Operation> parseOperation(std::string_view name) noexcept {
    if (name == "add")
        return Operation::Add;
    if (name == "subtract")
        return Operation::Subtract;
    if (name == "multiply")
        return Operation::Multiply;
    if (name == "divide")
        return Operation::Divide;
    return std::nullopt;
}

std::string_view toString(Operation op) noexcept {
    switch (op) {
    case Operation::Add:
        return "add";
    case Operation::Subtract:
        return "subtract";
    case Operation::Multiply:
        return "multiply";
    case Operation::Divide:
        return "divide";
    }
    return "unknown";
}

// A pipe or socket being read for a deferred sumFile().
struct Calculator::StreamRead {
    svckit::UniqueFd fd;
    FileDone done;
    std::string text;
    svckit::EventSource io;
    svckit::EventSource timer;
    bool finished = false;
};

Calculator::Calculator() = default;
Calculator::~Calculator() = default;

void Calculator::counted() {
    ++calls_;
    if (callsChanged_)
        callsChanged_();
}

void Calculator::reset() {
    calls_ = 0;
    if (callsChanged_)
        callsChanged_();
}

Outcome<int64_t> Calculator::apply(Operation op, int64_t a, int64_t b) {
    int64_t result = 0;
    bool overflow = false;
    switch (op) {
    case Operation::Add:
        overflow = __builtin_add_overflow(a, b, &result);
        break;
    case Operation::Subtract:
        overflow = __builtin_sub_overflow(a, b, &result);
        break;
    case Operation::Multiply:
        overflow = __builtin_mul_overflow(a, b, &result);
        break;
    case Operation::Divide:
        if (b == 0)
            return std::unexpected(Failure{.kind = Failure::Kind::DivisionByZero});
        overflow = a == INT64_MIN && b == -1;
        if (!overflow)
            result = a / b;
        break;
    }
    if (overflow)
        return std::unexpected(overflowIn(op));
    counted();
    return result;
}

Outcome<SumResult> Calculator::sum(std::span<const int64_t> values) {
    SumResult out{.sum = 0, .count = static_cast<int64_t>(values.size())};
    for (int64_t v : values)
        if (__builtin_add_overflow(out.sum, v, &out.sum))
            return std::unexpected(overflowIn(Operation::Add));
    counted();
    return out;
}

Outcome<std::vector<int64_t>> Calculator::fibonacci(int64_t n) {
    if (n < 1 || n > 92)
        return std::unexpected(invalidArgument("n"));
    std::vector<int64_t> values;
    values.reserve(static_cast<size_t>(n));
    int64_t a = 0;
    int64_t b = 1;
    for (int64_t i = 0; i < n; ++i) {
        values.push_back(a);
        if (i + 1 == n)
            break; // the next sum is not needed, and after F(92) it overflows
        int64_t next = a + b;
        a = b;
        b = next;
    }
    counted();
    return values;
}

void Calculator::sumFile(svckit::EventLoop& loop, svckit::UniqueFd fd, FileDone done) {
    std::erase_if(reads_, [](const std::unique_ptr<StreamRead>& read) { return read->finished; });
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) {
        svckit::closeAsync(std::move(fd));
        return done(std::unexpected(invalidArgument("fd")));
    }
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        int flags = ::fcntl(fd.get(), F_GETFL);
        if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
            int errnum = errno;
            svckit::closeAsync(std::move(fd));
            return done(std::unexpected(systemError(errnum)));
        }
        auto read = std::make_unique<StreamRead>();
        StreamRead* r = read.get();
        r->fd = std::move(fd);
        auto io = loop.addIo(r->fd.get(), EPOLLIN, [this, r](uint32_t) { onReadable(*r); });
        auto timer =
            loop.addTimer(readTimeout, [this, r] { finish(*r, std::unexpected(systemError(ETIMEDOUT))); });
        if (!io || !timer) {
            svckit::closeAsync(std::move(r->fd));
            return done(std::unexpected(systemError(!io ? io.error().code() : timer.error().code())));
        }
        r->io = std::move(*io);
        r->timer = std::move(*timer);
        r->done = std::move(done);
        reads_.push_back(std::move(read));
        return;
    }
    // A regular file: read at once (the caller's fd, whose close can block, is closed off the loop).
    Outcome<FileSum> result = [&]() -> Outcome<FileSum> {
        if (!S_ISREG(st.st_mode) || st.st_size > maxFileSize || !onLocalFilesystem(fd.get()))
            return std::unexpected(invalidArgument("fd"));
        std::string text(static_cast<size_t>(st.st_size), '\0');
        ssize_t n = ::pread(fd.get(), text.data(), text.size(), 0);
        if (n < 0)
            return std::unexpected(systemError(errno));
        text.resize(static_cast<size_t>(n));
        return sumOf(text);
    }();
    svckit::closeAsync(std::move(fd));
    if (result)
        counted();
    done(std::move(result));
}

void Calculator::onReadable(StreamRead& r) {
    char buffer[16 * 1024];
    for (;;) {
        ssize_t n = ::read(r.fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return; // more later
        if (n < 0)
            return finish(r, std::unexpected(systemError(errno)));
        if (n == 0)
            return finish(r, sumOf(r.text)); // every writer has closed
        if (r.text.size() + static_cast<size_t>(n) > static_cast<size_t>(maxFileSize))
            return finish(r, std::unexpected(invalidArgument("fd")));
        r.text.append(buffer, static_cast<size_t>(n));
    }
}

// Answers once; the sources are only disabled here (a source is not destroyed from its own handler) and
// dropped with the entry at the next sumFile() call.
void Calculator::finish(StreamRead& r, Outcome<FileSum> result) {
    if (r.finished)
        return;
    r.finished = true;
    (void)r.io.setEnabled(false);
    (void)r.timer.setEnabled(false);
    svckit::closeAsync(std::move(r.fd)); // the caller's fd: a close can block
    r.text = {};
    if (result)
        counted();
    FileDone done = std::move(r.done);
    done(std::move(result));
}

} // namespace calc_example
