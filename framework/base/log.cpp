#include <svckit/log.hpp>

#include <svckit/internal/log_target.hpp>

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unistd.h>

namespace svckit {
namespace {

int levelFromEnvironment() noexcept {
    const char* v = std::getenv("SVCKIT_LOG_LEVEL");
    if (!v || !*v)
        return static_cast<int>(LogLevel::Info);
    if (v[0] >= '0' && v[0] <= '7' && v[1] == '\0')
        return v[0] - '0';
    static constexpr const char* names[] = {"emerg",   "alert",  "crit", "err",
                                            "warning", "notice", "info", "debug"};
    for (int i = 0; i < 8; ++i)
        if (std::strcmp(v, names[i]) == 0)
            return i;
    return static_cast<int>(LogLevel::Info);
}

std::atomic<int>& threshold() noexcept {
    static std::atomic<int> level{levelFromEnvironment()};
    return level;
}

// "DEVICE:INODE" as systemd writes $JOURNAL_STREAM (two decimal numbers).
bool parseJournalStream(std::string_view value, unsigned long long& device,
                        unsigned long long& inode) noexcept {
    auto colon = value.find(':');
    if (colon == std::string_view::npos)
        return false;
    auto number = [](std::string_view text, unsigned long long& out) {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
        return ec == std::errc() && end == text.data() + text.size() && !text.empty();
    };
    return number(value.substr(0, colon), device) && number(value.substr(colon + 1), inode);
}

} // namespace

internal::LogTarget internal::logTarget(int fd, const char* journalStream) noexcept {
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (journalStream && parseJournalStream(journalStream, device, inode)) {
        struct stat st {};
        if (::fstat(fd, &st) == 0 && st.st_dev == device && st.st_ino == inode)
            return LogTarget::Journal;
    }
    int saved = errno; // isatty() sets ENOTTY on the common path; logging must not change errno
    bool terminal = ::isatty(fd) == 1;
    errno = saved;
    return terminal ? LogTarget::Terminal : LogTarget::Other;
}

internal::LogTarget internal::stderrLogTarget() noexcept {
    return logTarget(STDERR_FILENO, std::getenv("JOURNAL_STREAM"));
}

bool logEnabled(LogLevel level) noexcept {
    return static_cast<int>(level) <= threshold().load(std::memory_order_relaxed);
}

void setLogLevel(LogLevel level) noexcept {
    threshold().store(static_cast<int>(level), std::memory_order_relaxed);
}

void logMessage(LogLevel level, std::string_view message) noexcept {
    try {
        std::string line;
        line.reserve(message.size() + 5);
        // Every line gets the prefix, so that the journal gives each line of a multi-line message its
        // priority. A person at a terminal gets the lines alone. Asked at each message (an fstat() and an
        // isatty(), next to the write() itself), since stderr can be redirected at any time; only the
        // messages that pass the threshold pay for it, and no call path logs above debug.
        bool prefixed = internal::stderrLogTarget() != internal::LogTarget::Terminal;
        size_t start = 0;
        do {
            size_t end = message.find('\n', start);
            std::string_view part = message.substr(start, end == std::string_view::npos ? end : end - start);
            if (prefixed) {
                line += '<';
                line += static_cast<char>('0' + static_cast<int>(level));
                line += '>';
            }
            line += part;
            line += '\n';
            start = end == std::string_view::npos ? end : end + 1;
        } while (start != std::string_view::npos && start < message.size());
        const char* p = line.data();
        size_t left = line.size();
        while (left > 0) {
            ssize_t n = ::write(STDERR_FILENO, p, left);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return;
            }
            p += n;
            left -= static_cast<size_t>(n);
        }
    } catch (...) {
        // Out of memory while logging: drop the message.
    }
}

} // namespace svckit
