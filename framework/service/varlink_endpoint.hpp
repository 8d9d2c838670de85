// framework/service/varlink_endpoint.hpp — the varlink engine as a Service endpoint: an adapter around the
// public varlink::Server API, one per serving process.
#pragma once

#include "base/private.hpp"

#include <svckit/endpoint.hpp>
#include <svckit/varlink.hpp>

#include <memory>
#include <vector>

namespace svckit {

class VarlinkEndpoint final : public Endpoint {
public:
    // A server on `loop` with these options, serving every interface given.
    [[nodiscard]] static Result<std::unique_ptr<VarlinkEndpoint>>
    create(EventLoop& loop, varlink::ServerOptions options,
           const std::vector<varlink::Interface>& interfaces);

    [[nodiscard]] varlink::Server& server() noexcept { return server_; }

    [[nodiscard]] Protocol protocol() const noexcept override { return Protocol::Varlink; }
    [[nodiscard]] Result<void> listen(UniqueFd listeningFd, const SocketSpec& spec) override;
    [[nodiscard]] Result<void> serveConnection(UniqueFd connectedFd, const SocketSpec& spec) override;
    void stopAccepting() noexcept override;
    [[nodiscard]] size_t connectionCount() const noexcept override { return server_.connectionCount(); }
    [[nodiscard]] bool connectionWaiting() const noexcept override { return server_.connectionWaiting(); }
    [[nodiscard]] Result<void> setNoConnectionCallback(std::function<void()> onNoConnection) override;
    void whenDrained(std::function<void()> onDrained) override { server_.whenDrained(std::move(onDrained)); }
    [[nodiscard]] std::string pendingWork() const override;

private:
    explicit VarlinkEndpoint(varlink::Server server) : server_(std::move(server)) {}

    varlink::Server server_;
};

} // namespace svckit
