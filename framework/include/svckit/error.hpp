// svckit/error.hpp — errors as values: Error (a positive errno and a message) and Result<T>.
//
// Every fallible svckit function returns Result<T> = std::expected<T, Error>. The message reads like
// "Failed to bind '/run/x.sock': Address already in use"; code() is the errno that caused it (or EINVAL etc.
// for svckit's own refusals). No exception leaves svckit's C-facing code.
#pragma once

#include <svckit/export.hpp>

#include <cerrno>
#include <expected>
#include <format>
#include <string>
#include <utility>

namespace svckit {

class SVCKIT_EXPORT Error {
public:
    Error(int code, std::string message) : code_(code < 0 ? -code : code), message_(std::move(message)) {}

    // An Error for errno `code`: "<what>: <strerror(code)>".
    static Error fromErrno(int code, std::string_view what);

    [[nodiscard]] int code() const noexcept { return code_; }
    [[nodiscard]] const std::string& message() const noexcept { return message_; }

    // A new Error with "<context>: " in front of the message and the same code.
    [[nodiscard]] Error withContext(std::string_view context) const;

private:
    int code_;
    std::string message_;
};

template <typename T>
using Result = std::expected<T, Error>;

// `return fail(EINVAL, "Bad name '{}'", name);`
template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail(int code, std::format_string<Args...> fmt, Args&&... args) {
    return std::unexpected(Error(code, std::format(fmt, std::forward<Args>(args)...)));
}

// `return failErrno("Failed to bind '{}'", path);` — uses the current errno.
template <typename... Args>
[[nodiscard]] std::unexpected<Error> failErrno(std::format_string<Args...> fmt, Args&&... args) {
    int code = errno;
    return std::unexpected(Error::fromErrno(code, std::format(fmt, std::forward<Args>(args)...)));
}

} // namespace svckit
