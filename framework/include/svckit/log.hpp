// svckit/log.hpp — logging to stderr with sd-daemon "<N>" priority prefixes where a program reads them.
//
// Under systemd the journal reads the prefix as the message's priority. Lines carry it when stderr is the
// journal's stream ($JOURNAL_STREAM names stderr's device and inode, sd-daemon(3)) or is not a terminal (a
// pipe or a file keeps the priority for whoever reads it); on a terminal they are plain. The threshold comes
// from $SVCKIT_LOG_LEVEL (a number 0-7 or a name such as "debug"); the default is info. Library code logs at
// debug only; programs log their own errors once.
#pragma once

#include <svckit/export.hpp>

#include <format>
#include <string_view>

namespace svckit {

enum class LogLevel { Emerg = 0, Alert, Crit, Err, Warning, Notice, Info, Debug };

[[nodiscard]] SVCKIT_EXPORT bool logEnabled(LogLevel level) noexcept;
SVCKIT_EXPORT void setLogLevel(LogLevel level) noexcept;
// Writes "<N>line\n" for each line of the message to stderr ("line\n" on a terminal), in a single write.
SVCKIT_EXPORT void logMessage(LogLevel level, std::string_view message) noexcept;

template <typename... Args>
void log(LogLevel level, std::format_string<Args...> fmt, Args&&... args) {
    if (logEnabled(level))
        logMessage(level, std::format(fmt, std::forward<Args>(args)...));
}
template <typename... Args>
void logError(std::format_string<Args...> fmt, Args&&... args) {
    log(LogLevel::Err, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void logWarning(std::format_string<Args...> fmt, Args&&... args) {
    log(LogLevel::Warning, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void logInfo(std::format_string<Args...> fmt, Args&&... args) {
    log(LogLevel::Info, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void logDebug(std::format_string<Args...> fmt, Args&&... args) {
    log(LogLevel::Debug, fmt, std::forward<Args>(args)...);
}

} // namespace svckit
