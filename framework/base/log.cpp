#include <svckit/log.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
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

} // namespace

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
        // priority.
        size_t start = 0;
        do {
            size_t end = message.find('\n', start);
            std::string_view part = message.substr(start, end == std::string_view::npos ? end : end - start);
            line += '<';
            line += static_cast<char>('0' + static_cast<int>(level));
            line += '>';
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
