// framework/dbus/object.hpp — the sdbus::IObject an instance's adaptors register on: the real sdbus-c++
// object behind a wrapper that guards every handler before dispatch and sees every signal emitted.
//
// The generated adaptors register their vtables through IObject::addVTable(); the wrapper rewrites each
// method's callback and each property's getter and setter so that, before the user's code runs:
//   - the current-call slot of the connection holds the caller (ConnectionState::CallScope; in bus mode the
//     sender's identity is resolved there);
//   - the policy (ObjectOptions) is checked: a refused caller gets org.freedesktop.DBus.Error.AccessDenied
//     and the handler never runs;
// and after it, any exception that is not an sdbus::Error becomes org.freedesktop.DBus.Error.Failed with
// the exception's text (sdbus-c++ 2.3.1 alone would answer org.sdbuscpp.Error). sdbus-c++ catches what the
// wrapped callback throws (invokeHandlerAndCatchErrors), so no exception crosses sd-bus.
//
// The policy rule: a method is guarded by ObjectOptions::methods["Interface.Member"], else
// methods["Member"], else ObjectOptions::policy; a property, read (Get, GetAll) or written (Set) through
// org.freedesktop.DBus.Properties, by the same lookup with the property's name as the member
// ("org.example.Calc1.Precision" or "Precision"). GetAll answers AccessDenied as soon as one property of the
// interface is refused. Introspection and org.freedesktop.DBus.Peer are not guarded.
#pragma once

#include "base/private.hpp"

#include <svckit/dbus.hpp>

#include <memory>

namespace svckit::dbus {

class ConnectionState;

[[nodiscard]] std::unique_ptr<sdbus::IObject> guardObject(ConnectionState& connection,
                                                          std::unique_ptr<sdbus::IObject> object,
                                                          const ObjectOptions& options);

} // namespace svckit::dbus
