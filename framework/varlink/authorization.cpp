// Policies on the caller's identity, and varlink handlers guarded by them.
#include "base/private.hpp"

#include <svckit/authorization.hpp>
#include <svckit/log.hpp>

#include <algorithm>
#include <format>
#include <unistd.h>

namespace svckit {

Policy Policy::rootOnly() {
    return Policy([](const PeerIdentity& peer) { return peer.uid == 0; }, "root only");
}

Policy Policy::sameUid() {
    uid_t own = ::geteuid();
    return Policy([own](const PeerIdentity& peer) { return peer.uid == own; },
                  std::format("uid {} only", own));
}

Policy Policy::uids(std::vector<uid_t> allowed) {
    std::string description = "uids";
    for (uid_t uid : allowed)
        description += std::format(" {}", uid);
    return Policy(
        [allowed = std::move(allowed)](const PeerIdentity& peer) {
            return std::ranges::find(allowed, peer.uid) != allowed.end();
        },
        std::move(description));
}

Policy Policy::groups(std::vector<gid_t> allowed) {
    std::string description = "groups";
    for (gid_t gid : allowed)
        description += std::format(" {}", gid);
    return Policy(
        [allowed = std::move(allowed)](const PeerIdentity& peer) {
            if (std::ranges::find(allowed, peer.gid) != allowed.end())
                return true;
            return std::ranges::any_of(
                peer.groups, [&](gid_t g) { return std::ranges::find(allowed, g) != allowed.end(); });
        },
        std::move(description));
}

Policy Policy::anyone() {
    return Policy([](const PeerIdentity&) { return true; }, "anyone");
}

Policy Policy::predicate(Predicate allows, std::string description) {
    return Policy(std::move(allows), std::move(description));
}

Policy operator&&(Policy a, Policy b) {
    std::string description = std::format("({} and {})", a.description_, b.description_);
    return Policy([a = std::move(a.allows_),
                   b = std::move(b.allows_)](const PeerIdentity& peer) { return a(peer) && b(peer); },
                  std::move(description));
}

Policy operator||(Policy a, Policy b) {
    std::string description = std::format("({} or {})", a.description_, b.description_);
    return Policy([a = std::move(a.allows_),
                   b = std::move(b.allows_)](const PeerIdentity& peer) { return a(peer) || b(peer); },
                  std::move(description));
}

namespace varlink {

namespace {

void guard(Method& method, const Policy& policy) {
    method.handler = [inner = std::move(method.handler), policy](Call& call) {
        if (!policy.allows(call.peer())) {
            logDebug("varlink: {} refused for uid {} pid {} ({})", call.method(), call.peer().uid,
                     call.peer().pid, policy.description());
            (void)call.error(errorPermissionDenied);
            return;
        }
        inner(call);
    };
}

} // namespace

Interface restrict(Interface interface, Policy policy) {
    for (Method& method : interface.methods)
        guard(method, policy);
    return interface;
}

Result<Interface> restrict(Interface interface, std::string_view method, Policy policy) {
    auto it = std::ranges::find(interface.methods, method, &Method::name);
    if (it == interface.methods.end())
        return fail(EINVAL, "Interface '{}' has no method '{}' to restrict", interface.name, method);
    guard(*it, policy);
    return interface;
}

Method restrict(Method method, Policy policy) {
    guard(method, policy);
    return method;
}

} // namespace varlink
} // namespace svckit
