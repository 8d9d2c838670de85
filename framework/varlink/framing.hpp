// framework/varlink/framing.hpp — what the varlink server's connections and the two clients (blocking and
// asynchronous) share: the input buffer arithmetic (unprocessed bytes live in [begin, end) of a reused
// buffer, and no NUL lies before `scanned`), the encoding of a call, the checks of a received reply, and the
// parsing of a varlink address into an AF_UNIX socket address.
#pragma once

#include "base/private.hpp"

#include <svckit/error.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>
#include <svckit/varlink_client.hpp>

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::varlink::detail {

// Makes room for `chunk` more bytes after `end`: first by moving the unprocessed bytes to the front of the
// buffer, then, if that is not enough, by growing it. The offsets follow the bytes.
inline void makeRoom(std::vector<char>& buffer, size_t& begin, size_t& scanned, size_t& end, size_t chunk) {
    if (buffer.size() - end >= chunk)
        return;
    if (begin > 0) {
        std::memmove(buffer.data(), buffer.data() + begin, end - begin);
        end -= begin;
        scanned -= begin;
        begin = 0;
    }
    if (buffer.size() - end < chunk)
        buffer.resize(end + chunk);
}

inline constexpr size_t maxMessageSize = 16 * 1024 * 1024; // as the server (and sd-varlink)
inline constexpr size_t maxFdsPerMessage = 253;            // SCM_MAX_FD

// An AF_UNIX address from "/path", "@abstract" or "unix:/path", "unix:@abstract" (any ";key=value" suffix of
// a varlink address is ignored).
struct UnixAddress {
    sockaddr_un sockaddr{};
    socklen_t length = 0;
};
[[nodiscard]] Result<UnixAddress> parseAddress(std::string_view address);

// Whether serialized parameters are a JSON object (or null, or empty: none); EINVAL otherwise. Sets *present
// when there are parameters to send.
[[nodiscard]] Result<void> checkParametersJson(std::string_view method, std::string_view json, bool* present);

// Appends the start of a call, `{"method":"…"`, to out (EINVAL for more than one flag set).
[[nodiscard]] Result<void> beginCall(std::string& out, std::string_view method, const CallFlags& flags);
// Appends the flags, the closing brace and the NUL.
void endCall(std::string& out, const CallFlags& flags);

// A received message (without its NUL) checked as a reply: a JSON object whose parameters, error and
// continues have the right types. EBADMSG otherwise.
[[nodiscard]] Result<ReplyMessage> parseReply(std::string_view text, std::vector<UniqueFd> fds);

} // namespace svckit::varlink::detail
