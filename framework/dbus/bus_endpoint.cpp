// Bus mode: the service's connection to the system or session bus (bus_endpoint.hpp).
#include "dbus/bus_endpoint.hpp"

#include <svckit/log.hpp>

#include <algorithm>
#include <format>
#include <utility>

namespace svckit::dbus {

namespace {

Result<void> check(int r, std::string_view what) {
    if (r < 0)
        return std::unexpected(Error::fromErrno(-r, std::format("Failed to {}", what)));
    return {};
}

std::string_view busName(BusType bus) {
    return bus == BusType::System ? "system bus" : "session bus";
}

// The sender's credentials the bus daemon vouches for (GetConnectionCredentials): the pid, the uid the
// kernel gave the daemon for the connection (SO_PEERCRED: the effective uid; sd-bus files the daemon's
// UnixUserID under EUID), the groups, the pidfd (ProcessFD) and the security label. The real uid and the
// primary gid are not among them: sd-bus would read them from /proc/PID, by pid, so they are not asked for;
// gid is the first group.
constexpr uint64_t credsMask = SD_BUS_CREDS_PID | SD_BUS_CREDS_PIDFD | SD_BUS_CREDS_EUID |
                               SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_SELINUX_CONTEXT;

Result<PeerIdentity> copyOf(const PeerIdentity& identity) {
    PeerIdentity copy{.uid = identity.uid,
                      .gid = identity.gid,
                      .pid = identity.pid,
                      .groups = identity.groups,
                      .pidfd = {},
                      .securityLabel = identity.securityLabel};
    if (identity.pidfd) {
        auto fd = identity.pidfd.dup();
        if (!fd)
            return std::unexpected(fd.error());
        copy.pidfd = std::move(*fd);
    }
    return copy;
}

} // namespace

BusEndpoint::BusEndpoint(EventLoop& loop, BusSpec spec, std::vector<ObjectDeclaration> objects,
                         std::function<void(const Error&)> onLost)
    : loop_(loop), spec_(std::move(spec)), objects_(std::move(objects)), onLost_(std::move(onLost)) {}

BusEndpoint::~BusEndpoint() {
    if (nameOwnerChanged_)
        sd_bus_slot_unref(nameOwnerChanged_);
    connection_.reset();
}

Result<std::unique_ptr<BusEndpoint>> BusEndpoint::connect(EventLoop& loop, const BusSpec& spec,
                                                          std::vector<ObjectDeclaration> objects,
                                                          std::function<void(const Error&)> onLost) {
    std::unique_ptr<BusEndpoint> endpoint(new BusEndpoint(loop, spec, std::move(objects), std::move(onLost)));
    if (auto ok = endpoint->start(); !ok)
        return std::unexpected(ok.error());
    return endpoint;
}

Result<void> BusEndpoint::start() {
    if (sd_bus_service_name_is_valid(spec_.name.c_str()) <= 0 || spec_.name.starts_with(':'))
        return fail(EINVAL, "ServiceSpec::bus.name '{}' is not a valid well-known D-Bus name", spec_.name);
    auto batch = IoBatch::create(loop_);
    if (!batch)
        return std::unexpected(batch.error());
    batch_ = std::move(*batch);

    sd_bus* bus = nullptr;
    int r = spec_.bus == BusType::System ? sd_bus_open_system_with_description(&bus, "svckit-bus")
                                         : sd_bus_open_user_with_description(&bus, "svckit-bus");
    if (auto ok = check(r, std::format("connect to the {}", busName(spec_.bus))); !ok)
        return ok;
    // Until the daemon has answered Hello, at most startTimeout: before READY=1, nothing else to serve yet.
    auto deadline = loop_.now() + std::chrono::duration_cast<std::chrono::microseconds>(startTimeout);
    while ((r = sd_bus_is_ready(bus)) == 0) {
        r = sd_bus_process(bus, nullptr);
        if (r < 0)
            break;
        if (r > 0)
            continue;
        auto now = loop_.now();
        if (now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        r = sd_bus_wait(bus, static_cast<uint64_t>((deadline - now).count()));
        if (r < 0)
            break;
    }
    if (r < 0) {
        sd_bus_flush_close_unref(bus);
        return check(r, std::format("connect to the {}", busName(spec_.bus)));
    }

    auto connection =
        ConnectionState::adopt(*this, bus,
                               {.transport = Transport::Bus,
                                .spec = nullptr,
                                .peer = {},
                                .resolver = [this](sd_bus_message* message) { return resolve(message); },
                                .sender = {},
                                .authenticationTimeout = startTimeout,
                                .id = 0});
    if (!connection) {
        sd_bus_close_unref(bus);
        return std::unexpected(connection.error());
    }
    connection_ = std::move(*connection);
    if (connection_->state() != ConnectionState::State::Running)
        return fail(EIO, "The connection to the {} did not come up", busName(spec_.bus));

    // A sender's identity is kept until its unique name goes away.
    if (auto ok = check(sd_bus_match_signal_async(bus, &nameOwnerChanged_, "org.freedesktop.DBus",
                                                  "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                  "NameOwnerChanged", &onNameOwnerChanged, nullptr, this),
                        "watch NameOwnerChanged");
        !ok)
        return ok;

    // The objects are registered (adopt made the instances): now the name, synchronously (before READY=1).
    r = sd_bus_request_name(bus, spec_.name.c_str(), 0);
    if (r < 0)
        return check(r,
                     std::format("own the name '{}' on the {} (is it taken, or does the bus policy not let "
                                 "this user own it?)",
                                 spec_.name, busName(spec_.bus)));
    // Messages read while waiting for the answer are dispatched from the loop (the timeout is 0 with a
    // non-empty read queue).
    connection_->outputQueued();
    logDebug("dbus: owning {} on the {} as {}", spec_.name, busName(spec_.bus), [bus] {
        const char* unique = nullptr;
        return sd_bus_get_unique_name(bus, &unique) >= 0 && unique ? std::string(unique) : std::string("?");
    }());
    return {};
}

Result<PeerIdentity> BusEndpoint::resolve(sd_bus_message* message) {
    const char* sender = sd_bus_message_get_sender(message);
    if (!sender)
        return fail(EBADMSG, "The message has no sender");
    if (auto it = cache_.find(std::string_view(sender)); it != cache_.end())
        return copyOf(it->second);
    auto identity = query(message);
    if (!identity)
        return identity;
    if (sender[0] == ':') { // unique names only: a well-known name may change hands
        if (cache_.size() >= cacheSize && !cacheOrder_.empty()) {
            cache_.erase(cacheOrder_.front());
            cacheOrder_.pop_front();
        }
        auto copy = copyOf(*identity);
        if (copy) {
            cache_.emplace(sender, std::move(*copy));
            cacheOrder_.emplace_back(sender);
        }
    }
    return identity;
}

Result<PeerIdentity> BusEndpoint::query(sd_bus_message* message) {
    sd_bus_creds* raw = nullptr;
    if (auto ok = check(sd_bus_query_sender_creds(message, credsMask, &raw), "ask the bus who the sender is");
        !ok)
        return std::unexpected(ok.error());
    std::unique_ptr<sd_bus_creds, decltype(&sd_bus_creds_unref)> creds(raw, &sd_bus_creds_unref);
    PeerIdentity identity;
    if (pid_t pid = 0; sd_bus_creds_get_pid(creds.get(), &pid) >= 0)
        identity.pid = pid;
    if (uid_t uid = 0; sd_bus_creds_get_euid(creds.get(), &uid) >= 0)
        identity.uid = uid;
    const gid_t* gids = nullptr;
    if (int n = sd_bus_creds_get_supplementary_gids(creds.get(), &gids); n > 0 && gids) {
        identity.groups.assign(gids, gids + n);
        identity.gid = identity.groups.front();
    }
    if (const char* label = nullptr; sd_bus_creds_get_selinux_context(creds.get(), &label) >= 0 && label)
        identity.securityLabel = label;
    // Only a pidfd the daemon gave (ProcessFD) pins the pid: one sd-bus made from the pid (augmented) would
    // not.
    if (int fd = -1; (sd_bus_creds_get_augmented_mask(creds.get()) & SD_BUS_CREDS_PIDFD) == 0 &&
                     sd_bus_creds_get_pidfd_dup(creds.get(), &fd) >= 0)
        identity.pidfd = UniqueFd(fd);
    if (!identity.pidfd && !warnedUnpinned_) {
        warnedUnpinned_ = true;
        logDebug("dbus: the {} gives no ProcessFD: callers are identified by pid only (not pinned)",
                 busName(spec_.bus));
    }
    return identity;
}

int BusEndpoint::onNameOwnerChanged(sd_bus_message* message, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<BusEndpoint*>(userdata);
    const char* name = nullptr;
    const char* oldOwner = nullptr;
    const char* newOwner = nullptr;
    if (sd_bus_message_read(message, "sss", &name, &oldOwner, &newOwner) < 0 || !name || name[0] != ':' ||
        (newOwner && newOwner[0] != '\0'))
        return 0;
    try {
        if (self->cache_.erase(std::string(name)) > 0)
            std::erase(self->cacheOrder_, std::string(name));
    } catch (const std::exception& e) {
        logDebug("dbus: NameOwnerChanged: {}", e.what());
    }
    return 0;
}

Result<void> BusEndpoint::listen(UniqueFd, const SocketSpec& spec) {
    return fail(EINVAL, "Socket '{}': the bus connection serves no socket", spec.name);
}

Result<void> BusEndpoint::serveConnection(UniqueFd, const SocketSpec& spec) {
    return fail(EINVAL, "Socket '{}': the bus connection serves no socket", spec.name);
}

void BusEndpoint::stopAccepting() noexcept {
    if (!connection_ || connection_->state() == ConnectionState::State::Closed)
        return;
    int r = sd_bus_release_name_async(connection_->bus(), nullptr, spec_.name.c_str(), nullptr, nullptr);
    if (r < 0)
        logDebug("dbus: releasing {}: {}", spec_.name, Error::fromErrno(-r, "failed").message());
    connection_->outputQueued();
}

Result<void> BusEndpoint::setNoConnectionCallback(std::function<void()>) {
    return {}; // never idle (bus_endpoint.hpp)
}

void BusEndpoint::whenDrained(std::function<void()> onDrained) {
    onDrained_ = std::move(onDrained);
    checkDrained();
}

void BusEndpoint::checkDrained() {
    if (!onDrained_)
        return;
    if (connection_ && connection_->writing()) {
        checkAgainShortly(loop_, drainRetry_, [this] { checkDrained(); });
        return;
    }
    auto onDrained = std::exchange(onDrained_, nullptr);
    onDrained();
}

std::string BusEndpoint::pendingWork() const {
    return connection_ && connection_->writing() ? "replies to bus callers unwritten" : "";
}

void BusEndpoint::forEach(std::string_view path, const std::function<void(ObjectBase&)>& visit) {
    if (connection_)
        connection_->forObject(path, visit);
}

void BusEndpoint::closed(ConnectionState& connection) noexcept {
    if (connection_.get() != &connection)
        return;
    batch_->retire(std::move(connection_)); // destroyed at the end of the pass, outside its callbacks
    Error error(ECONNRESET, std::format("Lost the connection to the {}", busName(spec_.bus)));
    if (onLost_)
        std::exchange(onLost_, nullptr)(error);
    checkDrained();
}

} // namespace svckit::dbus
