// The varlink server: its registry of interfaces, accepting connections within the limits, the life cycle
// (exit-on-idle, drain), and the glue of the public Server, Call and DeferredCall. Each connection is a
// detail::Connection (connection.cpp); parsing and formatting are the protocol layer's
// (svckit/internal/varlink_protocol.hpp); the connections' sockets are served in batches by an IoBatch
// (svckit/internal/io_batch.hpp); org.varlink.service is builtin.cpp's.
#include <svckit/varlink.hpp>

#include "varlink/builtin.hpp"
#include "varlink/connection.hpp"
#include "varlink/server_internal.hpp"

#include <svckit/log.hpp>
#include <svckit/message.hpp>

#include <svckit/internal/activation.hpp>
#include <svckit/internal/linux_socket.hpp>
#include <svckit/internal/varlink_protocol.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <utility>

namespace svckit::varlink {
namespace {

constexpr int acceptsPerWakeup = 64;

} // namespace

ServerImpl::~ServerImpl() {
    self_.reset();
    // Connections first: they use the batch (and the loop-facing state) until they go.
    connections_.clear();
    batch_.reset();
}

Result<void> ServerImpl::init() {
    if (!allocator_.init())
        return fail(ENOMEM, "Failed to create the JSON allocator");
    auto batch = IoBatch::create(loop_, [this] { afterPass(); });
    if (!batch)
        return std::unexpected(batch.error().withContext("Failed to set up the varlink server"));
    batch_ = std::move(*batch);
    if (auto r = acceptPause_.init(); !r)
        return r;
    if (auto r = addInterface(serviceInterface(*this)); !r)
        return r;
    return addInterface(systemdInterface());
}

void ServerImpl::afterPass() {
    if (trimPending_) [[unlikely]] {
        trimPending_ = false;
        // Freed buffers of a large input are reused by glibc but not given back to the system by themselves:
        // after the first large free, its dynamic thresholds keep even a 14 MB block on the heap.
        ::malloc_trim(0);
    }
    if (onDrained_)
        checkDrained();
}

void ServerImpl::releaseParserMemory() noexcept {
    allocator_.reset();
    trimPending_ = true;
}

void ServerImpl::enforceInputBudget() {
    size_t budget = options_.maxInputBytesTotal;
    while (budget != 0 && counters_.inputBytesHeld > budget) {
        detail::Connection* largest = nullptr;
        for (const auto& [connection, owner] : connections_)
            if (!largest || connection->inputHeldBytes() > largest->inputHeldBytes())
                largest = connection;
        if (!largest || largest->inputHeldBytes() == 0)
            return;
        ++counters_.inputBudgetCloses;
        largest->dropInputOverBudget();
    }
}

const Method* ServerImpl::findMethodSlow(std::string_view name) {
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos)
        return nullptr;
    const InterfaceEntry* interface = findInterface(name.substr(0, dot));
    if (!interface)
        return nullptr;
    auto it = interface->methods.find(name.substr(dot + 1));
    if (it == interface->methods.end())
        return nullptr;
    // Methods live in map nodes: the pointer stays valid while interfaces are added.
    lastMethodName_.assign(name);
    lastMethod_ = &it->second;
    return lastMethod_;
}

Result<void> Call::send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write, void* context) {
    if (deferred_)
        return fail(EBUSY, "The call to {} was deferred", method_);
    if (finished_)
        return fail(EALREADY, "The call to {} has already been answered", method_);
    if (kind == detail::ReplyKind::Continues && !flags_.more)
        return fail(EBADRQC, "The call to {} was made without 'more'", method_);
    auto r = connection_->emit(id_, flags_, kind, name, write, context);
    if (kind != detail::ReplyKind::Continues)
        finished_ = true;
    return r;
}

Result<void> Call::sendUpgrade(detail::WriteFn write, void* context, UpgradeHandler then) {
    if (deferred_)
        return fail(EBUSY, "The call to {} was deferred", method_);
    if (finished_)
        return fail(EALREADY, "The call to {} has already been answered", method_);
    auto r = connection_->emitUpgrade(id_, flags_, write, context, std::move(then));
    if (r)
        finished_ = true;
    return r;
}

bool Call::writable() const noexcept {
    return connection_->writable();
}

DeferredCall Call::defer() {
    if (finished_ || deferred_)
        return DeferredCall();
    deferred_ = true;
    connection_->deferred(id_, flags_);
    DeferredCall deferred(connection_->weak_from_this(), id_, flags_);
    deferred.finished_ = false;
    return deferred;
}

DeferredCall::DeferredCall(DeferredCall&& other) noexcept
    : connection_(std::move(other.connection_)), id_(other.id_), flags_(other.flags_),
      finished_(std::exchange(other.finished_, true)) {}

DeferredCall& DeferredCall::operator=(DeferredCall&& other) noexcept {
    if (this != &other) {
        abandon();
        connection_ = std::move(other.connection_);
        id_ = other.id_;
        flags_ = other.flags_;
        finished_ = std::exchange(other.finished_, true);
    }
    return *this;
}

DeferredCall::~DeferredCall() {
    abandon();
}

bool DeferredCall::connected() const noexcept {
    auto connection = connection_.lock();
    return connection && !connection->closed();
}

bool DeferredCall::writable() const noexcept {
    auto connection = connection_.lock();
    return connection && connection->writable();
}

void DeferredCall::whenWritable(std::function<void()> then) {
    if (auto connection = connection_.lock(); connection && !finished_)
        connection->whenWritable(std::move(then));
}

void DeferredCall::abandon() noexcept {
    if (finished_)
        return;
    finished_ = true;
    if (auto connection = connection_.lock())
        connection->abandon(id_, flags_);
}

Result<void> DeferredCall::send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write,
                                void* context) {
    if (finished_)
        return fail(EALREADY, "The call has already been answered");
    if (kind == detail::ReplyKind::Continues && !flags_.more)
        return fail(EBADRQC, "The call was made without 'more'");
    auto connection = connection_.lock();
    if (kind != detail::ReplyKind::Continues)
        finished_ = true;
    if (!connection)
        return fail(ENOTCONN, "The connection has been closed");
    std::exception_ptr failure;
    try {
        if (kind == detail::ReplyKind::Continues)
            return connection->emit(id_, flags_, kind, name, write, context);
        auto r = connection->emit(id_, flags_, kind, name, write, context);
        connection->deferredDone();
        return r;
    } catch (...) {
        failure = std::current_exception(); // the writer threw (the reply was not written)
    }
    finished_ = true;
    return connection->writerFailed(id_, flags_, failure);
}

Result<void> DeferredCall::sendUpgrade(detail::WriteFn write, void* context, UpgradeHandler then) {
    if (finished_)
        return fail(EALREADY, "The call has already been answered");
    auto connection = connection_.lock();
    if (!connection) {
        finished_ = true;
        return fail(ENOTCONN, "The connection has been closed");
    }
    Result<void> r;
    try {
        r = connection->emitUpgrade(id_, flags_, write, context, std::move(then));
    } catch (...) {
        finished_ = true;
        return connection->writerFailed(id_, flags_, std::current_exception());
    }
    if (r || r.error().code() == ENOTCONN) {
        finished_ = true;
        connection->deferredDone();
    }
    return r;
}

Result<void> ServerImpl::addInterface(Interface interface) {
    if (!protocol::isValidInterfaceName(interface.name))
        return fail(EINVAL, "Invalid varlink interface name '{}'", interface.name);
    if (interfaces_.contains(interface.name))
        return fail(EEXIST, "Interface '{}' is already registered", interface.name);
    InterfaceEntry entry{
        .name = interface.name, .description = std::move(interface.description), .methods = {}};
    for (Method& method : interface.methods) {
        if (!protocol::isValidMethodName(method.name))
            return fail(EINVAL, "Invalid varlink method name '{}.{}'", interface.name, method.name);
        if (!method.handler)
            return fail(EINVAL, "Method '{}.{}' has no handler", interface.name, method.name);
        std::string name = method.name;
        if (!entry.methods.emplace(std::move(name), std::move(method)).second)
            return fail(EEXIST, "Method '{}' is listed twice in '{}'", name, interface.name);
    }
    interfaceNames_.insert(std::ranges::upper_bound(interfaceNames_, interface.name), interface.name);
    interfaces_.emplace(std::move(interface.name), std::move(entry));
    return {};
}

Result<void> ServerImpl::listen(UniqueFd fd, SocketSpec spec) {
    auto listener =
        std::make_unique<Listener>(Listener{.fd = std::move(fd), .spec = std::move(spec), .source = {}});
    size_t index = listeners_.size();
    auto source = loop_.addIo(listener->fd.get(), EPOLLIN, [this, index](uint32_t) { onAccept(index); });
    if (!source)
        return std::unexpected(source.error());
    listener->source = std::move(*source);
    listeners_.push_back(std::move(listener));
    return {};
}

void ServerImpl::onAccept(size_t listenerIndex) {
    Listener& listener = *listeners_[listenerIndex];
    acceptPause_.acceptBatch(
        listener.fd.get(), listener.spec, options_.acceptedPolicy, &counters_.sockets, acceptsPerWakeup,
        &counters_.connectionsRefused,
        [&](UniqueFd fd) { return addConnection(std::move(fd), listener.spec); }, [] { return true; });
}

void ServerImpl::setAccepting(bool on) {
    for (const auto& listener : listeners_)
        if (auto r = listener->source.setEnabled(on); !r)
            logDebug("varlink: {}", r.error().message());
}

Result<void> ServerImpl::addConnection(UniqueFd fd, const SocketSpec& spec) {
    if (connections_.size() >= options_.maxConnections) {
        ++counters_.connectionsRefused;
        return fail(EBUSY, "Refusing a connection: {} connections already", connections_.size());
    }
    auto peer = identityOfPeer(fd.get());
    if (!peer) {
        ++counters_.connectionsRefused;
        return std::unexpected(peer.error().withContext("Refusing a connection"));
    }
    if (spec.type == SocketType::Stream) {
        // Varlink's caller is the connection's peer, taken above once (as sd-varlink does). Per-message
        // SCM_CREDENTIALS and SCM_PIDFD would only make the kernel build a pidfd on every read for us to
        // close: about a third of the server's CPU per call when each wake-up carries one call. The listener
        // keeps its options (they are what its unit promised, and what the next connection inherits).
        static constexpr int off = 0;
        (void)::setsockopt(fd.get(), SOL_SOCKET, SO_PASSPIDFD, &off, sizeof off);
        (void)::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
    }
    uid_t uid = peer->uid;
    if (options_.maxConnectionsPerUid != 0 && perUid_[uid] >= options_.maxConnectionsPerUid) {
        ++counters_.connectionsRefused;
        return fail(EBUSY, "Refusing a connection: UID {} has {} connections already", uid, perUid_[uid]);
    }
    bool plainReads = spec.type == SocketType::Stream && !spec.acceptFileDescriptors;
    auto connection = std::make_shared<detail::Connection>(*this, std::move(fd), spec.acceptFileDescriptors,
                                                           plainReads, std::move(*peer));
    if (auto r = connection->start(); !r)
        return r;
    ++perUid_[uid];
    ++counters_.connectionsAccepted;
    connections_.emplace(connection.get(), std::move(connection));
    if (idleTimer_)
        (void)idleTimer_.setEnabled(false); // not idle any more
    return {};
}

void ServerImpl::closed(detail::Connection& connection) {
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return;
    ++counters_.connectionsClosed;
    if (auto u = perUid_.find(connection.uid()); u != perUid_.end() && --u->second == 0)
        perUid_.erase(u);
    // Its code may still be on the stack (it closed while serving itself, or a caller holds it): it is freed
    // at the end of the batch's pass.
    batch_->retire(std::move(it->second));
    connections_.erase(it);
    acceptPause_.resume(); // its fds are free: a client waiting in a queue can have them
    if (idle())
        armIdleTimer();
}

std::shared_ptr<void> ServerImpl::holdUpgraded() {
    struct Hold {
        std::weak_ptr<ServerImpl*> server;
        explicit Hold(std::weak_ptr<ServerImpl*> s) : server(std::move(s)) {}
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        ~Hold() {
            if (auto self = server.lock(); self && --(*self)->upgradedHeld_ == 0 && (*self)->idle())
                (*self)->armIdleTimer();
        }
    };
    ++upgradedHeld_;
    return std::make_shared<Hold>(self_);
}

void ServerImpl::stopAccepting() noexcept {
    listeners_.clear(); // each source leaves the loop, each fd is closed
}

Result<void> ServerImpl::setIdleCallback(std::chrono::microseconds after, std::function<void()> onIdle) {
    if (!onIdle) {
        onIdle_ = nullptr;
        idleTimer_.reset();
        return {};
    }
    if (!idleTimer_) {
        auto timer = loop_.addTimer(after, [this] { onIdleTimer(); });
        if (!timer)
            return std::unexpected(timer.error());
        idleTimer_ = std::move(*timer);
    }
    idleAfter_ = after;
    onIdle_ = std::move(onIdle);
    if (idle())
        armIdleTimer();
    else
        (void)idleTimer_.setEnabled(false);
    return {};
}

void ServerImpl::armIdleTimer() {
    if (!idleTimer_)
        return;
    if (auto r = idleTimer_.rearmTimer(idleAfter_); !r)
        logDebug("varlink: {}", r.error().message());
}

void ServerImpl::onIdleTimer() {
    if (!idle() || !onIdle_)
        return;
    // A client waiting in a listening socket's queue is about to be accepted: not idle.
    if (connectionWaiting()) {
        armIdleTimer();
        return;
    }
    auto onIdle = onIdle_; // a copy: the callback may replace itself
    onIdle();
}

void ServerImpl::whenDrained(std::function<void()> onDrained) {
    onDrained_ = std::move(onDrained);
    if (onDrained_)
        checkDrained();
}

bool ServerImpl::drained() const {
    if (callsInFlight_ != 0)
        return false;
    return std::ranges::all_of(connections_, [](const auto& entry) { return entry.second->drained(); });
}

void ServerImpl::checkDrained() {
    if (!drained())
        return;
    auto onDrained = std::exchange(onDrained_, nullptr);
    onDrained();
}

Result<Server> Server::create(EventLoop& loop, ServerOptions options) {
    auto impl = std::make_unique<ServerImpl>(loop, std::move(options));
    if (auto r = impl->init(); !r)
        return std::unexpected(r.error());
    return Server(std::move(impl));
}

Server::Server(std::unique_ptr<ServerImpl> impl) noexcept : impl_(std::move(impl)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

Result<void> Server::addInterface(Interface interface) {
    return impl_->addInterface(std::move(interface));
}

Result<void> Server::listen(UniqueFd listeningFd, SocketSpec spec) {
    if (auto stream = internal::requireVarlinkStream(listeningFd.get(), spec); !stream)
        return stream;
    int flags = ::fcntl(listeningFd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(listeningFd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make listening socket '{}' non-blocking", spec.name);
    return impl_->listen(std::move(listeningFd), std::move(spec));
}

Result<void> Server::serveConnection(UniqueFd connectedFd, SocketSpec spec) {
    if (auto stream = internal::requireVarlinkStream(connectedFd.get(), spec); !stream)
        return stream;
    int flags = ::fcntl(connectedFd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(connectedFd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make connection of '{}' non-blocking", spec.name);
    if (auto r = checkAcceptedSocket(connectedFd.get(), spec, impl_->options_.acceptedPolicy,
                                     &impl_->counters_.sockets);
        !r)
        return r;
    return impl_->addConnection(std::move(connectedFd), spec);
}

void Server::stopAccepting() noexcept {
    impl_->stopAccepting();
}

Result<void> Server::setIdleCallback(std::chrono::microseconds after, std::function<void()> onIdle) {
    return impl_->setIdleCallback(after, std::move(onIdle));
}

void Server::whenDrained(std::function<void()> onDrained) {
    impl_->whenDrained(std::move(onDrained));
}

const ServerCounters& Server::counters() const noexcept {
    return impl_->counters_;
}

size_t Server::connectionCount() const noexcept {
    return impl_->connections_.size() + impl_->upgradedHeld_;
}

bool ServerImpl::connectionWaiting() const noexcept {
    return std::ranges::any_of(listeners_,
                               [](const auto& listener) { return clientQueued(listener->fd.get()); });
}

bool Server::connectionWaiting() const noexcept {
    return impl_->connectionWaiting();
}

size_t Server::callsInFlight() const noexcept {
    return impl_->callsInFlight_;
}

} // namespace svckit::varlink
