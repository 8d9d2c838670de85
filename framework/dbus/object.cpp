// The object model of svckit/dbus.hpp: Binding, ObjectBase, and the guarded sdbus::IObject (object.hpp).
#include "dbus/object.hpp"

#include "dbus/connection.hpp"

#include <format>
#include <string>
#include <utility>
#include <variant>

namespace svckit::dbus {

namespace {

const sdbus::Error::Name accessDenied{"org.freedesktop.DBus.Error.AccessDenied"};
const sdbus::Error::Name failed{"org.freedesktop.DBus.Error.Failed"};

const Policy& policyOf(const ObjectOptions& options, std::string_view interface, std::string_view member) {
    std::string qualified = std::format("{}.{}", interface, member);
    if (auto it = options.methods.find(qualified); it != options.methods.end())
        return it->second;
    if (auto it = options.methods.find(member); it != options.methods.end())
        return it->second;
    return options.policy;
}

// Runs `handler` for one call as the guard says (object.hpp); what it throws reaches sdbus-c++, which turns
// it into the error reply.
template <class Handler>
void guarded(ConnectionState& connection, const Policy& policy, const std::string& what, Handler&& handler) {
    ConnectionState::CallScope scope(connection);
    if (scope.error())
        throw sdbus::Error(accessDenied, std::format("Failed to identify the caller of {}: {}", what,
                                                     scope.error()->message()));
    try {
        if (!policy.allows(connection.caller()))
            throw sdbus::Error(accessDenied, std::format("{} is not allowed to uid {} ({})", what,
                                                         connection.caller().uid, policy.description()));
        handler();
    } catch (const sdbus::Error&) {
        throw;
    } catch (const std::exception& e) {
        throw sdbus::Error(failed, e.what());
    } catch (...) {
        throw sdbus::Error(failed, std::format("{} failed with an unknown exception", what));
    }
}

class GuardedObject final : public sdbus::IObject {
public:
    GuardedObject(ConnectionState& connection, std::unique_ptr<sdbus::IObject> object,
                  const ObjectOptions& options)
        : connection_(connection), object_(std::move(object)), options_(options) {}

    ~GuardedObject() override = default;

    void emitPropertiesChangedSignal(const sdbus::InterfaceName& interfaceName,
                                     const std::vector<sdbus::PropertyName>& propNames) override {
        object_->emitPropertiesChangedSignal(interfaceName, propNames);
        connection_.outputQueued();
    }
    void emitPropertiesChangedSignal(const char* interfaceName,
                                     const std::vector<sdbus::PropertyName>& propNames) override {
        object_->emitPropertiesChangedSignal(interfaceName, propNames);
        connection_.outputQueued();
    }
    void emitPropertiesChangedSignal(const sdbus::InterfaceName& interfaceName) override {
        object_->emitPropertiesChangedSignal(interfaceName);
        connection_.outputQueued();
    }
    void emitPropertiesChangedSignal(const char* interfaceName) override {
        object_->emitPropertiesChangedSignal(interfaceName);
        connection_.outputQueued();
    }
    void emitInterfacesAddedSignal() override {
        object_->emitInterfacesAddedSignal();
        connection_.outputQueued();
    }
    void emitInterfacesAddedSignal(const std::vector<sdbus::InterfaceName>& interfaces) override {
        object_->emitInterfacesAddedSignal(interfaces);
        connection_.outputQueued();
    }
    void emitInterfacesRemovedSignal() override {
        object_->emitInterfacesRemovedSignal();
        connection_.outputQueued();
    }
    void emitInterfacesRemovedSignal(const std::vector<sdbus::InterfaceName>& interfaces) override {
        object_->emitInterfacesRemovedSignal(interfaces);
        connection_.outputQueued();
    }
    void addObjectManager() override { object_->addObjectManager(); }
    [[nodiscard]] sdbus::Slot addObjectManager(sdbus::return_slot_t) override {
        return object_->addObjectManager(sdbus::return_slot);
    }
    [[nodiscard]] sdbus::IConnection& getConnection() const override { return object_->getConnection(); }
    [[nodiscard]] const sdbus::ObjectPath& getObjectPath() const override { return object_->getObjectPath(); }
    [[nodiscard]] sdbus::Message getCurrentlyProcessedMessage() const override {
        return object_->getCurrentlyProcessedMessage();
    }
    void unregister() override { object_->unregister(); }
    void addVTable(sdbus::InterfaceName interfaceName, std::vector<sdbus::VTableItem> vtable) override {
        guard(interfaceName, vtable);
        object_->addVTable(std::move(interfaceName), std::move(vtable));
    }
    [[nodiscard]] sdbus::Slot addVTable(sdbus::InterfaceName interfaceName,
                                        std::vector<sdbus::VTableItem> vtable,
                                        sdbus::return_slot_t) override {
        guard(interfaceName, vtable);
        return object_->addVTable(std::move(interfaceName), std::move(vtable), sdbus::return_slot);
    }
    [[nodiscard]] sdbus::Signal createSignal(const sdbus::InterfaceName& interfaceName,
                                             const sdbus::SignalName& signalName) const override {
        return object_->createSignal(interfaceName, signalName);
    }
    void emitSignal(const sdbus::Signal& message) override {
        object_->emitSignal(message);
        connection_.outputQueued();
    }

protected:
    [[nodiscard]] sdbus::Signal createSignal(const char* interfaceName,
                                             const char* signalName) const override {
        return object_->createSignal(sdbus::InterfaceName(interfaceName), sdbus::SignalName(signalName));
    }

private:
    void guard(const sdbus::InterfaceName& interfaceName, std::vector<sdbus::VTableItem>& vtable) {
        for (sdbus::VTableItem& item : vtable) {
            if (auto* method = std::get_if<sdbus::MethodVTableItem>(&item)) {
                if (!method->callbackHandler)
                    continue;
                const Policy* policy = &policyOf(options_, interfaceName, method->name);
                std::string what = std::format("{}.{}", interfaceName.c_str(), method->name.c_str());
                method->callbackHandler = [this, policy, what = std::move(what),
                                           inner =
                                               std::move(method->callbackHandler)](sdbus::MethodCall call) {
                    guarded(connection_, *policy, what, [&] { inner(std::move(call)); });
                };
            } else if (auto* property = std::get_if<sdbus::PropertyVTableItem>(&item)) {
                const Policy* policy = &policyOf(options_, interfaceName, property->name);
                std::string what =
                    std::format("property {}.{}", interfaceName.c_str(), property->name.c_str());
                if (property->getter)
                    property->getter = [this, policy, what,
                                        inner = std::move(property->getter)](sdbus::PropertyGetReply& reply) {
                        guarded(connection_, *policy, what, [&] { inner(reply); });
                    };
                if (property->setter)
                    property->setter = [this, policy, what,
                                        inner = std::move(property->setter)](sdbus::PropertySetCall call) {
                        guarded(connection_, *policy, what, [&] { inner(std::move(call)); });
                    };
            }
        }
    }

    ConnectionState& connection_;
    std::unique_ptr<sdbus::IObject> object_;
    const ObjectOptions& options_;
};

} // namespace

std::unique_ptr<sdbus::IObject> guardObject(ConnectionState& connection,
                                            std::unique_ptr<sdbus::IObject> object,
                                            const ObjectOptions& options) {
    return std::make_unique<GuardedObject>(connection, std::move(object), options);
}

// --- Binding

Binding::Binding(ConnectionState& connection, std::unique_ptr<sdbus::IObject> object) noexcept
    : connection_(&connection), object_(std::move(object)) {}
Binding::Binding(Binding&&) noexcept = default;
Binding& Binding::operator=(Binding&&) noexcept = default;
Binding::~Binding() = default;

// --- ObjectBase

ObjectBase::ObjectBase(Binding binding)
    : connection_(binding.connection_), object_(std::move(binding.object_)) {}

ObjectBase::~ObjectBase() = default;

const PeerIdentity& ObjectBase::caller() const {
    return connection_->caller();
}

Transport ObjectBase::transport() const noexcept {
    return connection_->transport();
}

const SocketSpec* ObjectBase::socket() const noexcept {
    return connection_->socket();
}

sdbus::IConnection& ObjectBase::connection() const noexcept {
    return connection_->sdbus();
}

void ObjectBase::flush() noexcept {
    connection_->outputQueued();
}

} // namespace svckit::dbus
