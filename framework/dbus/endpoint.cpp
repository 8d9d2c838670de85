#include "dbus/endpoint.hpp"

#include <svckit/log.hpp>

#include <algorithm>
#include <fcntl.h>
#include <format>
#include <sys/epoll.h>
#include <sys/socket.h>

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

namespace svckit::dbus {

namespace {

Result<void> setNonblocking(int fd, const SocketSpec& spec) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make socket '{}' non-blocking", spec.name);
    return {};
}

} // namespace

Result<std::unique_ptr<PeerEndpoint>> PeerEndpoint::create(EventLoop& loop, ServerOptions options,
                                                           std::vector<ObjectDeclaration> objects) {
    auto endpoint =
        std::unique_ptr<PeerEndpoint>(new PeerEndpoint(loop, std::move(options), std::move(objects)));
    PeerEndpoint* self = endpoint.get();
    auto batch = IoBatch::create(loop);
    if (!batch)
        return std::unexpected(batch.error());
    endpoint->batch_ = std::move(*batch);
    // Closed connections are counted out, and the service told of the last one gone, from here: never inside
    // the connection's own callbacks.
    auto sweep = loop.addDefer([self] { self->sweep(); });
    if (!sweep)
        return std::unexpected(sweep.error());
    endpoint->sweep_ = std::move(*sweep);
    if (auto ok = endpoint->acceptPause_.init(); !ok)
        return std::unexpected(ok.error());
    return endpoint;
}

PeerEndpoint::PeerEndpoint(EventLoop& loop, ServerOptions options, std::vector<ObjectDeclaration> objects)
    : loop_(loop), options_(std::move(options)), objects_(std::move(objects)),
      acceptPause_(loop, "dbus", [this](bool on) { setAccepting(on); }) {}

PeerEndpoint::~PeerEndpoint() {
    listeners_.clear();
    // Connections (their instances, their place in the batch) go before the batch and the specs.
    for (auto& [raw, connection] : std::exchange(connections_, {}))
        connection->close("the service is stopping");
    batch_.reset();
}

const SocketSpec& PeerEndpoint::keep(const SocketSpec& spec) {
    specs_.push_back(std::make_unique<SocketSpec>(spec));
    return *specs_.back();
}

Result<void> PeerEndpoint::listen(UniqueFd listeningFd, const SocketSpec& spec) {
    // systemd passes its sockets blocking: accepting until EAGAIN needs them non-blocking.
    if (auto ok = setNonblocking(listeningFd.get(), spec); !ok)
        return ok;
    const SocketSpec& kept = keep(spec);
    auto listener =
        std::make_unique<Listener>(Listener{.fd = std::move(listeningFd), .spec = &kept, .source = {}});
    Listener* l = listener.get();
    auto source = loop_.addIo(l->fd.get(), EPOLLIN, [this, l](uint32_t) { onAccept(*l); });
    if (!source)
        return std::unexpected(source.error());
    l->source = std::move(*source);
    listeners_.push_back(std::move(listener));
    return {};
}

Result<void> PeerEndpoint::serveConnection(UniqueFd connectedFd, const SocketSpec& spec) {
    if (auto ok = setNonblocking(connectedFd.get(), spec); !ok)
        return ok;
    if (auto ok = checkAcceptedSocket(connectedFd.get(), spec, AcceptedPolicy::Repair, &counters_); !ok)
        return ok;
    return addConnection(std::move(connectedFd), keep(spec));
}

void PeerEndpoint::onAccept(Listener& listener) {
    acceptPause_.acceptBatch(
        listener.fd.get(), *listener.spec, AcceptedPolicy::Repair, &counters_, acceptsPerWakeup, nullptr,
        [&](UniqueFd fd) { return addConnection(std::move(fd), *listener.spec); },
        [this] { return !listeners_.empty(); }); // a handler may stop the service
}

Result<void> PeerEndpoint::addConnection(UniqueFd fd, const SocketSpec& spec) {
    size_t& onSocket = perSocket_[&spec];
    if (spec.limits.maxConnections != 0 && onSocket >= spec.limits.maxConnections)
        return fail(EBUSY, "Refusing a connection on '{}': {} connections already", spec.name, onSocket);
    auto peer = identityOfPeer(fd.get());
    if (!peer)
        return std::unexpected(
            peer.error().withContext(std::format("Refusing a connection on '{}'", spec.name)));
    uid_t uid = peer->uid;
    size_t& ofUid = perUid_[uid];
    if (options_.maxConnectionsPerUid != 0 && ofUid >= options_.maxConnectionsPerUid) {
        if (ofUid == 0)
            perUid_.erase(uid);
        return fail(EBUSY, "Refusing a connection on '{}': uid {} holds {} connections already", spec.name,
                    uid, ofUid);
    }
    // The caller is the connection's peer, taken above once. Per-message SCM_CREDENTIALS and SCM_PIDFD would
    // only make the kernel build a pidfd on every read for sd-bus to close.
    static constexpr int off = 0;
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_PASSPIDFD, &off, sizeof off);
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
    ConnectionState::Options options{
        .transport = Transport::PeerToPeer,
        .spec = &spec,
        .peer = std::move(*peer),
        .resolver = {},
        .sender = options_.name,
        .authenticationTimeout = options_.authenticationTimeout,
        .id = nextId_++,
    };
    // Counted before it starts: a peer whose whole handshake is buffered may be served (or gone) at once.
    ++onSocket;
    ++ofUid;
    auto connection = ConnectionState::serve(*this, std::move(fd), std::move(options));
    if (!connection) {
        uncount(spec, uid);
        return std::unexpected(
            connection.error().withContext(std::format("Refusing a connection on '{}'", spec.name)));
    }
    if ((*connection)->state() == ConnectionState::State::Closed) {
        uncount(spec, uid);
        return {};
    }
    connections_.emplace(connection->get(), std::move(*connection));
    return {};
}

void PeerEndpoint::uncount(const SocketSpec& spec, uid_t uid) noexcept {
    if (auto count = perSocket_.find(&spec); count != perSocket_.end() && count->second > 0)
        --count->second;
    if (auto count = perUid_.find(uid); count != perUid_.end() && --count->second == 0)
        perUid_.erase(count);
}

void PeerEndpoint::closed(ConnectionState& connection) noexcept {
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return; // closed before it was counted (addConnection undoes the count)
    uncount(*connection.socket(), connection.peer().uid);
    batch_->retire(std::move(it->second)); // destroyed at the end of the pass, outside its callbacks
    connections_.erase(it);
    if (auto ok = sweep_.enableOnce(); !ok)
        logDebug("dbus: {}", ok.error().message());
}

void PeerEndpoint::sweep() {
    acceptPause_.resume(); // their fds are free: a client waiting in a queue can have them
    if (connections_.empty() && onNoConnection_) {
        auto onNoConnection = onNoConnection_; // a copy: the callback may replace itself
        onNoConnection();
    }
    checkDrained();
}

void PeerEndpoint::setAccepting(bool on) {
    for (const auto& listener : listeners_)
        if (auto ok = listener->source.setEnabled(on); !ok)
            logDebug("dbus: {}", ok.error().message());
}

void PeerEndpoint::stopAccepting() noexcept {
    listeners_.clear(); // each source leaves the loop, each fd is closed
}

bool PeerEndpoint::connectionWaiting() const noexcept {
    return std::ranges::any_of(listeners_,
                               [](const auto& listener) { return clientQueued(listener->fd.get()); });
}

Result<void> PeerEndpoint::setNoConnectionCallback(std::function<void()> onNoConnection) {
    onNoConnection_ = std::move(onNoConnection);
    if (onNoConnection_ && connections_.empty())
        return sweep_.enableOnce();
    return {};
}

void PeerEndpoint::forEach(std::string_view path, const std::function<void(ObjectBase&)>& visit) {
    // A copy: a visit may close connections (an emission that fails).
    std::vector<std::shared_ptr<ConnectionState>> live;
    live.reserve(connections_.size());
    for (const auto& [raw, connection] : connections_)
        live.push_back(connection);
    for (const auto& connection : live)
        try {
            connection->forObject(path, visit);
        } catch (const sdbus::Error& e) {
            // One peer's failure (an emission on a connection that just closed) is not the others'.
            logDebug("dbus: {} on connection {}: {}", path, connection->uniqueName(), e.what());
        }
}

void PeerEndpoint::whenDrained(std::function<void()> onDrained) {
    onDrained_ = std::move(onDrained);
    checkDrained();
}

// Handlers run inside one dispatch (an sdbus::Result<> answered later is not waited for): drained once no
// connection has a reply still queued for writing.
void PeerEndpoint::checkDrained() {
    if (!onDrained_)
        return;
    if (std::ranges::any_of(connections_, [](const auto& entry) { return entry.second->writing(); })) {
        checkAgainShortly(loop_, drainRetry_, [this] { checkDrained(); });
        return;
    }
    auto onDrained = std::exchange(onDrained_, nullptr);
    onDrained();
}

std::string PeerEndpoint::pendingWork() const {
    auto writing =
        std::ranges::count_if(connections_, [](const auto& entry) { return entry.second->writing(); });
    return writing == 0 ? std::string()
                        : std::format("{} D-Bus connection(s) with replies unwritten", writing);
}

} // namespace svckit::dbus
