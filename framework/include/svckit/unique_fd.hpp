// svckit/unique_fd.hpp — the one owned file descriptor type of svckit.
//
// A UniqueFd adopts the descriptor it is constructed with and closes it when destroyed. It is move-only;
// release() gives the descriptor up, dup() makes an independent CLOEXEC copy. Functions that take ownership
// of a descriptor take a UniqueFd by value; functions that only use one take an int.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>

#include <span>
#include <utility>

namespace svckit {

class SVCKIT_EXPORT UniqueFd {
public:
    constexpr UniqueFd() noexcept = default;
    constexpr explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        reset(other.release());
        return *this;
    }
    ~UniqueFd() { reset(); }

    [[nodiscard]] constexpr int get() const noexcept { return fd_; }
    [[nodiscard]] constexpr bool isValid() const noexcept { return fd_ >= 0; }
    constexpr explicit operator bool() const noexcept { return isValid(); }

    // Gives up ownership: the caller must close the returned descriptor.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    // Closes the owned descriptor (if any) and adopts fd.
    void reset(int fd = -1) noexcept;
    // A new descriptor for the same open file, with FD_CLOEXEC set.
    [[nodiscard]] Result<UniqueFd> dup() const;

private:
    int fd_ = -1;
};

// Closes descriptors on a background thread of svckit, never on the caller's: for descriptors another process
// handed over, whose last close() can block as long as that process arranged (a socket with SO_LINGER and a
// full send queue, a file on FUSE). svckit closes the fds callers pass this way; an fd a handler took is the
// handler's to close, with this unless it knows what the descriptor is (docs/security.md). Safe to call from
// any thread; the span's fds are left empty.
SVCKIT_EXPORT void closeAsync(UniqueFd fd) noexcept;
SVCKIT_EXPORT void closeAsync(std::span<UniqueFd> fds) noexcept;

} // namespace svckit
