// Policies on the caller's identity: each built-in rule, and how they combine.
#include <svckit/authorization.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

namespace svckit {
namespace {

PeerIdentity caller(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
    PeerIdentity peer;
    peer.uid = uid;
    peer.gid = gid;
    peer.groups = std::move(groups);
    return peer;
}

TEST(AuthorizationPolicy, RootOnlyAllowsUidZeroOnly) {
    EXPECT_TRUE(Policy::rootOnly().allows(caller(0, 0)));
    EXPECT_FALSE(Policy::rootOnly().allows(caller(1000, 0)));
    EXPECT_FALSE(Policy::rootOnly().allows(caller(static_cast<uid_t>(-1), 0)));
}

TEST(AuthorizationPolicy, SameUidIsTheServicesOwnEffectiveUid) {
    EXPECT_TRUE(Policy::sameUid().allows(caller(::geteuid(), 5)));
    EXPECT_FALSE(Policy::sameUid().allows(caller(::geteuid() + 1, 5)));
}

TEST(AuthorizationPolicy, UidAllowList) {
    Policy policy = Policy::uids({1000, 1001});
    EXPECT_TRUE(policy.allows(caller(1001, 0)));
    EXPECT_FALSE(policy.allows(caller(1002, 0)));
    EXPECT_FALSE(policy.allows(caller(0, 0))) << "root is not implicitly allowed";
    EXPECT_FALSE(Policy::uids({}).allows(caller(0, 0)));
}

TEST(AuthorizationPolicy, GroupsMatchPrimaryOrSupplementary) {
    Policy policy = Policy::groups({50});
    EXPECT_TRUE(policy.allows(caller(1000, 50)));
    EXPECT_TRUE(policy.allows(caller(1000, 100, {20, 50})));
    EXPECT_FALSE(policy.allows(caller(1000, 100, {20, 51})));
}

TEST(AuthorizationPolicy, CombinationsAndPredicates) {
    Policy adminOrRoot = Policy::rootOnly() || Policy::groups({4});
    EXPECT_TRUE(adminOrRoot.allows(caller(0, 0)));
    EXPECT_TRUE(adminOrRoot.allows(caller(1000, 1000, {4})));
    EXPECT_FALSE(adminOrRoot.allows(caller(1000, 1000)));

    Policy withPid =
        Policy::anyone() && Policy::predicate([](const PeerIdentity& p) { return p.pid > 1; }, "not init");
    PeerIdentity peer = caller(1000, 1000);
    peer.pid = 1;
    EXPECT_FALSE(withPid.allows(peer));
    peer.pid = 42;
    EXPECT_TRUE(withPid.allows(peer));
    EXPECT_EQ(withPid.description(), "(anyone and not init)");
}

} // namespace
} // namespace svckit
