// Service::addDBus() and the D-Bus part of Service (service/dbus_support.hpp): the only place where the
// service layer reaches framework/dbus/, so that the D-Bus endpoints are linked only into services that
// declare objects.
#include "service/dbus_support.hpp"

#include "dbus/bus_endpoint.hpp"
#include "dbus/endpoint.hpp"
#include "service/spec_names.hpp"

#include <systemd/sd-bus.h>

#include <algorithm>
#include <format>

namespace svckit {

namespace {

Result<std::unique_ptr<Endpoint>> makePeerEndpoint(EventLoop& loop, dbus::ServerOptions options,
                                                   std::vector<dbus::ObjectDeclaration> objects) {
    auto endpoint = dbus::PeerEndpoint::create(loop, std::move(options), std::move(objects));
    if (!endpoint)
        return std::unexpected(endpoint.error());
    return std::unique_ptr<Endpoint>(std::move(*endpoint));
}

Result<std::unique_ptr<Endpoint>> connectBus(EventLoop& loop, const BusSpec& spec,
                                             std::vector<dbus::ObjectDeclaration> objects,
                                             std::function<void(const Error&)> onLost) {
    auto bus = dbus::BusEndpoint::connect(loop, spec, std::move(objects), std::move(onLost));
    if (!bus)
        return std::unexpected(bus.error());
    return std::unique_ptr<Endpoint>(std::move(*bus));
}

void forEachPeer(Endpoint& peer, std::string_view path, const std::function<void(dbus::ObjectBase&)>& visit) {
    static_cast<dbus::PeerEndpoint&>(peer).forEach(path, visit);
}

void forEachBus(Endpoint& bus, std::string_view path, const std::function<void(dbus::ObjectBase&)>& visit) {
    static_cast<dbus::BusEndpoint&>(bus).forEach(path, visit);
}

constexpr detail::DBusSupport support{
    .makePeerEndpoint = makePeerEndpoint,
    .connectBus = connectBus,
    .forEachPeer = forEachPeer,
    .forEachBus = forEachBus,
};

} // namespace

void Service::addDBus(dbus::ObjectDeclaration declaration) {
    detail::setDBusSupport(&support);
    std::optional<Error> error;
    if (runtime_)
        error = Error(EBUSY, "D-Bus objects must be added before the service runs");
    else if (sd_bus_object_path_is_valid(declaration.path.c_str()) <= 0)
        error =
            Error(EINVAL, std::format("addDBus(\"{}\"): not a valid D-Bus object path", declaration.path));
    else if (!declaration.make)
        error = Error(EINVAL, std::format("addDBus(\"{}\"): no way to make the object", declaration.path));
    else if (std::ranges::any_of(dbusObjects_, [&](const auto& d) { return d.path == declaration.path; }))
        error = Error(EEXIST, std::format("addDBus(\"{}\"): the path is declared twice", declaration.path));
    if (error) {
        if (!setupError_)
            setupError_ = std::move(error);
        return;
    }
    dbusObjects_.push_back(std::move(declaration));
}

} // namespace svckit
