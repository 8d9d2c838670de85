// org.varlink.service and io.systemd, served by every varlink server (see builtin.hpp).
#include "varlink/builtin.hpp"

#include "varlink/server_internal.hpp"

#include <svckit/internal/varlink_protocol.hpp>

#include <string_view>

namespace svckit::varlink {
namespace {

constexpr std::string_view serviceInterfaceName = "org.varlink.service";
constexpr std::string_view serviceInterfaceDescription =
    R"(# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()

# Method is expected to be called with 'upgrade' set to true, but wasn't
error ExpectedUpgrade ()
)";

// sd-varlink serves io.systemd on every server, for its errors; svckit sends io.systemd.System too.
constexpr std::string_view systemdInterfaceName = "io.systemd";
constexpr std::string_view systemdInterfaceDescription =
    R"(# Errors of systemd's varlink implementation, which svckit's engine sends too.
interface io.systemd

# The connection is gone (reported locally by clients; never sent).
error Disconnected()

# A method call timed out (reported locally by clients; never sent).
error TimedOut()

# The peer broke the protocol (reported locally by clients; never sent).
error Protocol()

# A Linux system error: the origin ("linux"), the errno name (ENOENT, ...) and number.
error System(origin: ?string, errnoName: ?string, errno: ?int)
)";

// The built-in methods check their parameters as sd-varlink checks every call against its interface, where
// an unknown field is InvalidParameter.
void getInfo(const ServerImpl& server, Call& call) {
    if (auto unknown = protocol::unknownParameter(call.parameters(), {})) {
        (void)call.invalidParameter(*unknown);
        return;
    }
    const ServerInfo& info = server.options_.info;
    (void)call.reply([&](JsonWriter& w) {
        w.field("vendor", info.vendor);
        w.field("product", info.product);
        w.field("version", info.version);
        w.field("url", info.url);
        w.key("interfaces");
        w.beginArray();
        for (const std::string& name : server.interfaceNames_)
            w.value(name);
        w.endArray();
    });
}

void getInterfaceDescription(const ServerImpl& server, Call& call) {
    auto name = call.parameters()["interface"].string();
    if (!name) {
        (void)call.invalidParameter("interface");
        return;
    }
    if (auto unknown = protocol::unknownParameter(call.parameters(), {"interface"})) {
        (void)call.invalidParameter(*unknown);
        return;
    }
    const InterfaceEntry* interface = server.findInterface(*name);
    if (!interface) {
        (void)call.error(errorInterfaceNotFound, [&](JsonWriter& w) { w.field("interface", *name); });
        return;
    }
    (void)call.reply([&](JsonWriter& w) { w.field("description", interface->description); });
}

} // namespace

Interface serviceInterface(ServerImpl& server) {
    Interface service{
        .name = std::string(serviceInterfaceName),
        .description = std::string(serviceInterfaceDescription),
        .methods = {},
    };
    service.methods.push_back(
        Method{.name = "GetInfo", .handler = [&server](Call& call) { getInfo(server, call); }});
    service.methods.push_back(Method{.name = "GetInterfaceDescription", .handler = [&server](Call& call) {
                                         getInterfaceDescription(server, call);
                                     }});
    return service;
}

Interface systemdInterface() {
    return Interface{.name = std::string(systemdInterfaceName),
                     .description = std::string(systemdInterfaceDescription),
                     .methods = {}};
}

} // namespace svckit::varlink
