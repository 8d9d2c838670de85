// framework/service/raw_endpoint.hpp — the raw endpoint (svckit/raw.hpp): accepts on the raw sockets of a
// service, takes each caller's identity, and hands the connections to the service's handlers.
#pragma once

#include "base/private.hpp"

#include <svckit/endpoint.hpp>
#include <svckit/raw.hpp>

#include <svckit/internal/accept_pause.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace svckit::raw {

using Handlers = std::map<std::string, Handler, std::less<>>;

class EndpointCore final : public svckit::Endpoint {
public:
    // Serves the sockets named in `handlers` (by SocketSpec::name), each with its handler.
    [[nodiscard]] static Result<std::unique_ptr<EndpointCore>> create(EventLoop& loop, Handlers handlers);
    ~EndpointCore() override;

    [[nodiscard]] Protocol protocol() const noexcept override { return Protocol::Raw; }
    [[nodiscard]] Result<void> listen(UniqueFd listeningFd, const SocketSpec& spec) override;
    [[nodiscard]] Result<void> serveConnection(UniqueFd connectedFd, const SocketSpec& spec) override;
    void stopAccepting() noexcept override;
    [[nodiscard]] size_t connectionCount() const noexcept override { return connections_.size(); }
    [[nodiscard]] bool connectionWaiting() const noexcept override;
    [[nodiscard]] Result<void> setNoConnectionCallback(std::function<void()> onNoConnection) override;
    void whenDrained(std::function<void()> onDrained) override;
    [[nodiscard]] std::string pendingWork() const override;

private:
    friend class Connection;
    struct Listener {
        UniqueFd fd;
        const SocketSpec* spec;
        const Handler* handler;
        EventSource source;
    };

    EndpointCore(EventLoop& loop, Handlers handlers);
    Result<const Handler*> handlerFor(const SocketSpec& spec) const;
    const SocketSpec& keep(const SocketSpec& spec);
    void onAccept(Listener& listener);
    Result<void> addConnection(UniqueFd fd, const SocketSpec& spec, const Handler& handler, bool handedOver);
    void onReadable(Connection& connection, const Handler& handler);
    Result<void> watchMessages(Connection& connection, const Handler& handler);
    void closed(Connection& connection);
    void sweep();
    [[nodiscard]] size_t drivenByHandler() const noexcept;
    void checkDrained();
    void setAccepting(bool on);

    EventLoop& loop_;
    Handlers handlers_;
    std::vector<std::unique_ptr<SocketSpec>> specs_; // outlive the listeners: connections refer to them
    std::vector<std::unique_ptr<Listener>> listeners_;
    // Out of fds: the listeners are off until a connection closes or its timer runs out.
    AcceptPause acceptPause_;
    std::map<Connection*, std::unique_ptr<Connection>> connections_;
    std::map<const SocketSpec*, size_t> perSocket_;
    std::vector<std::unique_ptr<Connection>> closed_; // destroyed by sweep(), outside their callbacks
    EventSource sweep_;
    std::function<void()> onNoConnection_;
    std::function<void()> onDrained_;
    ConnectionCounters counters_;
    std::vector<std::byte> buffer_;
};

} // namespace svckit::raw
