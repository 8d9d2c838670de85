// framework/dbus/endpoint.hpp — the peer-to-peer D-Bus endpoint (Protocol::DBus): accepts on the service's
// D-Bus sockets, takes each caller's identity at accept, and serves every connection as an sd-bus server
// connection with one instance of each declared object (svckit/dbus.hpp).
#pragma once

#include "base/private.hpp"
#include "dbus/connection.hpp"

#include <svckit/dbus.hpp>
#include <svckit/endpoint.hpp>
#include <svckit/socket_options.hpp>

#include <svckit/internal/accept_pause.hpp>
#include <svckit/internal/io_batch.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace svckit::dbus {

class PeerEndpoint final : public svckit::Endpoint, private ConnectionHost {
public:
    [[nodiscard]] static Result<std::unique_ptr<PeerEndpoint>> create(EventLoop& loop, ServerOptions options,
                                                                      std::vector<ObjectDeclaration> objects);
    ~PeerEndpoint() override;

    [[nodiscard]] Protocol protocol() const noexcept override { return Protocol::DBus; }
    [[nodiscard]] Result<void> listen(UniqueFd listeningFd, const SocketSpec& spec) override;
    [[nodiscard]] Result<void> serveConnection(UniqueFd connectedFd, const SocketSpec& spec) override;
    void stopAccepting() noexcept override;
    [[nodiscard]] size_t connectionCount() const noexcept override { return connections_.size(); }
    [[nodiscard]] bool connectionWaiting() const noexcept override;
    [[nodiscard]] Result<void> setNoConnectionCallback(std::function<void()> onNoConnection) override;
    void whenDrained(std::function<void()> onDrained) override;
    [[nodiscard]] std::string pendingWork() const override;

    // Every live instance of the object at `path` (one per running connection).
    void forEach(std::string_view path, const std::function<void(ObjectBase&)>& visit);

private:
    struct Listener {
        UniqueFd fd;
        const SocketSpec* spec;
        EventSource source;
    };

    PeerEndpoint(EventLoop& loop, ServerOptions options, std::vector<ObjectDeclaration> objects);

    // ConnectionHost
    EventLoop& loop() noexcept override { return loop_; }
    IoBatch& batch() noexcept override { return *batch_; }
    const std::vector<ObjectDeclaration>& objects() const noexcept override { return objects_; }
    void closed(ConnectionState& connection) noexcept override;
    // Undoes addConnection's counts of a connection from `spec` by `uid`.
    void uncount(const SocketSpec& spec, uid_t uid) noexcept;

    const SocketSpec& keep(const SocketSpec& spec);
    void onAccept(Listener& listener);
    Result<void> addConnection(UniqueFd fd, const SocketSpec& spec);
    void setAccepting(bool on);
    void sweep();
    void checkDrained();

    // New connections accepted per wake-up of a listening socket.
    static constexpr int acceptsPerWakeup = 16;
    // How often a graceful stop looks again at replies still queued for writing.

    EventLoop& loop_;
    ServerOptions options_;
    std::vector<ObjectDeclaration> objects_;
    std::unique_ptr<IoBatch> batch_;
    std::vector<std::unique_ptr<SocketSpec>> specs_; // outlive the connections that refer to them
    std::vector<std::unique_ptr<Listener>> listeners_;
    AcceptPause acceptPause_;
    std::map<ConnectionState*, std::shared_ptr<ConnectionState>> connections_;
    std::map<const SocketSpec*, size_t> perSocket_;
    std::map<uid_t, size_t> perUid_; // connections per peer uid (ServerOptions::maxConnectionsPerUid)
    EventSource sweep_;
    EventSource drainRetry_;
    std::function<void()> onNoConnection_;
    std::function<void()> onDrained_;
    ConnectionCounters counters_;
    uint64_t nextId_ = 1;
};

} // namespace svckit::dbus
