// framework/dbus/connection.hpp — one D-Bus connection a service serves (svckit/dbus.hpp): an sd_bus driven
// from svckit's batched I/O (IoBatch), the sdbus-c++ connection over it, and the instances of the service's
// objects registered on it.
//
// Driving: the connection's fd sits in the endpoint's IoBatch. On readiness sd_bus_process() serves what the
// peer had sent (not what it sends meanwhile: fairness, see process()), then the epoll events are set from
// sd_bus_get_events() and a timer is armed only when sd_bus_get_timeout() asks for one. Nothing here is
// attached to sd-event per connection (sd_bus_attach_event's prepare callback would run for every connection
// on every loop iteration), and nothing scans the connections per call.
//
// sdbus-c++'s own event-loop helpers are not used: processPendingEvent() throws on a bus error (the whole
// service would go down for one hostile peer) and reads its internal eventfd each time it finds nothing to
// do. That eventfd (getEventLoopPollData().eventFd) only wakes a loop polling in another thread when a
// method call is made from a thread other than the loop's; everything here runs on the loop's thread, so it
// is never watched (a handler calling a method synchronously over this connection is not supported: on a
// peer-to-peer connection the peer is the client).
//
// Life of a peer-to-peer connection (Transport::PeerToPeer):
//   Authenticating  sd_bus_new + sd_bus_set_fd + sd_bus_set_server + sd_bus_start: sd-bus runs the server
//                   side of AUTH ... BEGIN without blocking; closed if not done within the authentication
//                   timeout;
//   Running         sd_bus_is_ready(): the authenticated bus is handed to sdbus::createBusConnection() (which
//                   only flushes an empty write queue then), the objects' instances are made and registered;
//   Closed          the peer left, an error (an oversized message announcement, garbage, ...), the timeout:
//                   the fd leaves the batch and sd_bus_close() closes it; the instances, the sdbus-c++
//                   connection and the sd_bus are destroyed later by the owner (IoBatch::retire), never
//                   inside the connection's own callbacks.
//
// Bus mode (Transport::Bus) plugs in here: its owner opens an sd_bus to the bus (sd_bus_open_system / _user,
// not a server), and constructs a ConnectionState with Transport::Bus, no socket spec, an empty peer and a
// CallerResolver that turns the message being dispatched into the sender's identity
// (sd_bus_query_sender_creds with SD_BUS_CREDS_PIDFD | _PID | _EUID | ...). The state then starts in Running
// (the bus is ready once sd_bus_start() returns; sd_bus_is_ready() is checked the same way), and everything
// else (driving, objects, the policies, caller()) is this same code. The current-call slot (CallScope) holds
// the resolved identity for the duration of one dispatch; caller() returns it, else the connection's peer.
#pragma once

#include "base/private.hpp"

#include <svckit/dbus.hpp>
#include <svckit/error.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/identity.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>

#include <svckit/internal/io_batch.hpp>

#include <systemd/sd-bus.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace svckit::dbus {

class ConnectionState;

// What a connection needs from whoever serves it (the peer-to-peer endpoint; the bus-mode owner).
class ConnectionHost {
public:
    [[nodiscard]] virtual EventLoop& loop() noexcept = 0;
    [[nodiscard]] virtual IoBatch& batch() noexcept = 0;
    [[nodiscard]] virtual const std::vector<ObjectDeclaration>& objects() const noexcept = 0;
    // The connection has just closed (state Closed, fd out of the batch and closed): forget it, and destroy
    // it outside its callbacks.
    virtual void closed(ConnectionState& connection) noexcept = 0;

protected:
    ~ConnectionHost() = default;
};

// Turns the message being dispatched into its sender's identity (bus mode). An error refuses the call with
// org.freedesktop.DBus.Error.AccessDenied.
using CallerResolver = std::function<Result<PeerIdentity>(sd_bus_message* message)>;

// For a graceful stop that waits until the replies queued on its connections are written (they go out as the
// peers read; a stop has its own timeout): calls `check` again shortly, from `timer` (made on first use).
void checkAgainShortly(EventLoop& loop, EventSource& timer, std::function<void()> check);

class ConnectionState final : public IoBatch::Handler, public std::enable_shared_from_this<ConnectionState> {
public:
    enum class State { Authenticating, Running, Closed };

    struct Options {
        Transport transport = Transport::PeerToPeer;
        const SocketSpec* spec = nullptr; // the socket's spec (peer-to-peer), nullptr on a bus
        PeerIdentity peer{};              // taken at accept (peer-to-peer)
        CallerResolver resolver{};        // bus mode: the identity of each message's sender
        std::string sender{};             // sd_bus_set_sender(): signals' sender (peer-to-peer), may be empty
        std::chrono::milliseconds authenticationTimeout{std::chrono::seconds(10)};
        uint64_t id = 0; // ":1.<id>" is the unique name Hello gives the peer
    };

    // A server-side connection on an accepted socket, authenticating: the fd goes to sd-bus (it closes it).
    [[nodiscard]] static Result<std::shared_ptr<ConnectionState>> serve(ConnectionHost& host, UniqueFd fd,
                                                                        Options options);
    // A connection over an sd_bus already started (bus mode): takes the reference.
    [[nodiscard]] static Result<std::shared_ptr<ConnectionState>> adopt(ConnectionHost& host, sd_bus* bus,
                                                                        Options options);

    ConnectionState(const ConnectionState&) = delete;
    ConnectionState& operator=(const ConnectionState&) = delete;
    ~ConnectionState();

    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] Transport transport() const noexcept { return options_.transport; }
    [[nodiscard]] const SocketSpec* socket() const noexcept { return options_.spec; }
    [[nodiscard]] const std::string& uniqueName() const noexcept { return uniqueName_; }
    // The caller of the call being dispatched, else the connection's peer.
    [[nodiscard]] const PeerIdentity& caller() const noexcept { return current_ ? *current_ : peer(); }
    // The peer taken at accept (peer-to-peer); empty on a bus.
    [[nodiscard]] const PeerIdentity& peer() const noexcept { return options_.peer; }
    [[nodiscard]] sdbus::IConnection& sdbus() const noexcept { return *connection_; }
    [[nodiscard]] sd_bus* bus() const noexcept { return bus_; }

    // Calls `visit` for the instance of the object at `path`, if this connection is running and has one.
    void forObject(std::string_view path, const std::function<void(ObjectBase&)>& visit);
    // Output was queued from outside the connection's own dispatch (a signal, a property change): set the
    // events again at the end of the batch's pass.
    void outputQueued() noexcept;
    // Messages written but not yet sent (for a graceful stop).
    [[nodiscard]] bool writing() const noexcept;
    // Closes the connection (idempotent): out of the batch, sd_bus_close(), the host told.
    void close(std::string_view why) noexcept;

    // IoBatch::Handler
    void onIo(uint32_t revents) override;
    void service() override;

    // The current-call slot: set for the duration of one dispatch to an object's method or property.
    class CallScope {
    public:
        // The message being dispatched is sd_bus_get_current_message() of the connection's bus.
        explicit CallScope(ConnectionState& connection);
        ~CallScope();
        CallScope(const CallScope&) = delete;
        CallScope& operator=(const CallScope&) = delete;
        // Empty when the caller is known; else why it could not be identified.
        [[nodiscard]] const std::optional<Error>& error() const noexcept { return error_; }

    private:
        ConnectionState& connection_;
        std::optional<PeerIdentity> previous_;
        std::optional<Error> error_;
    };

private:
    ConnectionState(ConnectionHost& host, Options options);
    Result<void> startServer(UniqueFd fd);
    Result<void> becomeRunning();
    // `drain`: until sd-bus has nothing to do (at most messagesPerWakeup); else what was read (see
    // process()).
    void process(bool drain = false) noexcept;
    void processSoon() noexcept; // process() from the loop, at its next turn
    void rearm() noexcept;
    void onTimer() noexcept;
    static int onBusDriver(sd_bus_message* message, void* userdata, sd_bus_error* error) noexcept;

    // sd_bus_process() calls per wake-up of one connection before it yields to the others.
    static constexpr int messagesPerWakeup = 64;
    // Messages queued for a peer that does not read (signals, replies) before its connection is closed.
    static constexpr uint64_t maxQueuedMessages = 4096;

    ConnectionHost& host_;
    Options options_;
    std::string uniqueName_;
    State state_ = State::Authenticating;
    sd_bus* bus_ = nullptr; // our own reference (sdbus-c++ holds another once running)
    sd_bus_slot* driverSlot_ = nullptr;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::vector<std::pair<std::string, std::unique_ptr<ObjectBase>>> objects_;
    std::optional<PeerIdentity> current_;
    std::chrono::microseconds authenticationDeadline_{};
    EventSource timer_;
    uint64_t timerArmedAt_ = UINT64_MAX; // the absolute CLOCK_MONOTONIC µs the timer is armed for
};

} // namespace svckit::dbus
