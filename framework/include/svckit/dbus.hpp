// svckit/dbus.hpp — D-Bus objects of a Service, served with sdbus-c++ on the service's own loop: peer-to-peer
// on activated sockets (Protocol::DBus) and under a well-known name on the system or session bus
// (ServiceSpec::bus), with the caller's identity in every handler.
//
// An object is written the sdbus-c++ way: its interfaces are adaptors generated from D-Bus introspection XML
// by `sdbus-c++-xml2cpp` (docs/dbus.md shows the meson rule), and the object class derives from them through
// svckit::dbus::Object instead of sdbus::AdaptorInterfaces:
//
//   class CalcObject final : public svckit::dbus::Object<org::svckit::example::Calc1_adaptor> {
//   public:
//       CalcObject(svckit::dbus::Binding binding, Calculator& calc) : Object(std::move(binding)), calc_(calc)
//       {}
//   private:
//       int64_t Add(const int64_t& a, const int64_t& b) override {
//           logInfo("Add from uid {}", caller().uid);     // the caller of this very call
//           return calc_.add(a, b);
//       }
//       Calculator& calc_;
//   };
//
//   // in the Service's constructor, once for every connection:
//   addDBus<CalcObject>("/org/svckit/example/Calc1", {.methods = {{"Reset", svckit::Policy::rootOnly()}}},
//                       std::ref(calc_));
//
// An object is declared once and svckit makes one instance of it per D-Bus connection it serves (each
// peer-to-peer connection is a bus of its own to sd-bus; in bus mode there is one), constructed with the
// arguments given to addDBus() (copied, so share state through references or pointers), registered after
// construction and unregistered before destruction. forEachDBus() reaches every instance, e.g. to emit a
// signal to every connected peer. Everything runs on the loop's thread.
//
// Asynchronous handlers (xml2cpp's org.freedesktop.DBus.Method.Async annotation, an sdbus::Result<> to
// answer later) work; the Result refers to its connection, so keep it in the instance (which is destroyed
// before its connection) and never beyond: when the peer leaves first, it goes unanswered with the instance.
// A graceful stop does not wait for such results. After answering one from outside a handler, call flush().
//
// Errors: an exception a handler throws becomes a D-Bus error reply (sdbus::Error keeps its name; any other
// std::exception becomes org.freedesktop.DBus.Error.Failed); a caller a policy refuses gets
// org.freedesktop.DBus.Error.AccessDenied and the handler never runs.
#pragma once

#include <svckit/authorization.hpp>
#include <svckit/export.hpp>
#include <svckit/identity.hpp>
#include <svckit/socket_spec.hpp>

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace svckit::dbus {

class ConnectionState;

// Where a D-Bus connection comes from.
enum class Transport {
    PeerToPeer, // a connection on a socket of Protocol::DBus (activated or bound by the service)
    Bus,        // the service's connection to the system or session bus (ServiceSpec::bus)
};

// Who may call an object's methods (and read or set its properties). The policy of a method is the one named
// in `methods` ("Member" for any interface of the object, or "org.example.Iface.Member"), else `policy`. A
// property read (org.freedesktop.DBus.Properties Get) or written (Set) is looked up the same way by the
// property's name ("Count" or "org.example.Iface.Count"); GetAll is refused as a whole when one readable
// property of the interface is refused. Introspection and org.freedesktop.DBus.Peer are not guarded.
struct ObjectOptions {
    Policy policy = Policy::anyone();
    std::map<std::string, Policy, std::less<>> methods{};
};

// What svckit hands to the constructor of each instance of an object: the connection and the path it is
// served on. Opaque; pass it on to Object's constructor.
class SVCKIT_EXPORT Binding {
public:
    Binding(Binding&&) noexcept;
    Binding& operator=(Binding&&) noexcept;
    ~Binding();

private:
    friend class ObjectBase;
    friend class ConnectionState;
    Binding(ConnectionState& connection, std::unique_ptr<sdbus::IObject> object) noexcept;
    ConnectionState* connection_ = nullptr;
    std::unique_ptr<sdbus::IObject> object_;
};

// The part of every object that is not an adaptor: the call context.
class SVCKIT_EXPORT ObjectBase {
public:
    ObjectBase(const ObjectBase&) = delete;
    ObjectBase& operator=(const ObjectBase&) = delete;
    virtual ~ObjectBase();

    // The caller of the method (or property access) being handled. Peer-to-peer: the connection's peer, taken
    // when it was accepted (SO_PEERCRED, SO_PEERPIDFD). Bus: the message's sender as the bus daemon reports
    // it (GetConnectionCredentials); its pidfd is the daemon's ProcessFD when the daemon gives one, otherwise
    // the identity has the pid only and PeerIdentity::pidfd is invalid (see docs/dbus.md). Outside a handler:
    // the connection's peer (p2p) or an identity with no fields set (bus).
    [[nodiscard]] const PeerIdentity& caller() const;
    [[nodiscard]] Transport transport() const noexcept;
    // The spec of the socket a peer-to-peer connection came from; nullptr on the bus.
    [[nodiscard]] const SocketSpec* socket() const noexcept;
    // The sdbus-c++ object and connection this instance is registered on (to emit signals, read the message
    // being handled, ...).
    [[nodiscard]] sdbus::IObject& object() const noexcept { return *object_; }
    [[nodiscard]] sdbus::IConnection& connection() const noexcept;
    // Call after sending on this instance's connection from outside one of its handlers, e.g. answering an
    // sdbus::Result from a timer: sd-bus writes what the peer's socket takes at once and queues the rest, and
    // svckit, which learns of sends inside handlers and of signals by itself, then also waits for the socket
    // to take the rest. Without it, the rest of such a reply goes out only with the connection's next event.
    void flush() noexcept;

protected:
    explicit ObjectBase(Binding binding);

private:
    friend class ConnectionState;
    // Registers the adaptors' vtables (svckit calls it once the instance is constructed) and unregisters them
    // (before it is destroyed).
    virtual void registerAdaptors() = 0;
    ConnectionState* connection_;
    std::unique_ptr<sdbus::IObject> object_;
};

// The base of an object implementing the generated adaptors `Adaptors...` (as sdbus::AdaptorInterfaces).
template <class... Adaptors>
class Object : public ObjectBase, public Adaptors... {
protected:
    explicit Object(Binding binding) : ObjectBase(std::move(binding)), Adaptors(ObjectBase::object())... {}
    ~Object() override = default;

private:
    void registerAdaptors() override { (Adaptors::registerAdaptor(), ...); }
};

// The peer-to-peer D-Bus endpoint's options (ServiceSpec::dbus).
struct ServerOptions {
    // The name the service answers to on its peer-to-peer connections: the sender of the signals it emits
    // there (sdbus-c++ proxies made with a destination only receive signals from that sender). Empty:
    // ServiceSpec::bus.name; with neither, signals carry no sender and only proxies made without a
    // destination receive them.
    std::string name{};
    // A connection that has not finished the authentication handshake (AUTH ... BEGIN) by then is closed;
    // while it authenticates, it does not hold up anyone else.
    std::chrono::milliseconds authenticationTimeout = std::chrono::seconds(10);
    // Peer-to-peer connections one uid may hold at once, over all D-Bus sockets of the process (as varlink's
    // ServerOptions::maxConnectionsPerUid, sd-varlink's default); a connection past it is closed at accept.
    // 0: no limit.
    unsigned maxConnectionsPerUid = 1024;
};

// How svckit makes the instances of one object (what Service::addDBus() records).
struct ObjectDeclaration {
    std::string path; // "/org/svckit/example/Calc1"
    ObjectOptions options;
    std::function<std::unique_ptr<ObjectBase>(Binding)> make;
};

} // namespace svckit::dbus
