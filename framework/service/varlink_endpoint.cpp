#include "service/varlink_endpoint.hpp"

#include <format>

namespace svckit {

Result<std::unique_ptr<VarlinkEndpoint>>
VarlinkEndpoint::create(EventLoop& loop, varlink::ServerOptions options,
                        const std::vector<varlink::Interface>& interfaces) {
    auto server = varlink::Server::create(loop, std::move(options));
    if (!server)
        return std::unexpected(server.error());
    for (const varlink::Interface& interface : interfaces)
        if (auto ok = server->addInterface(interface); !ok)
            return std::unexpected(ok.error());
    return std::unique_ptr<VarlinkEndpoint>(new VarlinkEndpoint(std::move(*server)));
}

Result<void> VarlinkEndpoint::listen(UniqueFd listeningFd, const SocketSpec& spec) {
    return server_.listen(std::move(listeningFd), spec);
}

Result<void> VarlinkEndpoint::serveConnection(UniqueFd connectedFd, const SocketSpec& spec) {
    return server_.serveConnection(std::move(connectedFd), spec);
}

void VarlinkEndpoint::stopAccepting() noexcept {
    server_.stopAccepting();
}

Result<void> VarlinkEndpoint::setNoConnectionCallback(std::function<void()> onNoConnection) {
    // With no delay the server's idle callback says when its connection count has dropped to zero (and not
    // while a client waits in a listening socket's queue).
    if (!onNoConnection)
        return server_.setIdleCallback({}, {});
    return server_.setIdleCallback(std::chrono::microseconds(0), std::move(onNoConnection));
}

std::string VarlinkEndpoint::pendingWork() const {
    size_t calls = server_.callsInFlight();
    return calls == 0 ? std::string() : std::format("{} call(s) still unanswered", calls);
}

} // namespace svckit
