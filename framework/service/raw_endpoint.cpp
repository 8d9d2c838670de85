#include "service/raw_endpoint.hpp"

#include <svckit/log.hpp>
#include <svckit/message.hpp>

#include <algorithm>
#include <fcntl.h>
#include <format>
#include <sys/epoll.h>
#include <sys/socket.h>

namespace svckit::raw {

namespace {

constexpr int acceptsPerWakeup = 16;
constexpr int messagesPerWakeup = 16;
constexpr size_t messageBufferSize = 64 * 1024;

// The connection's peer as the sender of one message on a stream: the same facts, its own pidfd.
Result<PeerIdentity> copyOf(const PeerIdentity& peer) {
    PeerIdentity copy{.uid = peer.uid,
                      .gid = peer.gid,
                      .pid = peer.pid,
                      .groups = peer.groups,
                      .pidfd = {},
                      .securityLabel = peer.securityLabel};
    if (peer.pidfd) {
        auto pidfd = peer.pidfd.dup();
        if (!pidfd)
            return std::unexpected(pidfd.error());
        copy.pidfd = std::move(*pidfd);
    }
    return copy;
}

Result<void> setNonblocking(int fd, const SocketSpec& spec) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make socket '{}' non-blocking", spec.name);
    return {};
}

} // namespace

// --- Connection

Connection::Connection(EndpointCore& endpoint, UniqueFd fd, const SocketSpec& spec, PeerIdentity peer,
                       bool handedOver)
    : endpoint_(&endpoint), fd_(std::move(fd)), spec_(spec), peer_(std::move(peer)), handedOver_(handedOver) {
}

Connection::~Connection() = default;

EventLoop& Connection::loop() const noexcept {
    return endpoint_->loop_;
}

const ConnectionCounters& Connection::counters() const noexcept {
    return endpoint_->counters_;
}

Result<void> Connection::watch(uint32_t events, std::function<void(uint32_t revents)> onIo) {
    if (!fd_)
        return fail(EBADF, "The connection is closed");
    auto source = endpoint_->loop_.addIo(fd_.get(), events, std::move(onIo));
    if (!source)
        return std::unexpected(source.error());
    io_ = std::move(*source);
    bool wasRead = std::exchange(readBySvckit_, false);
    if (wasRead)
        endpoint_->checkDrained();
    return {};
}

Result<size_t> Connection::send(std::span<const std::byte> data) {
    if (!fd_)
        return fail(EBADF, "The connection is closed");
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return failErrno("Failed to send on a connection of '{}'", spec_.name);
    return static_cast<size_t>(n);
}

void Connection::close() noexcept {
    if (!fd_)
        return;
    io_.reset(); // leaves the loop while the fd is still open
    fd_.reset();
    endpoint_->closed(*this);
}

// --- EndpointCore

Result<std::unique_ptr<EndpointCore>> EndpointCore::create(EventLoop& loop, Handlers handlers) {
    for (const auto& [name, handler] : handlers)
        if (!handler.message && !handler.connected)
            return fail(EINVAL, "The handler of raw socket '{}' has neither `message` nor `connected`", name);
    auto endpoint = std::unique_ptr<EndpointCore>(new EndpointCore(loop, std::move(handlers)));
    // Closed connections are destroyed, and the service told of the last one gone, from here: never inside
    // the connection's own callbacks.
    EndpointCore* self = endpoint.get();
    auto sweep = loop.addDefer([self] { self->sweep(); });
    if (!sweep)
        return std::unexpected(sweep.error());
    endpoint->sweep_ = std::move(*sweep);
    if (auto ok = endpoint->acceptPause_.init(); !ok)
        return std::unexpected(ok.error());
    return endpoint;
}

EndpointCore::EndpointCore(EventLoop& loop, Handlers handlers)
    : loop_(loop), handlers_(std::move(handlers)),
      acceptPause_(loop, "raw", [this](bool on) { setAccepting(on); }), buffer_(messageBufferSize) {}

EndpointCore::~EndpointCore() {
    // Connections (and their I/O sources) go before the specs they refer to.
    listeners_.clear();
    connections_.clear();
    closed_.clear();
}

Result<const Handler*> EndpointCore::handlerFor(const SocketSpec& spec) const {
    auto it = handlers_.find(spec.name);
    if (it == handlers_.end())
        return fail(ENOENT, "Raw socket '{}' has no handler (Service::addRaw)", spec.name);
    return &it->second;
}

const SocketSpec& EndpointCore::keep(const SocketSpec& spec) {
    specs_.push_back(std::make_unique<SocketSpec>(spec));
    return *specs_.back();
}

Result<void> EndpointCore::listen(UniqueFd listeningFd, const SocketSpec& spec) {
    auto handler = handlerFor(spec);
    if (!handler)
        return std::unexpected(handler.error());
    // systemd passes its sockets blocking: accepting until EAGAIN needs them non-blocking.
    if (auto ok = setNonblocking(listeningFd.get(), spec); !ok)
        return ok;
    const SocketSpec& kept = keep(spec);
    auto listener = std::make_unique<Listener>(
        Listener{.fd = std::move(listeningFd), .spec = &kept, .handler = *handler, .source = {}});
    Listener* l = listener.get();
    auto source = loop_.addIo(l->fd.get(), EPOLLIN, [this, l](uint32_t) { onAccept(*l); });
    if (!source)
        return std::unexpected(source.error());
    l->source = std::move(*source);
    listeners_.push_back(std::move(listener));
    if ((*handler)->listening)
        (*handler)->listening(kept, l->fd.get());
    return {};
}

Result<void> EndpointCore::serveConnection(UniqueFd connectedFd, const SocketSpec& spec) {
    auto handler = handlerFor(spec);
    if (!handler)
        return std::unexpected(handler.error());
    if (auto ok = setNonblocking(connectedFd.get(), spec); !ok)
        return ok;
    if (auto ok = checkAcceptedSocket(connectedFd.get(), spec, AcceptedPolicy::Repair, &counters_); !ok)
        return ok;
    return addConnection(std::move(connectedFd), keep(spec), **handler, true);
}

void EndpointCore::onAccept(Listener& listener) {
    acceptPause_.acceptBatch(
        listener.fd.get(), *listener.spec, AcceptedPolicy::Repair, &counters_, acceptsPerWakeup, nullptr,
        [&](UniqueFd fd) { return addConnection(std::move(fd), *listener.spec, *listener.handler, false); },
        [this] { return !listeners_.empty(); }); // a handler may stop the service
}

Result<void> EndpointCore::addConnection(UniqueFd fd, const SocketSpec& spec, const Handler& handler,
                                         bool handedOver) {
    size_t& onSocket = perSocket_[&spec];
    if (spec.limits.maxConnections != 0 && onSocket >= spec.limits.maxConnections)
        return fail(EBUSY, "Refusing a connection on '{}': {} connections already", spec.name, onSocket);
    auto peer = identityOfPeer(fd.get());
    if (!peer)
        return std::unexpected(
            peer.error().withContext(std::format("Refusing a connection on '{}'", spec.name)));
    auto owned =
        std::unique_ptr<Connection>(new Connection(*this, std::move(fd), spec, std::move(*peer), handedOver));
    Connection& connection = *owned;
    connections_.emplace(&connection, std::move(owned));
    ++onSocket;
    if (handler.message)
        if (auto ok = watchMessages(connection, handler); !ok) {
            connection.close();
            return ok;
        }
    if (handler.connected)
        handler.connected(connection);
    return {};
}

Result<void> EndpointCore::watchMessages(Connection& connection, const Handler& handler) {
    auto source = loop_.addIo(connection.fd(), EPOLLIN,
                              [this, &connection, &handler](uint32_t) { onReadable(connection, handler); });
    if (!source)
        return std::unexpected(source.error());
    connection.io_ = std::move(*source);
    connection.readBySvckit_ = true;
    return {};
}

void EndpointCore::onReadable(Connection& connection, const Handler& handler) {
    const SocketSpec& spec = connection.socket();
    for (int i = 0; i < messagesPerWakeup && connection.open() && connection.readBySvckit_; ++i) {
        auto received =
            receiveMessage(connection.fd(), buffer_, {.acceptFds = spec.acceptFileDescriptors}, &counters_);
        if (!received) {
            if (received.error().code() == EAGAIN)
                return;
            logDebug("raw: closing a connection on '{}': {}", spec.name, received.error().message());
            connection.close();
            return;
        }
        if (received->eof) {
            closeAsync(received->fds);
            connection.close();
            return;
        }
        Message message{.data = std::span<const std::byte>(buffer_.data(), received->size),
                        .truncated = received->truncated,
                        .sender = spec.type == SocketType::SeqPacket ? identityOfMessage(*received)
                                                                     : copyOf(connection.peer()),
                        .fds = std::move(received->fds)};
        handler.message(connection, message);
        // What the handler did not take: never closed on the loop thread (docs/security.md).
        closeAsync(message.fds);
    }
}

void EndpointCore::setAccepting(bool on) {
    for (const auto& listener : listeners_)
        if (auto ok = listener->source.setEnabled(on); !ok)
            logDebug("raw: {}", ok.error().message());
}

void EndpointCore::stopAccepting() noexcept {
    listeners_.clear(); // each source leaves the loop, each fd is closed
}

bool EndpointCore::connectionWaiting() const noexcept {
    return std::ranges::any_of(listeners_,
                               [](const auto& listener) { return clientQueued(listener->fd.get()); });
}

Result<void> EndpointCore::setNoConnectionCallback(std::function<void()> onNoConnection) {
    onNoConnection_ = std::move(onNoConnection);
    if (onNoConnection_ && connections_.empty())
        return sweep_.enableOnce();
    return {};
}

void EndpointCore::closed(Connection& connection) {
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return;
    if (auto count = perSocket_.find(&connection.socket()); count != perSocket_.end() && count->second > 0)
        --count->second;
    closed_.push_back(std::move(it->second));
    connections_.erase(it);
    if (auto ok = sweep_.enableOnce(); !ok)
        logDebug("raw: {}", ok.error().message());
}

void EndpointCore::sweep() {
    closed_.clear();
    acceptPause_.resume(); // their fds are free: a client waiting in a queue can have them
    if (connections_.empty() && onNoConnection_) {
        auto onNoConnection = onNoConnection_; // a copy: the callback may replace itself
        onNoConnection();
    }
    checkDrained();
}

size_t EndpointCore::drivenByHandler() const noexcept {
    return static_cast<size_t>(
        std::ranges::count_if(connections_, [](const auto& entry) { return !entry.second->readBySvckit_; }));
}

void EndpointCore::whenDrained(std::function<void()> onDrained) {
    onDrained_ = std::move(onDrained);
    checkDrained();
}

void EndpointCore::checkDrained() {
    if (!onDrained_ || drivenByHandler() != 0)
        return;
    auto onDrained = std::exchange(onDrained_, nullptr);
    onDrained();
}

std::string EndpointCore::pendingWork() const {
    size_t driven = drivenByHandler();
    return driven == 0 ? std::string() : std::format("{} raw connection(s) still open", driven);
}

} // namespace svckit::raw
