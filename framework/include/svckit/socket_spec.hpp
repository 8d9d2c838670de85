// svckit/socket_spec.hpp — SocketSpec: what a service's socket must be, declared once in the service's code.
//
// The same SocketSpec is what the .socket unit is written from, what an activated fd is checked against at
// start-up (and every accepted connection after it), and what the service binds itself when it is not
// socket-activated. Field names follow the systemd.socket(5) settings they map to.
#pragma once

#include <svckit/export.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace svckit {

enum class SocketType {
    Stream,    // ListenStream=, SOCK_STREAM
    SeqPacket, // ListenSequentialPacket=, SOCK_SEQPACKET
};

[[nodiscard]] SVCKIT_EXPORT std::string_view toString(SocketType type) noexcept;

// What the service speaks on a socket; Service hosts one endpoint per protocol (svckit/endpoint.hpp). The
// units do not depend on it: a socket is a socket to systemd.
enum class Protocol {
    Varlink, // the interfaces declared with Service::addVarlink() (the default)
    Raw,     // the service's own protocol: the handler given to Service::addRaw() for this socket
    DBus,    // peer-to-peer D-Bus: the objects declared with Service::addDBus() (svckit/dbus.hpp)
};

[[nodiscard]] SVCKIT_EXPORT std::string_view toString(Protocol protocol) noexcept;

struct SocketLimits {
    unsigned maxConnections = 64;      // MaxConnections=
    unsigned maxConnectionsPerUid = 0; // MaxConnectionsPerSource= (per UID for AF_UNIX); 0 = no limit
};

struct SocketSpec {
    std::string name;    // FileDescriptorName=; how the service finds the activated fd
    std::string address; // a filesystem path ("/run/foo.sock") or an abstract name ("@foo")
    SocketType type = SocketType::Stream;
    Protocol protocol = Protocol::Varlink;
    bool accept = false;          // Accept=: one service per connection
    bool passCredentials = false; // PassCredentials= (SO_PASSCRED): SCM_CREDENTIALS on each message
    bool passPidfd = true;        // PassPIDFD= (SO_PASSPIDFD, systemd >= 258): SCM_PIDFD on each message
    bool acceptFileDescriptors = false; // AcceptFileDescriptors= (SO_PASSRIGHTS, systemd >= 258)
    mode_t mode = 0666;                 // SocketMode=
    SocketLimits limits{};
    std::string
        user{}; // SocketUser=: the socket file's owner (a user name); empty: unchecked (the manager's)
    std::string group{}; // SocketGroup=: the socket file's group (a group name); empty: unchecked
};

} // namespace svckit
