#include <svckit/message.hpp>

#include <svckit/internal/linux_socket.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace svckit {
namespace {

// SCM_MAX_FD: the kernel never passes more fds in one message.
constexpr size_t maxFdsPerMessage = 253;

constexpr size_t controlSpace(size_t fds) noexcept {
    return CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(int) * fds);
}

// Whether a zero-length read is the end. On a stream it always is (and with SO_PASSCRED the kernel even
// attaches an empty SCM_CREDENTIALS to it, pid 0). On SOCK_SEQPACKET it can also be an empty message, which
// carries the sender's identity when the socket asks for one; without control data, only a peer that hung up
// (or shut down its writing side) makes it the end.
bool isEndOfStream(int fd, bool hadControlData) noexcept {
    int type = 0;
    socklen_t length = sizeof(type);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type == SOCK_STREAM)
        return true;
    if (hadControlData)
        return false;
    pollfd p{.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
}

} // namespace

Result<ReceivedMessage> receiveMessage(int fd, std::span<std::byte> buffer, const ReceiveOptions& options,
                                       ConnectionCounters* counters) {
    ReceivedMessage message;
    size_t maxFds = std::min(options.maxFds, maxFdsPerMessage);
    // Allocate before recvmsg(): once fds have arrived, nothing may throw and lose them.
    if (options.acceptFds)
        message.fds.reserve(maxFds);

    // On the stack even for SCM_MAX_FD fds (about 1 KiB): no allocation per message.
    alignas(struct cmsghdr) std::byte control[controlSpace(maxFdsPerMessage)];
    iovec iov{.iov_base = buffer.data(), .iov_len = buffer.size()};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = controlSpace(maxFds);

    int flags = MSG_CMSG_CLOEXEC | (options.nonblocking ? MSG_DONTWAIT : 0);
    ssize_t n = -1;
    do
        n = ::recvmsg(fd, &header, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return failErrno("Failed to receive a message on fd {}", fd);

    message.size = static_cast<size_t>(n);
    message.truncated = (header.msg_flags & MSG_TRUNC) != 0;
    message.controlTruncated = (header.msg_flags & MSG_CTRUNC) != 0;

    size_t closed = 0;
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&header); cmsg; cmsg = CMSG_NXTHDR(&header, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET)
            continue;
        const std::byte* data = reinterpret_cast<const std::byte*>(CMSG_DATA(cmsg));
        size_t dataLength = cmsg->cmsg_len - CMSG_LEN(0);
        switch (cmsg->cmsg_type) {
        case SCM_CREDENTIALS:
            if (dataLength >= sizeof(struct ucred)) {
                struct ucred credentials {};
                std::memcpy(&credentials, data, sizeof(credentials));
                message.credentials = credentials;
            }
            break;
        case SCM_PIDFD:
            if (dataLength >= sizeof(int)) {
                int pidfd = -1;
                std::memcpy(&pidfd, data, sizeof(pidfd));
                // The kernel sends one; should a second ever arrive, the later one replaces (and closes) it.
                message.pidfd.reset(pidfd);
            }
            break;
        case SCM_RIGHTS:
            for (size_t i = 0; i + sizeof(int) <= dataLength; i += sizeof(int)) {
                int received = -1;
                std::memcpy(&received, data + i, sizeof(received));
                // The room for identity cmsgs lets more than maxFds in when the sender sent no identity:
                // those beyond maxFds are unwanted too. Within maxFds, the capacity reserved above means
                // emplace_back does not allocate.
                if (options.acceptFds && message.fds.size() < maxFds) {
                    message.fds.emplace_back(received);
                } else {
                    closeAsync(UniqueFd(received)); // never on this thread: a close can block
                    ++closed;
                }
            }
            break;
        default:
            break;
        }
    }

    if (closed > 0) {
        message.fdsClosed = closed;
        if (counters)
            counters->unwantedFdsClosed.fetch_add(closed, std::memory_order_relaxed);
    }

    if (n == 0 && isEndOfStream(fd, header.msg_controllen > 0)) {
        message.eof = true;
        // Whatever identity came with the end names nobody.
        message.credentials.reset();
        message.pidfd.reset();
    }
    return message;
}

} // namespace svckit
