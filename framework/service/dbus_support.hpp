// framework/service/dbus_support.hpp — the D-Bus part of Service, reached through a table of functions that
// Service::addDBus() installs (service/dbus_support.cpp). service.cpp itself names nothing of
// framework/dbus/, so a service linked with the static library that declares no D-Bus object links neither
// the D-Bus endpoints nor sdbus-c++ (and so need not load libstdc++.so at all: bench/activation, start-up
// time).
#pragma once

#include "base/private.hpp"

#include <svckit/dbus.hpp>
#include <svckit/endpoint.hpp>
#include <svckit/event_loop.hpp>
#include <svckit/service.hpp>

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace svckit::detail {

struct DBusSupport {
    // The peer-to-peer endpoint of the sockets of Protocol::DBus.
    Result<std::unique_ptr<Endpoint>> (*makePeerEndpoint)(EventLoop& loop, dbus::ServerOptions options,
                                                          std::vector<dbus::ObjectDeclaration> objects);
    // Bus mode (ServiceSpec::bus): the connection to the bus, the objects served and the name owned.
    Result<std::unique_ptr<Endpoint>> (*connectBus)(EventLoop& loop, const BusSpec& spec,
                                                    std::vector<dbus::ObjectDeclaration> objects,
                                                    std::function<void(const Error&)> onLost);
    // Every instance of the object at `path` on an endpoint the two functions above made.
    void (*forEachPeer)(Endpoint& peer, std::string_view path,
                        const std::function<void(dbus::ObjectBase&)>& visit);
    void (*forEachBus)(Endpoint& bus, std::string_view path,
                       const std::function<void(dbus::ObjectBase&)>& visit);
};

// The table, once addDBus() has been called in this process; nullptr before (a service with no D-Bus object).
const DBusSupport* dbusSupport() noexcept;
void setDBusSupport(const DBusSupport* support) noexcept;

} // namespace svckit::detail
