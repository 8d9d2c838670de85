#include "dbus/connection.hpp"

#include "dbus/object.hpp"

#include <svckit/log.hpp>

#include <systemd/sd-id128.h>

#include <algorithm>
#include <format>
#include <sys/epoll.h>

namespace svckit::dbus {

namespace {

Result<void> check(int r, std::string_view what) {
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, std::format("Failed to {}", what)));
    return {};
}

} // namespace

void checkAgainShortly(EventLoop& loop, EventSource& timer, std::function<void()> check) {
    constexpr std::chrono::milliseconds delay{20};
    if (timer) {
        (void)timer.rearmTimer(delay);
        return;
    }
    if (auto made = loop.addTimer(delay, std::move(check)))
        timer = std::move(*made);
}

// --- CallScope

ConnectionState::CallScope::CallScope(ConnectionState& connection)
    : connection_(connection), previous_(std::move(connection.current_)) {
    connection.current_.reset();
    if (!connection.options_.resolver)
        return; // peer-to-peer: the caller is the connection's peer
    sd_bus_message* message = sd_bus_get_current_message(connection.bus_);
    if (!message) {
        error_ = Error(ENOMSG, "no message is being dispatched");
        return;
    }
    auto identity = connection.options_.resolver(message);
    if (!identity) {
        error_ = identity.error();
        return;
    }
    connection.current_ = std::move(*identity);
}

ConnectionState::CallScope::~CallScope() {
    connection_.current_ = std::move(previous_);
}

// --- ConnectionState

ConnectionState::ConnectionState(ConnectionHost& host, Options options)
    : host_(host), options_(std::move(options)), uniqueName_(std::format(":1.{}", options_.id)),
      authenticationDeadline_(host.loop().now() + options_.authenticationTimeout) {}

ConnectionState::~ConnectionState() {
    // The instances unregister their vtables while the bus still exists; sdbus-c++'s connection flushes and
    // closes its reference (a no-op on a closed bus: sd_bus_flush() refuses at once), then ours goes.
    for (auto& [path, object] : objects_)
        try {
            object->object().unregister();
        } catch (const std::exception& e) {
            logDebug("dbus: unregistering {}: {}", path, e.what());
        }
    objects_.clear();
    if (bus_ && state_ != State::Closed)
        sd_bus_close(bus_); // never flushed: a peer that does not read must not block the loop
    connection_.reset();
    if (driverSlot_)
        sd_bus_slot_unref(driverSlot_);
    if (bus_)
        sd_bus_unref(bus_);
}

Result<std::shared_ptr<ConnectionState>> ConnectionState::serve(ConnectionHost& host, UniqueFd fd,
                                                                Options options) {
    std::shared_ptr<ConnectionState> connection(new ConnectionState(host, std::move(options)));
    if (auto ok = connection->startServer(std::move(fd)); !ok)
        return std::unexpected(ok.error());
    return connection;
}

Result<std::shared_ptr<ConnectionState>> ConnectionState::adopt(ConnectionHost& host, sd_bus* bus,
                                                                Options options) {
    std::shared_ptr<ConnectionState> connection(new ConnectionState(host, std::move(options)));
    connection->bus_ = bus;
    int fd = sd_bus_get_fd(bus);
    if (auto ok = check(fd, "get the bus's fd"); !ok)
        return std::unexpected(ok.error());
    if (auto ok = host.batch().add(*connection, fd, 0); !ok)
        return std::unexpected(ok.error());
    connection->process(true);
    return connection;
}

Result<void> ConnectionState::startServer(UniqueFd fd) {
    if (auto ok = check(sd_bus_new(&bus_), "create an sd-bus connection"); !ok)
        return ok;
    sd_id128_t id{};
    if (auto ok = check(sd_id128_randomize(&id), "make a server id"); !ok)
        return ok;
    const SocketSpec* spec = options_.spec;
    int raw = fd.get();
    // EXTERNAL authentication with the peer's uid (SO_PEERCRED); no anonymous clients.
    if (auto ok = check(sd_bus_set_server(bus_, 1, id), "make the connection a server"); !ok)
        return ok;
    // Unix fds are negotiated only where the socket's spec accepts them: elsewhere the client's
    // NEGOTIATE_UNIX_FD is answered ERROR, its sd-bus refuses to append an fd, and the kernel refuses
    // SCM_RIGHTS anyway (SO_PASSRIGHTS off).
    if (auto ok = check(sd_bus_negotiate_fds(bus_, spec && spec->acceptFileDescriptors ? 1 : 0),
                        "negotiate fd passing");
        !ok)
        return ok;
    if (!options_.sender.empty())
        if (auto ok = check(sd_bus_set_sender(bus_, options_.sender.c_str()), "set the sender name"); !ok)
            return ok;
    if (auto ok = check(sd_bus_set_fd(bus_, raw, raw), "hand the socket to sd-bus"); !ok)
        return ok;
    (void)fd.release(); // sd-bus owns it now (sd_bus_close() closes it)
    // org.freedesktop.DBus.Hello on /org/freedesktop/DBus (busctl --address= sends it first).
    if (auto ok = check(sd_bus_add_object(bus_, &driverSlot_, "/org/freedesktop/DBus", &onBusDriver, this),
                        "answer org.freedesktop.DBus.Hello");
        !ok)
        return ok;
    if (auto ok = check(sd_bus_start(bus_), "start the D-Bus server connection"); !ok)
        return ok;
    if (auto ok = host_.batch().add(*this, raw, EPOLLIN); !ok)
        return ok;
    // The whole AUTH ... BEGIN may be in the socket already (and calls after it): the connection may even be
    // served and closed by the time this returns.
    process();
    return {};
}

int ConnectionState::onBusDriver(sd_bus_message* message, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<ConnectionState*>(userdata);
    if (sd_bus_message_is_method_call(message, "org.freedesktop.DBus", "Hello") > 0)
        return sd_bus_reply_method_return(message, "s", self->uniqueName_.c_str());
    return 0; // anything else: sd-bus answers UnknownMethod / UnknownObject
}

Result<void> ConnectionState::becomeRunning() {
    try {
        sd_bus_ref(bus_); // createBusConnection() adopts a reference: this one stays ours
        connection_ = sdbus::createBusConnection(bus_);
        for (const ObjectDeclaration& declaration : host_.objects()) {
            auto object =
                guardObject(*this, sdbus::createObject(*connection_, sdbus::ObjectPath(declaration.path)),
                            declaration.options);
            auto instance = declaration.make(Binding(*this, std::move(object)));
            if (!instance)
                return fail(EINVAL, "The object at {} was not made", declaration.path);
            instance->registerAdaptors();
            objects_.emplace_back(declaration.path, std::move(instance));
        }
    } catch (const std::exception& e) {
        return fail(EIO, "Failed to serve the D-Bus objects on a connection: {}", e.what());
    }
    state_ = State::Running;
    return {};
}

void ConnectionState::onIo(uint32_t) {
    process();
}

void ConnectionState::service() {
    rearm();
}

void ConnectionState::process(bool drain) noexcept {
    for (int i = 0; i < messagesPerWakeup && state_ != State::Closed; ++i) {
        int r = sd_bus_process(bus_, nullptr);
        if (r < 0) {
            close(std::format("sd_bus_process: {}", Error::fromErrno(-r, "failed").message()));
            return;
        }
        if (state_ == State::Authenticating && sd_bus_is_ready(bus_) > 0) {
            if (auto ok = becomeRunning(); !ok) {
                close(ok.error().message());
                return;
            }
            // No call is dispatched in this pass: the first processing runs from serve(), before the host
            // lists the connection, and a handler's forEachDBus() (a signal to every peer, its caller's
            // included) must reach it. The calls that came with the handshake (sd-bus may hold them already
            // read) are processed at once from the timer, on the next turn of the loop.
            rearm();
            processSoon();
            return;
        }
        if (r == 0)
            break;
        // Fairness: once running, a wake-up serves what this connection had sent when it was read, not the
        // calls its peer sends while it is being served (with one call in flight, each answer brings the next
        // call at once, and a loop until r == 0 would serve one peer in bursts while the others wait). sd-bus
        // reads one message per read, exactly its size, so what was not read yet is still in the socket and
        // epoll reports the connection again on the next pass. A drain pass (the first after the handshake,
        // whose reads may have taken calls along; a timer) goes on until sd-bus has nothing to do.
        uint64_t queuedRead = 0;
        if (!drain && state_ == State::Running && sd_bus_get_n_queued_read(bus_, &queuedRead) >= 0 &&
            queuedRead == 0)
            break;
    }
    rearm();
}

void ConnectionState::rearm() noexcept {
    if (state_ == State::Closed)
        return;
    int events = sd_bus_get_events(bus_);
    if (events < 0) {
        close("the bus is closed");
        return;
    }
    if (auto ok = host_.batch().modify(*this, static_cast<uint32_t>(events)); !ok) {
        close(ok.error().message());
        return;
    }
    uint64_t deadline = UINT64_MAX;
    if (sd_bus_get_timeout(bus_, &deadline) < 0)
        deadline = UINT64_MAX;
    if (state_ == State::Authenticating)
        deadline = std::min(deadline, static_cast<uint64_t>(authenticationDeadline_.count()));
    if (deadline == timerArmedAt_)
        return;
    timerArmedAt_ = deadline;
    if (deadline == UINT64_MAX) {
        if (timer_)
            (void)timer_.setEnabled(false);
        return;
    }
    auto now = static_cast<uint64_t>(host_.loop().now().count());
    auto after = std::chrono::microseconds(deadline > now ? deadline - now : 0);
    if (!timer_) {
        auto timer = host_.loop().addTimer(after, [this] { onTimer(); });
        if (!timer) {
            close(timer.error().message());
            return;
        }
        timer_ = std::move(*timer);
        return;
    }
    if (auto ok = timer_.rearmTimer(after); !ok)
        close(ok.error().message());
}

void ConnectionState::processSoon() noexcept {
    if (state_ == State::Closed)
        return;
    timerArmedAt_ = 0;
    if (!timer_) {
        auto timer = host_.loop().addTimer(std::chrono::microseconds(0), [this] { onTimer(); });
        if (!timer) {
            close(timer.error().message());
            return;
        }
        timer_ = std::move(*timer);
        return;
    }
    if (auto ok = timer_.rearmTimer(std::chrono::microseconds(0)); !ok)
        close(ok.error().message());
}

void ConnectionState::onTimer() noexcept {
    timerArmedAt_ = UINT64_MAX;
    if (state_ == State::Authenticating && host_.loop().now() >= authenticationDeadline_) {
        close(std::format("not authenticated within {} ms", options_.authenticationTimeout.count()));
        return;
    }
    // Keeps the connection alive until the pass is over (close() may drop the host's reference).
    auto self = shared_from_this();
    process(true);
}

void ConnectionState::forObject(std::string_view path, const std::function<void(ObjectBase&)>& visit) {
    if (state_ != State::Running)
        return;
    for (auto& [objectPath, object] : objects_)
        if (objectPath == path)
            visit(*object);
}

void ConnectionState::outputQueued() noexcept {
    if (state_ == State::Closed)
        return;
    // A peer that does not read would have every signal queued for it, without bound. Not the bus: the daemon
    // reads, and closing the service's one bus connection would end the service (sd-bus's own bound, 384 Ki
    // messages, refuses a send there with ENOBUFS, an error for the handler that emits).
    uint64_t queued = 0;
    if (options_.transport == Transport::PeerToPeer && sd_bus_get_n_queued_write(bus_, &queued) >= 0 &&
        queued > maxQueuedMessages) {
        close(std::format("its peer does not read: {} messages queued", queued));
        return;
    }
    host_.batch().markDirty(*this);
}

bool ConnectionState::writing() const noexcept {
    uint64_t queued = 0;
    return state_ != State::Closed && sd_bus_get_n_queued_write(bus_, &queued) >= 0 && queued > 0;
}

void ConnectionState::close(std::string_view why) noexcept {
    if (state_ == State::Closed)
        return;
    logDebug("dbus: closing connection {}{}: {}", uniqueName_,
             options_.spec ? std::format(" on '{}'", options_.spec->name) : std::string(), why);
    state_ = State::Closed;
    host_.batch().remove(*this); // with the fd still open
    if (timer_)
        (void)timer_.setEnabled(false); // not freed here: this may run inside its callback
    if (bus_)
        sd_bus_close(bus_);
    host_.closed(*this);
}

} // namespace svckit::dbus
