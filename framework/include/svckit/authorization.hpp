// svckit/authorization.hpp — who may call: policies on the caller's PeerIdentity, and varlink methods guarded
// by them.
//
// A Policy is a predicate on the verified identity of the caller (uid, gid and supplementary groups as the
// kernel reported them for the connection; the pidfd for anything about the process). The common ones are
// built in — root only, the service's own uid, an allow-list of uids or groups — and any predicate can be
// one; they combine with && and ||. restrict() wraps the handlers of a varlink interface (every method, or
// one) so that a caller the policy refuses gets org.varlink.service.PermissionDenied and the handler never
// runs, as sd-varlink services answer.
//
// A generated interface takes a method's policy in its settings, checked by the compiler
// (docs/varlink-codegen.md):
//   addVarlink(interface({.Shutdown = {.policy = svckit::Policy::rootOnly()}}));
// An interface built by hand (the dynamic API) names the method as a string:
//   addVarlink(svckit::varlink::restrict(std::move(interface), "Shutdown", svckit::Policy::rootOnly()));
#pragma once

#include <svckit/export.hpp>
#include <svckit/identity.hpp>
#include <svckit/varlink.hpp>

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace svckit {

class SVCKIT_EXPORT Policy {
public:
    using Predicate = std::function<bool(const PeerIdentity&)>;

    // Only uid 0.
    [[nodiscard]] static Policy rootOnly();
    // Only callers with the service's own effective uid (read when the policy is made).
    [[nodiscard]] static Policy sameUid();
    // Only these uids.
    [[nodiscard]] static Policy uids(std::vector<uid_t> allowed);
    // Callers whose primary or a supplementary group is one of these.
    [[nodiscard]] static Policy groups(std::vector<gid_t> allowed);
    // Anyone (the default of an unrestricted method; useful to build on).
    [[nodiscard]] static Policy anyone();
    // Any predicate; `description` names it in logs ("callers in the audit group").
    [[nodiscard]] static Policy predicate(Predicate allows, std::string description = "a custom rule");

    [[nodiscard]] bool allows(const PeerIdentity& peer) const { return allows_(peer); }
    [[nodiscard]] const std::string& description() const noexcept { return description_; }

    friend SVCKIT_EXPORT Policy operator&&(Policy a, Policy b);
    friend SVCKIT_EXPORT Policy operator||(Policy a, Policy b);

private:
    Policy(Predicate allows, std::string description)
        : allows_(std::move(allows)), description_(std::move(description)) {}
    Predicate allows_;
    std::string description_;
};

namespace varlink {

// Every method of the interface answers PermissionDenied to callers the policy refuses.
[[nodiscard]] SVCKIT_EXPORT Interface restrict(Interface interface, Policy policy);
// Only the named method is restricted (for interfaces built by hand; a generated interface's Settings name
// methods checked by the compiler). An unknown method name is an error (EINVAL): a typo must not leave the
// method it meant unguarded.
[[nodiscard]] SVCKIT_EXPORT Result<Interface> restrict(Interface interface, std::string_view method,
                                                       Policy policy);
// The method, its handler guarded by the policy.
[[nodiscard]] SVCKIT_EXPORT Method restrict(Method method, Policy policy);

} // namespace varlink
} // namespace svckit
