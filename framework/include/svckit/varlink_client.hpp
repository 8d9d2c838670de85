// svckit/varlink_client.hpp — a blocking varlink client: one connection, calls sent as NUL-terminated JSON
// messages, replies read back one at a time.
//
// A Client connects to "/path", "@abstract" or "unix:/path" (or adopts a connected socket), sends calls with
// send() — pipelining is allowed: several calls may be sent before their replies are read — and reads the
// replies in order with receive(). Framing is the server's: a read may bring several replies (and a part of
// the next), the rest is kept for the next receive(). File descriptors travel as SCM_RIGHTS with a call; fds
// the server sends are closed on receipt (off this thread: a close can block) unless ClientOptions::acceptFds
// asks for them, and then at most ClientOptions::maxFdsPerReply come with one reply (more is a protocol error
// that ends the connection: a server cannot fill the client's fd table). Generated typed clients
// (svckit/varlink_typed.hpp) sit on top of this class. Not thread-safe: one thread uses one Client.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>
#include <svckit/varlink_json.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::varlink {

// One reply as received.
struct ReplyMessage {
    JsonDocument document;     // the whole message: {"parameters": ..., "continues": ..., "error": ...}
    std::vector<UniqueFd> fds; // fds received with it (SCM_RIGHTS)

    // Its "parameters" (a missing view when it has none).
    [[nodiscard]] JsonView parameters() const noexcept { return document.root()["parameters"]; }
    // Its "error" name, when it is an error reply.
    [[nodiscard]] std::optional<std::string_view> error() const noexcept {
        return document.root()["error"].string();
    }
    // Whether more replies to the same call follow ("continues": true).
    [[nodiscard]] bool continues() const noexcept {
        return document.root()["continues"].boolean().value_or(false);
    }
};

struct ClientOptions {
    // Keep fds the server sends with a reply (ReplyMessage::fds); otherwise they are closed on receipt.
    bool acceptFds = false;
    // With acceptFds: the most fds one reply may bring; a server that sends more (also spread over the writes
    // of one unfinished reply) gets the connection closed (EPROTO) and its fds closed.
    size_t maxFdsPerReply = 16;
};

class SVCKIT_EXPORT Client {
public:
    // Connects to "/path", "@abstract" (the abstract namespace) or "unix:/path", "unix:@abstract" (any
    // ";key=value" suffix of a varlink address is ignored).
    [[nodiscard]] static Result<Client> connect(std::string_view address, ClientOptions options = {});
    // Uses an already-connected stream socket (blocking or not).
    [[nodiscard]] static Client adopt(UniqueFd connected, ClientOptions options = {});

    Client(Client&&) noexcept = default;
    Client& operator=(Client&&) noexcept = default;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() = default;

    // Sends one call. parametersJson is a serialized JSON object, or empty (or null) for none; fds go with it
    // as SCM_RIGHTS. EINVAL for more than one flag set or parameters that are not an object; EPIPE or
    // ECONNRESET when the server has closed the connection.
    [[nodiscard]] Result<void> send(std::string_view method, std::string_view parametersJson,
                                    CallFlags flags = {}, std::span<const int> fds = {});
    // Sends one call whose parameters' members are written by `write`: `[&](JsonWriter& w) { ... }` —
    // straight into the connection's output buffer.
    template <typename F>
    requires std::invocable<F&, JsonWriter&>
    [[nodiscard]] Result<void> send(std::string_view method, F&& write, CallFlags flags = {},
                                    std::span<const int> fds = {}) {
        return sendWriting(method, &detail::invokeWriter<F>, &write, flags, fds);
    }

    // The next reply, waiting for it (at most `timeout`: ETIMEDOUT). ECONNRESET when the server closed the
    // connection (EOF, also in the middle of a reply), EBADMSG for a reply that is not a valid JSON object,
    // EMSGSIZE for one over 16 MiB.
    [[nodiscard]] Result<ReplyMessage> receive(std::optional<std::chrono::milliseconds> timeout = {});
    // send() then receive(). With calls still unanswered before it, the reply returned is theirs: call()
    // belongs to a connection that is not pipelining.
    [[nodiscard]] Result<ReplyMessage> call(std::string_view method, std::string_view parametersJson,
                                            std::span<const int> fds = {});

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    Client(UniqueFd fd, ClientOptions options) noexcept : fd_(std::move(fd)), options_(options) {}
    Result<void> sendWriting(std::string_view method, detail::WriteFn write, void* context, CallFlags flags,
                             std::span<const int> fds);
    Result<void> startCall(std::string_view method, const CallFlags& flags);
    Result<void> finishCall(const CallFlags& flags, std::span<const int> fds);
    Result<void> sendOut(std::span<const int> fds);
    // The next complete message of the input buffer, if there is one.
    std::optional<Result<ReplyMessage>> takeMessage();

    UniqueFd fd_;
    ClientOptions options_;
    std::string out_;      // the call being sent (its capacity is reused)
    std::vector<char> in_; // received bytes: [inBegin_, inEnd_) not yet handed out
    size_t inBegin_ = 0;
    size_t inScanned_ = 0; // no NUL in [inBegin_, inScanned_)
    size_t inEnd_ = 0;
    bool eof_ = false;
    std::vector<UniqueFd> fds_; // received, not yet handed out with a reply
};

} // namespace svckit::varlink
