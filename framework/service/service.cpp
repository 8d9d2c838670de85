// The Service lifecycle: acquire and verify the sockets, serve them on one loop (or in worker processes),
// notify systemd, stop gracefully.
#include "base/private.hpp"
#include "service/dbus_support.hpp"
#include "service/raw_endpoint.hpp"
#include "service/spec_names.hpp"
#include "service/supervisor.hpp"
#include "service/varlink_endpoint.hpp"

#include <svckit/activation.hpp>
#include <svckit/endpoint.hpp>
#include <svckit/log.hpp>
#include <svckit/service.hpp>

#include <svckit/internal/activation.hpp>
#include <svckit/internal/fd_limits.hpp>
#include <svckit/internal/refusal.hpp>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <sys/resource.h>
#include <map>
#include <print>
#include <format>
#include <unistd.h>
#include <utility>

namespace svckit {

namespace {

using namespace std::chrono_literals;

// How long a graceful stop waits for in-flight calls before exiting anyway (systemd's own TimeoutStopSec=
// default is 90 s; a service that needs longer says so in its stop()).
constexpr auto drainTimeout = 10s;

// Loop iterations run before READY=1 to answer what is already queued (Service::serve): one accepts the
// waiting connections, one reads and answers their calls; a spare for an Accept=yes connection's hang-up.
constexpr int queuedIterations = 3;

void notify(bool enabled, const std::string& state) {
    if (enabled)
        (void)sd_notify(0, state.c_str());
}

// Before the sockets are acquired (their specs are copied from spec_) and the workers forked (they inherit
// the limit): the soft RLIMIT_NOFILE up to the hard one, then the connection caps down to what fits in it.
void fitCapsToFdLimit(ServiceSpec& spec) {
    auto limit = raiseFdLimit();
    if (!limit) {
        logWarning("{}", limit.error().message());
        rlimit current{};
        if (::getrlimit(RLIMIT_NOFILE, &current) < 0)
            return;
        limit = static_cast<uint64_t>(current.rlim_cur);
    }
    auto needed = fdsNeeded(spec);
    auto clamped = clampCapsToFdLimit(spec, *limit);
    if (!clamped.empty())
        logWarning("{}", describeClamped(*limit, needed, clamped));
    else
        logDebug("RLIMIT_NOFILE is {}; the connection caps need {}", *limit,
                 needed ? std::to_string(*needed) : std::string("an unbounded number of fds"));
}

} // namespace

namespace detail {

namespace {
const DBusSupport* installedDBusSupport = nullptr;
} // namespace

const DBusSupport* dbusSupport() noexcept {
    return installedDBusSupport;
}

void setDBusSupport(const DBusSupport* support) noexcept {
    installedDBusSupport = support;
}

const SocketSpec& firstSocket(const ServiceSpec& spec) {
    auto first = std::ranges::find_if(spec.sockets, [](const SocketSpec& s) { return !s.accept; });
    return first != spec.sockets.end() ? *first : spec.sockets.front();
}

std::string socketNames(const ServiceSpec& spec) {
    std::string names;
    for (const SocketSpec& s : spec.sockets)
        names += (names.empty() ? "" : ", ") + s.name;
    return names;
}

} // namespace detail

struct Service::Acquired {
    SocketSpec spec;
    UniqueFd fd;
    bool connected = false; // an Accept=yes connection rather than a listening socket
};

struct Service::Runtime {
    explicit Runtime(EventLoop l) : loop(std::move(l)) {}
    EventLoop loop;
    // One endpoint per protocol served (the registry: Service::makeEndpoint).
    std::map<Protocol, std::unique_ptr<Endpoint>> endpoints;
    // Bus mode (ServiceSpec::bus): the connection to the bus, an endpoint like the others for the life cycle.
    std::unique_ptr<Endpoint> bus;
    VarlinkEndpoint* varlink = nullptr; // the varlink one, for Service::varlink()
    bool notify = true;                 // the main process talks to systemd; workers do not
    bool stopping = false;
    // The start-up report (log lines and READY=1), sent once: after the calls already queued at start-up are
    // answered (Service::serve), or by requestStop() if a stop comes first, so that READY=1 always precedes
    // STOPPING=1.
    std::function<void()> announce;
    // The service set its own STATUS= (setStatus) while the calls queued at start-up were answered: READY=1
    // then keeps it rather than writing "Serving N sockets" over it.
    bool statusSet = false;
    size_t undrained = 0; // endpoints a graceful stop still waits for
    std::vector<EventSource> sources;
    EventSource idleTimer;
    EventSource drainTimer;
    EventSource drainCheck; // the first look at the endpoints' drain, once pending input has been read

    [[nodiscard]] size_t connectionCount() const {
        size_t n = 0;
        for (Endpoint* endpoint : all())
            n += endpoint->connectionCount();
        return n;
    }
    // Every endpoint: one per protocol served on sockets, and the bus connection.
    [[nodiscard]] std::vector<Endpoint*> all() const {
        std::vector<Endpoint*> list;
        for (const auto& [protocol, endpoint] : endpoints)
            list.push_back(endpoint.get());
        if (bus)
            list.push_back(bus.get());
        return list;
    }
};

Service::Service(ServiceSpec spec) : spec_(std::move(spec)) {}
Service::~Service() = default;

UnitOptions Service::unitOptions() const {
    UnitOptions options;
    for (const varlink::Interface& interface : interfaces_)
        options.varlinkInterfaces.push_back(interface.name);
    return options;
}

void Service::addVarlink(varlink::Interface interface) {
    std::optional<Error> error;
    if (runtime_)
        error = Error(EBUSY, "Interfaces must be added before the service runs");
    for (const auto& existing : interfaces_)
        if (!error && existing.name == interface.name)
            error = Error(EEXIST, std::format("Interface '{}' is declared twice", interface.name));
    if (error) {
        if (!setupError_)
            setupError_ = std::move(error);
        return;
    }
    interfaces_.push_back(std::move(interface));
}

void Service::addVarlink(Result<varlink::Interface> interface) {
    if (!interface) {
        if (!setupError_)
            setupError_ = interface.error();
        return;
    }
    addVarlink(std::move(*interface));
}

void Service::addRaw(std::string socket, raw::Handler handler) {
    std::optional<Error> error;
    auto spec = std::ranges::find(spec_.sockets, socket, &SocketSpec::name);
    if (runtime_)
        error = Error(EBUSY, "Raw handlers must be added before the service runs");
    else if (spec == spec_.sockets.end())
        error = Error(ENOENT, std::format("addRaw(\"{}\"): the spec has no socket '{}' (its sockets: {})",
                                          socket, socket, detail::socketNames(spec_)));
    else if (spec->protocol != Protocol::Raw)
        error = Error(EINVAL, std::format("addRaw(\"{}\"): socket '{}' is a {} socket, not a raw one", socket,
                                          socket, toString(spec->protocol)));
    else if (!handler.message && !handler.connected)
        error = Error(
            EINVAL, std::format("addRaw(\"{}\"): the handler has neither `message` nor `connected`", socket));
    else if (rawHandlers_.contains(socket))
        error = Error(EEXIST, std::format("addRaw(\"{}\"): the socket has a handler already", socket));
    if (error) {
        if (!setupError_)
            setupError_ = std::move(error);
        return;
    }
    rawHandlers_.emplace(std::move(socket), std::move(handler));
}

void Service::forEachDBus(std::string_view objectPath, const std::function<void(dbus::ObjectBase&)>& visit) {
    const detail::DBusSupport* support = detail::dbusSupport();
    if (!runtime_ || !support)
        return;
    if (auto it = runtime_->endpoints.find(Protocol::DBus); it != runtime_->endpoints.end())
        support->forEachPeer(*it->second, objectPath, visit);
    if (runtime_->bus)
        support->forEachBus(*runtime_->bus, objectPath, visit);
}

Result<void> Service::checkEndpoints() const {
    bool dbusSocket = false;
    for (const SocketSpec& s : spec_.sockets) {
        if (s.protocol == Protocol::Raw && !rawHandlers_.contains(s.name))
            return fail(EINVAL,
                        "Socket '{}' is a raw socket without a handler: the service must declare one with "
                        "addRaw(\"{}\", handler) in its constructor",
                        s.name, s.name);
        if (s.protocol == Protocol::DBus) {
            dbusSocket = true;
            if (dbusObjects_.empty())
                return fail(EINVAL,
                            "Socket '{}' is a D-Bus socket without any object: the service must declare its "
                            "objects with addDBus<T>(path, ...) in its constructor",
                            s.name);
        }
    }
    if (!spec_.bus.name.empty() && spec_.workers > 1)
        return fail(EINVAL,
                    "The service owns the bus name '{}' and runs {} workers: one process owns a name, so bus "
                    "mode takes workers = 1",
                    spec_.bus.name, spec_.workers);
    if (!spec_.bus.name.empty() && dbusObjects_.empty())
        return fail(EINVAL,
                    "The service owns the bus name '{}' without any D-Bus object: declare them with "
                    "addDBus<T>(path, ...) in its constructor",
                    spec_.bus.name);
    if (!dbusObjects_.empty() && !dbusSocket && spec_.bus.name.empty())
        return fail(
            EINVAL,
            "The service declares D-Bus objects ({}) but neither a socket of Protocol::DBus nor a bus "
            "name (ServiceSpec::bus.name) to serve them on",
            dbusObjects_.front().path);
    return {};
}

Result<std::unique_ptr<Endpoint>> Service::makeEndpoint(Protocol protocol, EventLoop& loop) {
    switch (protocol) {
    case Protocol::Varlink: {
        varlink::ServerOptions options = spec_.varlink;
        if (options.info.product.empty())
            options.info.product = spec_.name;
        if (options.info.version.empty())
            options.info.version = spec_.version;
        auto endpoint = VarlinkEndpoint::create(loop, std::move(options), interfaces_);
        if (!endpoint)
            return std::unexpected(endpoint.error());
        return std::unique_ptr<Endpoint>(std::move(*endpoint));
    }
    case Protocol::Raw: {
        auto endpoint = raw::EndpointCore::create(loop, rawHandlers_);
        if (!endpoint)
            return std::unexpected(endpoint.error());
        return std::unique_ptr<Endpoint>(std::move(*endpoint));
    }
    case Protocol::DBus: {
        // checkEndpoints() has made sure that a D-Bus socket comes with objects, so with addDBus() called.
        const detail::DBusSupport* support = detail::dbusSupport();
        if (!support)
            return fail(EINVAL, "A D-Bus socket without any D-Bus object declared (addDBus)");
        dbus::ServerOptions options = spec_.dbus;
        if (options.name.empty())
            options.name = spec_.bus.name;
        return support->makePeerEndpoint(loop, std::move(options), dbusObjects_);
    }
    }
    return fail(EINVAL, "No endpoint serves protocol {}", static_cast<int>(protocol));
}

EventLoop& Service::loop() {
    if (!runtime_) {
        logError("Service::loop() called before the service started");
        std::abort();
    }
    return runtime_->loop;
}

varlink::Server& Service::varlink() {
    if (!runtime_ || !runtime_->varlink) {
        logError("Service::varlink() called before the service started, or with no varlink socket served");
        std::abort();
    }
    return runtime_->varlink->server();
}

void Service::setStatus(std::string_view status) {
    if (!runtime_)
        return;
    if (runtime_->announce)
        runtime_->statusSet = true;
    notify(runtime_->notify, std::format("STATUS={}", status));
}

void Service::requestStop() {
    if (!runtime_ || runtime_->stopping)
        return;
    Runtime& rt = *runtime_;
    rt.stopping = true;
    if (rt.announce)
        std::exchange(rt.announce, {})();
    notify(rt.notify, "STOPPING=1");
    rt.idleTimer.reset();
    for (Endpoint* endpoint : rt.all()) {
        (void)endpoint->setNoConnectionCallback({});
        endpoint->stopAccepting();
    }
    stop();
    if (rt.all().empty()) {
        rt.loop.exit(0);
        return;
    }
    // Exit once every endpoint is drained (every call in flight answered and written), or after drainTimeout
    // whatever is left.
    auto timeout = rt.loop.addTimer(drainTimeout, [this] {
        std::string pending;
        for (Endpoint* endpoint : runtime_->all())
            if (std::string work = endpoint->pendingWork(); !work.empty())
                pending += (pending.empty() ? "" : ", ") + work;
        logWarning("Stopping with {} after {} s", pending.empty() ? "replies unwritten" : pending,
                   std::chrono::duration_cast<std::chrono::seconds>(drainTimeout).count());
        runtime_->loop.exit(0);
    });
    if (timeout)
        rt.drainTimer = std::move(*timeout);
    // A connection accepted just before the stop may have its call waiting, unread, in its socket (the
    // signal was dispatched before its input): it would count as drained and be closed unanswered. So the
    // drain is first looked at from an idle-priority source, which runs once the loop has nothing more urgent
    // pending, i.e. after that input has been read and its calls are in flight.
    auto watchDrain = [this] {
        Runtime& r = *runtime_;
        auto all = r.all();
        r.undrained = all.size();
        for (Endpoint* endpoint : all)
            endpoint->whenDrained([this] {
                if (--runtime_->undrained == 0)
                    runtime_->loop.exit(0);
            });
    };
    auto check = rt.loop.addDefer(watchDrain);
    if (check && ::sd_event_source_set_priority(check->get(), SD_EVENT_PRIORITY_IDLE) >= 0 &&
        check->enableOnce()) {
        rt.drainCheck = std::move(*check);
        return;
    }
    watchDrain();
}

Result<std::vector<Service::Acquired>> Service::acquire(const RunOptions& options) {
    std::vector<Acquired> sockets;
    if (spec_.sockets.empty()) {
        if (options.listenPath)
            return fail(EINVAL, "--listen={}: service '{}' has no socket, only the bus name '{}'",
                        *options.listenPath, spec_.name, spec_.bus.name);
        if (!spec_.bus.name.empty())
            return sockets; // on a bus only
        return fail(EINVAL, "Service '{}' declares no sockets", spec_.name);
    }

    if (options.listenPath || !options.listenNamed.empty()) {
        // --listen: exactly the sockets named, each on its path; the others are not served.
        std::map<std::string, std::string, std::less<>> paths(options.listenNamed.begin(),
                                                              options.listenNamed.end());
        if (options.listenPath) {
            const SocketSpec& first = detail::firstSocket(spec_);
            if (!paths.emplace(first.name, *options.listenPath).second)
                return fail(EINVAL, "--listen=PATH and --listen={}=PATH both name the first socket",
                            first.name);
        }
        for (const auto& [name, path] : paths)
            if (std::ranges::none_of(spec_.sockets, [&](const SocketSpec& s) { return s.name == name; }))
                return fail(EINVAL, "--listen={}=PATH: the spec has no socket '{}' (its sockets: {})", name,
                            name, detail::socketNames(spec_));
        for (const SocketSpec& spec : spec_.sockets) {
            auto path = paths.find(spec.name);
            if (path == paths.end())
                continue;
            SocketSpec own = spec;
            own.address = path->second;
            own.accept = false; // bound here, it is served as a listening socket
            auto fd = bindSocket(own);
            if (!fd)
                return std::unexpected(fd.error());
            sockets.push_back({.spec = std::move(own), .fd = std::move(*fd), .connected = false});
        }
        return sockets;
    }

    auto activation = Activation::fromEnvironment();
    if (!activation)
        return std::unexpected(activation.error());
    if (!activation->ignoredReason().empty())
        logWarning("Ignoring the passed sockets: {}", activation->ignoredReason());
    if (!activation->activated() || activation->fds().empty()) {
        if (options.checkOnly)
            return fail(ENOTSOCK, "Not socket-activated (no LISTEN_FDS for this process): nothing to check");
        for (const SocketSpec& spec : spec_.sockets) {
            SocketSpec own = spec;
            own.accept = false; // bound here, it is served as a listening socket
            auto fd = bindSocket(own);
            if (!fd)
                return std::unexpected(fd.error());
            sockets.push_back({.spec = std::move(own), .fd = std::move(*fd), .connected = false});
        }
        return sockets;
    }

    if (auto problems = internal::checkActivation(*activation, spec_.sockets, spec_.verifyMode);
        !problems.empty()) {
        internal::Refusal refusal = internal::verificationRefusal(spec_, problems);
        Error error = refusal.error;
        internal::recordRefusal(std::move(refusal));
        return std::unexpected(std::move(error));
    }
    for (const SocketSpec& spec : spec_.sockets)
        for (ActivatedFd& fd : activation->take(spec.name))
            sockets.push_back({.spec = spec, .fd = std::move(fd.fd), .connected = !fd.info.listening});
    if (sockets.empty())
        return fail(ENOENT, "None of the passed sockets is one of the service's");
    return sockets;
}

Result<int> Service::run(const RunOptions& options) {
    if (runtime_)
        return fail(EBUSY, "The service is already running");
    // Refusals an administrator reads in the journal (internal::logRefusal, from runMain): recorded with
    // their kind and fields.
    auto refuse = [this](internal::RefusalKind kind, Error error, std::vector<std::string> fields = {}) {
        fields.insert(fields.begin(), "SVCKIT_SERVICE=" + spec_.name);
        internal::recordRefusal({.kind = kind, .error = error, .fields = std::move(fields)});
        return std::unexpected(std::move(error));
    };
    if (setupError_)
        return refuse(internal::RefusalKind::Declaration,
                      setupError_->withContext("The service's declaration failed"));
    if (auto ok = checkEndpoints(); !ok)
        return refuse(internal::RefusalKind::Declaration, ok.error());
    // $SVCKIT_VERIFY: the verification mode an administrator chose in a drop-in overrides the spec's.
    auto verifyMode = internal::verifyModeFromEnvironment(std::getenv("SVCKIT_VERIFY"));
    if (!verifyMode)
        return refuse(internal::RefusalKind::Environment, verifyMode.error(),
                      {"SVCKIT_ENVIRONMENT=SVCKIT_VERIFY"});
    if (*verifyMode)
        spec_.verifyMode = **verifyMode;
    if (!options.checkOnly)
        fitCapsToFdLimit(spec_);
    auto sockets = acquire(options);
    if (!sockets)
        return std::unexpected(sockets.error());
    if (options.checkOnly) {
        for (const Acquired& s : *sockets)
            std::println("{}: {} ({}) matches its spec", s.spec.name, s.spec.address,
                         s.connected ? "connection" : "listening");
        return 0;
    }
    bool anyListening = std::ranges::any_of(*sockets, [](const Acquired& s) { return !s.connected; });
    if (spec_.workers > 1 && anyListening) {
        // Forked before any loop or endpoint exists: each worker builds its own from the acquired sockets.
        return superviseWorkers({.workers = spec_.workers, .maxReplacements = 10 * spec_.workers}, [&] {
            std::vector<Acquired> own;
            for (const Acquired& s : *sockets) {
                auto copy = s.fd.dup();
                if (!copy) {
                    logError("worker {}: {}", ::getpid(), copy.error().message());
                    return 1;
                }
                own.push_back({.spec = s.spec, .fd = std::move(*copy), .connected = s.connected});
            }
            auto code = serve(std::move(own), false);
            if (!code)
                logError("worker {}: {}", ::getpid(), code.error().message());
            return code ? *code : 1;
        });
    }
    return serve(std::move(*sockets), true);
}

Result<int> Service::serve(std::vector<Acquired> sockets, bool notifyManager) {
    auto loop = EventLoop::create();
    if (!loop)
        return std::unexpected(loop.error());
    runtime_ = std::make_unique<Runtime>(std::move(*loop));
    Runtime& rt = *runtime_;
    rt.notify = notifyManager;
    // Connections and sources go before the loop they live on, whichever way serve() returns.
    struct Teardown {
        Runtime& rt;
        ~Teardown() {
            rt.announce = {}; // it refers to serve()'s sockets
            rt.sources.clear();
            rt.idleTimer.reset();
            rt.drainTimer.reset();
            rt.drainCheck.reset();
            rt.varlink = nullptr;
            rt.bus.reset();
            rt.endpoints.clear();
        }
    } teardown{rt};

    for (Acquired& s : sockets) {
        auto& endpoint = rt.endpoints[s.spec.protocol];
        if (!endpoint) {
            auto made = makeEndpoint(s.spec.protocol, rt.loop);
            if (!made)
                return std::unexpected(made.error());
            endpoint = std::move(*made);
            if (s.spec.protocol == Protocol::Varlink)
                rt.varlink = static_cast<VarlinkEndpoint*>(endpoint.get());
        }
        auto ok = s.connected ? endpoint->serveConnection(std::move(s.fd), s.spec)
                              : endpoint->listen(std::move(s.fd), s.spec);
        if (!ok)
            return std::unexpected(
                ok.error().withContext(std::format("Failed to serve socket '{}'", s.spec.name)));
    }

    if (auto ok = start(); !ok)
        return std::unexpected(ok.error());

    // Bus mode: the objects on the bus and the name owned before READY=1; in the main process only (workers
    // would compete for the one name).
    if (!spec_.bus.name.empty() && notifyManager) {
        // checkEndpoints() has made sure that bus mode comes with objects, so with addDBus() called.
        const detail::DBusSupport* support = detail::dbusSupport();
        if (!support)
            return fail(EINVAL, "Bus mode without any D-Bus object declared (addDBus)");
        auto bus = support->connectBus(rt.loop, spec_.bus, dbusObjects_, [this](const Error& error) {
            logError("{}: exiting", error.message());
            runtime_->loop.exit(1);
        });
        if (!bus)
            return std::unexpected(bus.error());
        rt.bus = std::move(*bus);
    }

    for (int signal : {SIGTERM, SIGINT}) {
        auto source = rt.loop.addSignal(signal, [this](const signalfd_siginfo&) { requestStop(); });
        if (!source)
            return std::unexpected(source.error());
        rt.sources.push_back(std::move(*source));
    }

    // With connections handed over by Accept=yes sockets, the service's work ends with them: with no delay
    // once they are gone. Otherwise it is the optional exit-on-idle, which does not apply in a worker
    // (notifyManager is false there): its clean exit would end the whole service.
    bool acceptMode =
        !sockets.empty() && std::ranges::all_of(sockets, [](const Acquired& s) { return s.connected; });
    bool exitOnIdle = notifyManager && spec_.exitOnIdle > std::chrono::milliseconds(0);
    if (acceptMode || exitOnIdle)
        if (auto ok = watchIdle(acceptMode ? std::chrono::milliseconds(0) : spec_.exitOnIdle, acceptMode);
            !ok)
            return std::unexpected(ok.error());

    rt.announce = [this, &sockets] {
        Runtime& r = *runtime_;
        if (r.notify) {
            std::string where;
            for (const Acquired& a : sockets)
                where += std::format("{}{} ({}, {}{})", where.empty() ? "" : ", ",
                                     a.spec.address.empty() ? "?" : a.spec.address, a.spec.name,
                                     toString(a.spec.protocol), a.connected ? ", one connection" : "");
            logInfo("{} {}: serving {}", spec_.name, spec_.version, where);
        }
        if (r.bus)
            logInfo("{} {}: owning {} on the {} bus", spec_.name, spec_.version, spec_.bus.name,
                    spec_.bus.bus == BusType::System ? "system" : "session");
        if (r.statusSet)
            notify(r.notify, "READY=1");
        else
            notify(r.notify, std::format("READY=1\nSTATUS=Serving {} socket{}{}", sockets.size(),
                                         sockets.size() == 1 ? "" : "s",
                                         r.bus ? std::format(" and {} on the bus", spec_.bus.name) : ""));
    };
    // Socket-activated, the caller who started the service is waiting in its socket: its call is answered
    // before READY=1 and the log line wake systemd and the journal (bench/activation: exec -> first reply
    // under systemd ~0.4 ms less on this 2-core machine). A few loop iterations that do not wait, so READY=1
    // is late by at most their work.
    if (rt.notify)
        for (int i = 0; i < queuedIterations && ::sd_event_get_state(rt.loop.get()) != SD_EVENT_FINISHED; ++i)
            if (::sd_event_run(rt.loop.get(), 0) <= 0)
                break;
    if (rt.announce)
        std::exchange(rt.announce, {})();
    if (::sd_event_get_state(rt.loop.get()) == SD_EVENT_FINISHED) {
        int code = 0;
        (void)::sd_event_get_exit_code(rt.loop.get(), &code);
        return code;
    }
    return rt.loop.run();
}

// The service is idle when no endpoint has had a connection for `after`: each endpoint says when its last
// connection has gone, and the one timer runs from the moment none is left anywhere. When it fires with a
// client waiting in a listening socket's queue, the client is about to be a connection: it waits again.
Result<void> Service::watchIdle(std::chrono::milliseconds after, bool acceptMode) {
    Runtime& rt = *runtime_;
    auto delay = std::chrono::duration_cast<std::chrono::microseconds>(after);
    auto timer = rt.loop.addTimer(delay, [this, delay, after, acceptMode] {
        Runtime& r = *runtime_;
        if (r.stopping || r.connectionCount() != 0)
            return; // the last connection to go re-arms it
        if (std::ranges::any_of(r.all(), [](const Endpoint* e) { return e->connectionWaiting(); })) {
            (void)r.idleTimer.rearmTimer(delay);
            return;
        }
        if (!acceptMode)
            logInfo("No connection for {} ms: exiting until the next one", after.count());
        requestStop();
    });
    if (!timer)
        return std::unexpected(timer.error());
    rt.idleTimer = std::move(*timer);
    for (Endpoint* endpoint : rt.all()) {
        auto ok = endpoint->setNoConnectionCallback([this, delay] {
            Runtime& r = *runtime_;
            if (!r.stopping && r.connectionCount() == 0)
                (void)r.idleTimer.rearmTimer(delay);
        });
        if (!ok)
            return ok;
    }
    return {};
}

} // namespace svckit
