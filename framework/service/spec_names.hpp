// framework/service/spec_names.hpp — what service.cpp and run.cpp both read from a ServiceSpec (private to
// libsvckit).
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

} // namespace svckit::detail
