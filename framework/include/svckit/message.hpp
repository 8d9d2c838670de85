// svckit/message.hpp — receiving one message with its ancillary data, refusing unwanted file descriptors.
//
// receiveMessage() is recvmsg() with MSG_CMSG_CLOEXEC that sorts the control messages: SCM_CREDENTIALS and
// SCM_PIDFD become the sender's identity, SCM_RIGHTS become owned fds — or, where the socket does not accept
// fds, are closed at once and counted (defence in depth behind SO_PASSRIGHTS=0).
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/unique_fd.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <sys/socket.h>
#include <vector>

namespace svckit {

struct ReceivedMessage {
    size_t size = 0; // bytes received; 0 with eof = true when the peer closed
    bool eof = false;
    bool truncated = false; // MSG_TRUNC: the datagram/packet was longer than the buffer
    bool controlTruncated =
        false; // MSG_CTRUNC: ancillary data was lost (fds beyond it were closed by the kernel)
    std::optional<struct ucred> credentials; // SCM_CREDENTIALS
    UniqueFd pidfd;                          // SCM_PIDFD
    std::vector<UniqueFd> fds;               // SCM_RIGHTS, only when accepted
    size_t fdsClosed = 0;                    // SCM_RIGHTS fds closed because they were not accepted
};

struct ReceiveOptions {
    bool acceptFds = false;  // keep SCM_RIGHTS fds; otherwise close and count them
    size_t maxFds = 16;      // room for this many fds in the control buffer
    bool nonblocking = true; // MSG_DONTWAIT
};

// EAGAIN is returned as an Error with code EAGAIN.
[[nodiscard]] SVCKIT_EXPORT Result<ReceivedMessage> receiveMessage(int fd, std::span<std::byte> buffer,
                                                                   const ReceiveOptions& options,
                                                                   ConnectionCounters* counters = nullptr);

} // namespace svckit
