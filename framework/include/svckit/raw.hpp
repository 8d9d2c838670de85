// svckit/raw.hpp — the raw endpoint: a socket on which the service speaks its own protocol.
//
// A socket of Protocol::Raw is served by the handler the service gives Service::addRaw() for it. svckit does
// what it does for every socket: accepts (accept4, SOCK_CLOEXEC), checks the accepted socket against the
// spec, takes the caller's identity once at accept (SO_PEERCRED, SO_PEERPIDFD), counts the connection for
// exit-on-idle and a graceful stop. The handler does the rest, in one of two ways:
//   - message: svckit reads the connection and calls the handler once per message with its sender — on
//     SOCK_SEQPACKET the identity that came with that very message (SCM_CREDENTIALS, SCM_PIDFD: the socket
//     needs PassCredentials=yes and PassPIDFD=yes), on a stream the connection's peer; fds only where the
//     socket accepts them. The connection ends when the peer closes it or the handler calls close().
//   - connected (without message): the handler drives the connection itself, registering its I/O on the
//     service's loop with Connection::watch(), and calls close() when done.
//
//   addRaw("identity", {.message = [](svckit::raw::Connection& c, svckit::raw::Message& m) {
//       (void)c.send(answerFor(m.sender));
//       c.close();
//   }});
//
// A Connection belongs to the endpoint: the handler borrows it, valid until close() (or the end of the
// service). A graceful stop waits for the connections the handler drives itself (until it closes them, at
// most the drain timeout); those svckit reads have nothing in flight between messages. Everything here runs
// on the loop's thread.
#pragma once

#include <svckit/error.hpp>
#include <svckit/export.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/identity.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace svckit::raw {

class EndpointCore;

// One message svckit read for the handler.
struct Message {
    std::span<const std::byte> data; // one packet (SOCK_SEQPACKET), or what one read returned (stream)
    bool truncated = false;          // the packet was longer than svckit's buffer (64 KiB); the rest is lost
    // Who sent it: on SOCK_SEQPACKET the identity that came with this message, or why there is none (EPROTO:
    // no SCM_CREDENTIALS, the socket lacks PassCredentials=yes); on a stream the connection's peer.
    Result<PeerIdentity> sender;
    // SCM_RIGHTS, only where the spec accepts fds (others are closed and counted). Those left here are closed
    // by svckit off the loop thread; one the handler moves out is its own: close it with closeAsync(), since
    // a caller's fd can block close() (docs/security.md).
    std::vector<UniqueFd> fds;
};

class SVCKIT_EXPORT Connection {
public:
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();

    // The connected socket (non-blocking, CLOEXEC); -1 once closed.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    // The spec of the socket it came from.
    [[nodiscard]] const SocketSpec& socket() const noexcept { return spec_; }
    // The caller, taken once when the connection was accepted (or handed over by systemd).
    [[nodiscard]] const PeerIdentity& peer() const noexcept { return peer_; }
    // Handed over by systemd (Accept=yes) rather than accepted from a listening socket of this process.
    [[nodiscard]] bool handedOver() const noexcept { return handedOver_; }
    [[nodiscard]] bool open() const noexcept { return static_cast<bool>(fd_); }
    [[nodiscard]] EventLoop& loop() const noexcept;
    // What the per-connection checks did on this endpoint's sockets (repaired connections, fds refused).
    [[nodiscard]] const ConnectionCounters& counters() const noexcept;

    // Drives the connection's I/O from the handler: `onIo` runs with the epoll events whenever the fd is
    // ready for `events` (replacing an earlier watch). svckit stops reading messages for this connection, and
    // a graceful stop waits for it to be closed.
    [[nodiscard]] Result<void> watch(uint32_t events, std::function<void(uint32_t revents)> onIo);
    // send() without blocking or SIGPIPE; EAGAIN as an Error with code EAGAIN. Returns the bytes sent.
    [[nodiscard]] Result<size_t> send(std::span<const std::byte> data);
    [[nodiscard]] Result<size_t> send(std::string_view text) { return send(std::as_bytes(std::span(text))); }
    // Ends the connection: its I/O leaves the loop, the fd is closed, the endpoint counts one connection
    // less. Safe from the connection's own callbacks; the object stays valid until the handler returns.
    void close() noexcept;

private:
    friend class EndpointCore;
    Connection(EndpointCore& endpoint, UniqueFd fd, const SocketSpec& spec, PeerIdentity peer,
               bool handedOver);

    EndpointCore* endpoint_;
    UniqueFd fd_;
    const SocketSpec& spec_;
    PeerIdentity peer_;
    bool handedOver_;
    bool readBySvckit_ = false; // svckit reads its messages for the handler (nothing in flight between them)
    EventSource io_;
};

// What a service does with the connections of one raw socket (Service::addRaw). `message` or `connected` (or
// both: `connected` first, then each message) must be set.
struct Handler {
    // Each listening socket, once, when it is served (e.g. to read the options it carries); the fd is
    // borrowed.
    std::function<void(const SocketSpec& spec, int listeningFd)> listening{};
    // Each new connection, before any message.
    std::function<void(Connection& connection)> connected{};
    // Each message, read by svckit (see above).
    std::function<void(Connection& connection, Message& message)> message{};
};

} // namespace svckit::raw
