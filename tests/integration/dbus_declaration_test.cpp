// Declaring D-Bus objects (Service::addDBus): mistakes are kept and run() refuses to start with them, before
// any socket is acquired; so does a D-Bus socket without objects, or objects with nowhere to be served.
#include "dbus_test_service.hpp"

#include <gtest/gtest.h>

#include <string>

namespace svckit::test {
namespace {

// Declares objects at `paths` on a service whose sockets are `sockets`.
class Declared final : public Service {
public:
    Declared(std::vector<SocketSpec> sockets, std::vector<std::string> paths, std::string busName = {})
        : Service(spec(std::move(sockets), std::move(busName))) {
        for (std::string& path : paths)
            addDBus<ProbeObject>(std::move(path), {}, static_cast<ProbeService*>(nullptr));
    }

private:
    static ServiceSpec spec(std::vector<SocketSpec> sockets, std::string busName) {
        ServiceSpec spec{.name = "svckit-test-declared",
                         .description = "declaration test",
                         .version = "1",
                         .sockets = std::move(sockets)};
        spec.bus.name = std::move(busName);
        return spec;
    }
};

SocketSpec dbusSocket() {
    return {.name = "dbus", .address = "/nonexistent/dbus.sock", .protocol = Protocol::DBus};
}
SocketSpec varlinkSocket() {
    return {.name = "varlink", .address = "/nonexistent/varlink.sock"};
}

std::string refusal(Service& service) {
    auto result = service.run({.checkOnly = true});
    return result ? std::string("started") : result.error().message();
}

TEST(DBusDeclaration, AnInvalidObjectPathIsRefused) {
    Declared service({dbusSocket()}, {"/org/svckit/bad-path"});
    EXPECT_NE(refusal(service).find("not a valid D-Bus object path"), std::string::npos) << refusal(service);
}

TEST(DBusDeclaration, APathDeclaredTwiceIsRefused) {
    Declared service({dbusSocket()}, {"/org/svckit/test/Probe1", "/org/svckit/test/Probe1"});
    EXPECT_NE(refusal(service).find("the path is declared twice"), std::string::npos) << refusal(service);
}

TEST(DBusDeclaration, ADBusSocketWithoutObjectsIsRefused) {
    Declared service({dbusSocket()}, {});
    EXPECT_NE(refusal(service).find("is a D-Bus socket without any object"), std::string::npos)
        << refusal(service);
}

TEST(DBusDeclaration, ObjectsWithNoDBusSocketNorBusNameAreRefused) {
    Declared service({varlinkSocket()}, {"/org/svckit/test/Probe1"});
    EXPECT_NE(refusal(service).find("neither a socket of Protocol::DBus nor a bus name"), std::string::npos)
        << refusal(service);
}

TEST(DBusDeclaration, ABusNameWithoutObjectsIsRefused) {
    Declared service({varlinkSocket()}, {}, "org.svckit.test");
    EXPECT_NE(refusal(service).find("without any D-Bus object"), std::string::npos) << refusal(service);
}

} // namespace
} // namespace svckit::test
