// framework/dbus/bus_endpoint.hpp — bus mode (ServiceSpec::bus): the service's one connection to the system
// or session bus, with one instance of each declared object on it and the well-known name owned
// (docs/dbus-bus.md).
//
// Start (BusEndpoint::connect, before READY=1): open the bus and wait until the daemon has answered Hello
// (bounded), serve the objects on it (ConnectionState::adopt, driven from the endpoint's IoBatch like a
// peer-to-peer connection), then request the name: a call can only reach the objects once they are there.
// Failing to get the name (taken, or the bus policy does not let the service's user own it) fails the start.
//
// The caller of each call is the message's sender as the bus daemon reports it (GetConnectionCredentials
// through sd_bus_query_sender_creds): its pidfd is the daemon's ProcessFD when it gives one (dbus-daemon
// >= 1.15.6 and dbus-broker do), else the identity has the pid only (PeerIdentity::pinned() false; said once
// in the debug log). A unique name is never reused by a daemon and its credentials are those it had when it
// connected, so they are asked once per sender (one synchronous round trip to the daemon, the only one a call
// can cost) and kept until the daemon says the name is gone (NameOwnerChanged), at most `cacheSize` of them.
//
// Stop: the name is released (the daemon queues new callers for the next activation), calls in flight are
// answered; drained once nothing is left to write. Idle: a service on a bus never exits on idle (the bus
// connection counts as one connection); the bus starts it again only if it is not running, and a name
// released on idle would race the callers the daemon already routed to it. Losing the bus is an error: the
// service exits with status 1 and systemd (or the next call) starts it again.
#pragma once

#include "base/private.hpp"
#include "dbus/connection.hpp"

#include <svckit/dbus.hpp>
#include <svckit/endpoint.hpp>
#include <svckit/service.hpp>

#include <svckit/internal/io_batch.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace svckit::dbus {

class BusEndpoint final : public svckit::Endpoint, private ConnectionHost {
public:
    // Connects, serves the objects and owns the name (blocking until then, at most `startTimeout`).
    // `onLost` is called once if the connection to the bus closes while the endpoint lives.
    [[nodiscard]] static Result<std::unique_ptr<BusEndpoint>>
    connect(EventLoop& loop, const BusSpec& spec, std::vector<ObjectDeclaration> objects,
            std::function<void(const Error&)> onLost);
    ~BusEndpoint() override;

    [[nodiscard]] Protocol protocol() const noexcept override { return Protocol::DBus; }
    [[nodiscard]] Result<void> listen(UniqueFd listeningFd, const SocketSpec& spec) override;
    [[nodiscard]] Result<void> serveConnection(UniqueFd connectedFd, const SocketSpec& spec) override;
    // Releases the name.
    void stopAccepting() noexcept override;
    // 1 while connected: a service on a bus is never idle (above).
    [[nodiscard]] size_t connectionCount() const noexcept override { return connection_ ? 1 : 0; }
    [[nodiscard]] bool connectionWaiting() const noexcept override { return false; }
    [[nodiscard]] Result<void> setNoConnectionCallback(std::function<void()> onNoConnection) override;
    void whenDrained(std::function<void()> onDrained) override;
    [[nodiscard]] std::string pendingWork() const override;

    // The instance of the object at `path` on the bus.
    void forEach(std::string_view path, const std::function<void(ObjectBase&)>& visit);
    // Senders whose identity is cached (for tests and the debug log).
    [[nodiscard]] size_t cachedCallers() const noexcept { return cache_.size(); }

    static constexpr size_t cacheSize = 256;
    static constexpr std::chrono::seconds startTimeout{25};

private:
    BusEndpoint(EventLoop& loop, BusSpec spec, std::vector<ObjectDeclaration> objects,
                std::function<void(const Error&)> onLost);

    // ConnectionHost
    EventLoop& loop() noexcept override { return loop_; }
    IoBatch& batch() noexcept override { return *batch_; }
    const std::vector<ObjectDeclaration>& objects() const noexcept override { return objects_; }
    void closed(ConnectionState& connection) noexcept override;

    Result<void> start();
    Result<PeerIdentity> resolve(sd_bus_message* message);
    Result<PeerIdentity> query(sd_bus_message* message);
    static int onNameOwnerChanged(sd_bus_message* message, void* userdata, sd_bus_error* error) noexcept;
    void checkDrained();

    EventLoop& loop_;
    BusSpec spec_;
    std::vector<ObjectDeclaration> objects_;
    std::function<void(const Error&)> onLost_;
    std::unique_ptr<IoBatch> batch_;
    std::shared_ptr<ConnectionState> connection_;
    sd_bus_slot* nameOwnerChanged_ = nullptr;
    std::map<std::string, PeerIdentity, std::less<>> cache_; // unique name -> its identity
    std::deque<std::string> cacheOrder_;                     // oldest first, for the bound
    bool warnedUnpinned_ = false;
    std::function<void()> onDrained_;
    EventSource drainRetry_;
};

} // namespace svckit::dbus
