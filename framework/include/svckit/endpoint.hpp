// svckit/endpoint.hpp — what Service asks of the code that serves one protocol on its sockets.
//
// A Service hosts one Endpoint per protocol (SocketSpec::protocol) in each serving process: the varlink
// engine for Protocol::Varlink, the service's own handlers for Protocol::Raw (svckit/raw.hpp). It hands each
// socket to the endpoint of its protocol and drives the life cycle through this interface alone, so no
// protocol is special: exit-on-idle counts the connections of every endpoint, a graceful stop waits until
// every endpoint is drained. A new protocol is one more Protocol value and one more Endpoint.
#pragma once

#include <svckit/error.hpp>
#include <svckit/export.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <cstddef>
#include <functional>
#include <string>

namespace svckit {

class SVCKIT_EXPORT Endpoint {
public:
    Endpoint() = default;
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;
    virtual ~Endpoint() = default;

    [[nodiscard]] virtual Protocol protocol() const noexcept = 0;

    // Serves a listening socket: each connection is accepted (accept4, CLOEXEC) and checked against the spec
    // (checkAcceptedSocket), its caller taken once (identityOfPeer).
    [[nodiscard]] virtual Result<void> listen(UniqueFd listeningFd, const SocketSpec& spec) = 0;
    // Serves one connection systemd accepted (Accept=yes), checked against the spec the same way.
    [[nodiscard]] virtual Result<void> serveConnection(UniqueFd connectedFd, const SocketSpec& spec) = 0;
    // Closes the listening sockets (systemd keeps its copies and queues new clients for the next start);
    // connections already accepted are still served.
    virtual void stopAccepting() noexcept = 0;

    // Open connections.
    [[nodiscard]] virtual size_t connectionCount() const noexcept = 0;
    // A client waits in a listening socket's queue: about to be a connection, so not idle.
    [[nodiscard]] virtual bool connectionWaiting() const noexcept = 0;
    // Calls `onNoConnection` from the loop each time the endpoint's last connection has gone (and once soon
    // after being set, if it has none now). An empty function removes it.
    [[nodiscard]] virtual Result<void> setNoConnectionCallback(std::function<void()> onNoConnection) = 0;
    // Calls `onDrained` once, when nothing the endpoint serves is in flight: right away if so now, otherwise
    // from the loop. For a graceful stop, after stopAccepting().
    virtual void whenDrained(std::function<void()> onDrained) = 0;
    // What whenDrained() still waits for, for the log of a stop that timed out ("2 call(s) still
    // unanswered"); empty when drained.
    [[nodiscard]] virtual std::string pendingWork() const = 0;
};

} // namespace svckit
