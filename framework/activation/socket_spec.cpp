#include <svckit/socket_spec.hpp>

namespace svckit {

std::string_view toString(SocketType type) noexcept {
    switch (type) {
    case SocketType::Stream:
        return "stream";
    case SocketType::SeqPacket:
        return "seqpacket";
    }
    return "unknown";
}

std::string_view toString(Protocol protocol) noexcept {
    switch (protocol) {
    case Protocol::Varlink:
        return "varlink";
    case Protocol::Raw:
        return "raw";
    case Protocol::DBus:
        return "dbus";
    }
    return "unknown";
}

} // namespace svckit
