#include <svckit/unique_fd.hpp>

#include <fcntl.h>
#include <unistd.h>

namespace svckit {

void UniqueFd::reset(int fd) noexcept {
    int old = std::exchange(fd_, fd);
    if (old >= 0)
        ::close(old);
}

Result<UniqueFd> UniqueFd::dup() const {
    if (fd_ < 0)
        return fail(EBADF, "Failed to duplicate an empty descriptor");
    int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        return failErrno("Failed to duplicate descriptor {}", fd_);
    return UniqueFd(copy);
}

} // namespace svckit
