#include <svckit/varlink_client.hpp>

#include <svckit/message.hpp>

#include "varlink/framing.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

namespace svckit::varlink {
namespace {

constexpr size_t readChunk = 64 * 1024;
using detail::maxFdsPerMessage;
using detail::maxMessageSize;

// Waits for `events` on fd until the deadline (none: forever). ETIMEDOUT when it passes.
Result<void> waitFor(int fd, short events, std::optional<std::chrono::steady_clock::time_point> deadline) {
    for (;;) {
        int timeout = -1;
        if (deadline) {
            auto left =
                std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return fail(ETIMEDOUT, "Timed out waiting for the varlink server");
            timeout = static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX));
        }
        pollfd p{.fd = fd, .events = events, .revents = 0};
        int n = ::poll(&p, 1, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return failErrno("Failed to wait on the varlink connection");
        if (n == 0)
            continue; // the deadline check above reports it
        return {};
    }
}

} // namespace

Result<Client> Client::connect(std::string_view address, ClientOptions options) {
    auto sa = detail::parseAddress(address);
    if (!sa)
        return std::unexpected(sa.error());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return failErrno("Failed to create a socket for '{}'", address);
    int r;
    do
        r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa->sockaddr), sa->length);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return failErrno("Failed to connect to '{}'", address);
    return Client(std::move(fd), options);
}

Client Client::adopt(UniqueFd connected, ClientOptions options) {
    return Client(std::move(connected), options);
}

Result<void> Client::send(std::string_view method, std::string_view parametersJson, CallFlags flags,
                          std::span<const int> fds) {
    bool present = false;
    if (auto ok = detail::checkParametersJson(method, parametersJson, &present); !ok)
        return ok;
    if (auto ok = startCall(method, flags); !ok)
        return ok;
    if (present) {
        out_.append(",\"parameters\":");
        out_.append(parametersJson);
    }
    return finishCall(flags, fds);
}

Result<void> Client::sendWriting(std::string_view method, detail::WriteFn write, void* context,
                                 CallFlags flags, std::span<const int> fds) {
    if (auto ok = startCall(method, flags); !ok)
        return ok;
    out_.append(",\"parameters\":{");
    JsonWriter w(out_);
    write(context, w);
    out_.push_back('}');
    return finishCall(flags, fds);
}

Result<void> Client::startCall(std::string_view method, const CallFlags& flags) {
    if (!fd_)
        return fail(ENOTCONN, "The varlink client has no connection");
    out_.clear();
    return detail::beginCall(out_, method, flags);
}

Result<void> Client::finishCall(const CallFlags& flags, std::span<const int> fds) {
    detail::endCall(out_, flags);
    return sendOut(fds);
}

Result<void> Client::sendOut(std::span<const int> fds) {
    size_t sent = 0;
    while (sent < out_.size()) {
        iovec iov{.iov_base = out_.data() + sent, .iov_len = out_.size() - sent};
        msghdr header{};
        header.msg_iov = &iov;
        header.msg_iovlen = 1;
        alignas(cmsghdr) std::byte control[CMSG_SPACE(sizeof(int) * maxFdsPerMessage)];
        if (sent == 0 && !fds.empty()) {
            if (fds.size() > maxFdsPerMessage)
                return fail(EINVAL, "At most {} fds can be passed with one call", maxFdsPerMessage);
            header.msg_control = control;
            header.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
            cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
        }
        ssize_t n = ::sendmsg(fd_.get(), &header, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (auto ready = waitFor(fd_.get(), POLLOUT, std::nullopt); !ready)
                    return ready;
                continue;
            }
            if (sent > 0) {
                // Half a message went out: the connection can carry no further calls.
                int code = errno;
                fd_.reset();
                return std::unexpected(Error::fromErrno(code, "Failed to send a varlink call"));
            }
            return failErrno("Failed to send a varlink call");
        }
        sent += static_cast<size_t>(n);
    }
    return {};
}

std::optional<Result<ReplyMessage>> Client::takeMessage() {
    if (inScanned_ >= inEnd_)
        return std::nullopt;
    auto* nul = static_cast<char*>(std::memchr(in_.data() + inScanned_, 0, inEnd_ - inScanned_));
    if (!nul) {
        inScanned_ = inEnd_;
        if (inEnd_ - inBegin_ > maxMessageSize) {
            fd_.reset(); // framing is lost: nothing further can be read from this connection
            return fail(EMSGSIZE, "A varlink reply is longer than {} bytes", maxMessageSize);
        }
        return std::nullopt;
    }
    std::string_view text(in_.data() + inBegin_, static_cast<size_t>(nul - (in_.data() + inBegin_)));
    inBegin_ = inScanned_ = static_cast<size_t>(nul - in_.data()) + 1;
    std::vector<UniqueFd> fds = std::move(fds_);
    fds_.clear();
    return detail::parseReply(text, std::move(fds));
}

Result<ReplyMessage> Client::receive(std::optional<std::chrono::milliseconds> timeout) {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    if (timeout)
        deadline = std::chrono::steady_clock::now() + *timeout;
    for (;;) {
        if (auto message = takeMessage())
            return std::move(*message);
        if (inBegin_ == inEnd_)
            inBegin_ = inScanned_ = inEnd_ = 0;
        if (eof_ || !fd_)
            return fail(ECONNRESET, "The varlink server closed the connection{}",
                        inBegin_ != inEnd_ ? " in the middle of a reply" : "");
        if (auto ready = waitFor(fd_.get(), POLLIN, deadline); !ready)
            return std::unexpected(ready.error());
        detail::makeRoom(in_, inBegin_, inScanned_, inEnd_, readChunk);
        auto received = receiveMessage(
            fd_.get(), std::as_writable_bytes(std::span(in_.data() + inEnd_, in_.size() - inEnd_)),
            ReceiveOptions{.acceptFds = options_.acceptFds,
                           .maxFds = std::min(options_.maxFdsPerReply + 1, maxFdsPerMessage),
                           .nonblocking = true});
        if (!received) {
            int code = received.error().code();
            if (code == EAGAIN)
                continue;
            if (code == ECONNRESET || code == EPIPE)
                return fail(code, "The varlink server closed the connection");
            return std::unexpected(received.error());
        }
        if (received->eof) {
            eof_ = true;
            continue;
        }
        inEnd_ += received->size;
        for (UniqueFd& fd : received->fds)
            fds_.push_back(std::move(fd));
        // fds wait for the NUL of their reply: a server that keeps sending fds without finishing a reply
        // would otherwise fill this process's fd table.
        if (fds_.size() > options_.maxFdsPerReply) {
            closeAsync(fds_);
            fds_.clear();
            fd_.reset();
            return fail(EPROTO, "The varlink server sent more than {} fds with one reply",
                        options_.maxFdsPerReply);
        }
    }
}

Result<ReplyMessage> Client::call(std::string_view method, std::string_view parametersJson,
                                  std::span<const int> fds) {
    if (auto sent = send(method, parametersJson, {}, fds); !sent)
        return std::unexpected(sent.error());
    return receive();
}

namespace detail {

Result<UnixAddress> parseAddress(std::string_view address) {
    std::string_view path = address;
    if (path.starts_with("unix:"))
        path.remove_prefix(5);
    if (auto semicolon = path.find(';'); semicolon != std::string_view::npos)
        path = path.substr(0, semicolon);
    UnixAddress result;
    sockaddr_un& sa = result.sockaddr;
    sa.sun_family = AF_UNIX;
    if (path.empty() || (path[0] != '/' && path[0] != '@'))
        return fail(EINVAL, "Unsupported varlink address '{}' (want /path, @abstract or unix:/path)",
                    address);
    if (path.size() >= sizeof(sa.sun_path))
        return fail(ENAMETOOLONG, "Varlink address '{}' is too long for AF_UNIX", address);
    std::memcpy(sa.sun_path, path.data(), path.size());
    result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; // abstract: the name is the bytes after the NUL, no terminator
    else
        result.length += 1;
    return result;
}

Result<void> checkParametersJson(std::string_view method, std::string_view json, bool* present) {
    size_t start = json.find_first_not_of(" \t\r\n");
    if (start != std::string_view::npos && json[start] != '{' && !json.substr(start).starts_with("null"))
        return fail(EINVAL, "The parameters of a call to {} are not a JSON object (nor null)", method);
    if (std::memchr(json.data(), 0, json.size()))
        return fail(EINVAL, "The parameters of a call to {} contain a NUL byte", method);
    *present = start != std::string_view::npos;
    return {};
}

Result<void> beginCall(std::string& out, std::string_view method, const CallFlags& flags) {
    if (int(flags.oneway) + int(flags.more) + int(flags.upgrade) > 1)
        return fail(EINVAL, "A call to {} may have at most one of oneway, more and upgrade", method);
    out.append("{\"method\":");
    JsonWriter(out).value(method);
    return {};
}

void endCall(std::string& out, const CallFlags& flags) {
    if (flags.oneway)
        out.append(",\"oneway\":true");
    if (flags.more)
        out.append(",\"more\":true");
    if (flags.upgrade)
        out.append(",\"upgrade\":true");
    out.push_back('}');
    out.push_back('\0');
}

Result<ReplyMessage> parseReply(std::string_view text, std::vector<UniqueFd> fds) {
    auto document = JsonDocument::parse(text);
    if (!document)
        return fail(EBADMSG, "Malformed varlink reply: {}", document.error().message());
    JsonView root = document->root();
    JsonView parameters = root["parameters"];
    JsonView error = root["error"];
    JsonView continues = root["continues"];
    if (!root.isObject() || (parameters.exists() && !parameters.isObject() && !parameters.isNull()) ||
        (error.exists() && !error.isString() && !error.isNull()) ||
        (continues.exists() && !continues.isBool() && !continues.isNull()))
        return fail(EBADMSG, "Malformed varlink reply: not an object with parameters, error and continues");
    return ReplyMessage{.document = std::move(*document), .fds = std::move(fds)};
}

} // namespace detail
} // namespace svckit::varlink
