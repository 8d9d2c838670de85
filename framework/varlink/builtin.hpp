// framework/varlink/builtin.hpp — the interfaces every varlink server serves: org.varlink.service (GetInfo,
// GetInterfaceDescription) and io.systemd (the errors sd-varlink and svckit send). systemd keeps them apart
// too (varlink-org.varlink.service.c, varlink-io.systemd.c). Private to the library.
#pragma once

#include "base/private.hpp"

#include <svckit/varlink.hpp>

namespace svckit::varlink {

class ServerImpl;

// org.varlink.service, its methods answering from `server` (which must outlive the interface).
[[nodiscard]] Interface serviceInterface(ServerImpl& server);
// io.systemd: errors only.
[[nodiscard]] Interface systemdInterface();

} // namespace svckit::varlink
