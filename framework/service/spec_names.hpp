// framework/service/spec_names.hpp — what service.cpp, run.cpp and units.cpp share about a ServiceSpec
// (private to libsvckit).
#pragma once

#include "base/private.hpp"

#include <svckit/service.hpp>
#include <svckit/socket_spec.hpp>

#include <string>

namespace svckit::detail {

// The socket --listen=PATH serves: the first Accept=no socket of the spec (the first socket if all are
// Accept=yes). The spec must have a socket.
[[nodiscard]] const SocketSpec& firstSocket(const ServiceSpec& spec);
// "varlink, metrics": the spec's socket names, for messages.
[[nodiscard]] std::string socketNames(const ServiceSpec& spec);
// Writes one generated file (a unit, a D-Bus file) at `path`, replacing what was there (units.cpp).
[[nodiscard]] Result<void> writeUnitFile(const std::string& path, const std::string& text);

} // namespace svckit::detail
