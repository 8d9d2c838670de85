// Checking sockets against their SocketSpec: the pure comparison and its messages, verifySocket() on real
// sockets in Strict and Repair mode, and verifyActivation() over fds passed on 3, 4, ... in a forked child.
#include <svckit/socket_options.hpp>

#include "activation_test_support.hpp"

#include <svckit/internal/activation.hpp>
#include <svckit/log.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <format>
#include <string>
#include <vector>

using ::testing::HasSubstr;
using ::testing::Not;

namespace svckit {
namespace {

using test::placeAsPassedFds;
using test::runInChild;

constexpr const char* identityAddress = "/run/svckit-example-identity.sock";

SocketSpec identitySpec() {
    SocketSpec spec;
    spec.name = "identity";
    spec.address = identityAddress;
    spec.type = SocketType::Stream;
    spec.passCredentials = true;
    spec.passPidfd = true;
    spec.acceptFileDescriptors = false;
    return spec;
}

SocketInfo matchingInfo(const SocketSpec& spec) {
    SocketInfo info;
    info.isSocket = true;
    info.family = AF_UNIX;
    info.type = spec.type == SocketType::SeqPacket ? SOCK_SEQPACKET : SOCK_STREAM;
    info.listening = !spec.accept;
    info.address = spec.address;
    return info;
}

AppliedOptions matchingOptions(const SocketSpec& spec) {
    AppliedOptions options;
    options.passCredentials = spec.passCredentials;
    options.passPidfd = spec.passPidfd;
    options.acceptFileDescriptors = spec.acceptFileDescriptors;
    return options;
}

const Mismatch* findKind(const std::vector<Mismatch>& mismatches, Mismatch::Kind kind) {
    auto it = std::ranges::find(mismatches, kind, &Mismatch::kind);
    return it == mismatches.end() ? nullptr : &*it;
}

// --- compareWithSpec: one mismatch each, naming the setting
// ---------------------------------------------------

TEST(CompareWithSpec, FindsNothingWrongWithAMatchingSocket) {
    SocketSpec spec = identitySpec();
    EXPECT_TRUE(
        internal::compareWithSpec(matchingInfo(spec), matchingOptions(spec), spec, "identity").empty());
}

TEST(CompareWithSpec, NamesPassPidfdAndSystemd258WhenSoPassPidfdIsOff) {
    SocketSpec spec = identitySpec();
    AppliedOptions options = matchingOptions(spec);
    options.passPidfd = false;
    auto mismatches = internal::compareWithSpec(matchingInfo(spec), options, spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::PassPidfd);
    EXPECT_TRUE(mismatches[0].repairable);
    EXPECT_EQ(
        mismatches[0].message,
        "socket 'identity' (/run/svckit-example-identity.sock): SO_PASSPIDFD is off but the service requires "
        "it: add 'PassPIDFD=yes' to the [Socket] section of its .socket unit (systemd >= 258)");
}

TEST(CompareWithSpec, NamesPassCredentialsWhenSoPassCredIsOff) {
    SocketSpec spec = identitySpec();
    AppliedOptions options = matchingOptions(spec);
    options.passCredentials = false;
    auto mismatches = internal::compareWithSpec(matchingInfo(spec), options, spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::PassCredentials);
    EXPECT_TRUE(mismatches[0].repairable);
    EXPECT_THAT(mismatches[0].message, HasSubstr("SO_PASSCRED is off"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("'PassCredentials=yes'"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("socket 'identity' (/run/svckit-example-identity.sock)"));
}

TEST(CompareWithSpec, NamesAcceptFileDescriptorsNoWhenSoPassRightsIsOnButFdsAreRefused) {
    SocketSpec spec = identitySpec();
    AppliedOptions options = matchingOptions(spec);
    options.acceptFileDescriptors = true; // the kernel's and systemd's default
    auto mismatches = internal::compareWithSpec(matchingInfo(spec), options, spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::AcceptFileDescriptors);
    EXPECT_TRUE(mismatches[0].repairable);
    EXPECT_THAT(mismatches[0].message, HasSubstr("SO_PASSRIGHTS is on"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("'AcceptFileDescriptors=no'"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("258"));
}

TEST(CompareWithSpec, NamesAcceptFileDescriptorsYesWhenTheServiceWantsFdsButSoPassRightsIsOff) {
    SocketSpec spec = identitySpec();
    spec.acceptFileDescriptors = true;
    AppliedOptions options = matchingOptions(spec);
    options.acceptFileDescriptors = false;
    auto mismatches = internal::compareWithSpec(matchingInfo(spec), options, spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::AcceptFileDescriptors);
    EXPECT_THAT(mismatches[0].message, HasSubstr("SO_PASSRIGHTS is off"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("'AcceptFileDescriptors=yes'"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("258"));
}

TEST(CompareWithSpec, TreatsAKernelWithoutSoPassRightsAsNoMismatch) {
    for (bool wanted : {false, true}) {
        SocketSpec spec = identitySpec();
        spec.acceptFileDescriptors = wanted;
        AppliedOptions options = matchingOptions(spec);
        options.acceptFileDescriptors = std::nullopt;
        EXPECT_TRUE(internal::compareWithSpec(matchingInfo(spec), options, spec, "identity").empty())
            << wanted;
    }
}

TEST(CompareWithSpec, TreatsExtraPassCredentialsAndPassPidfdAsHarmless) {
    SocketSpec spec = identitySpec();
    spec.passCredentials = false;
    spec.passPidfd = false;
    AppliedOptions options = matchingOptions(spec);
    options.passCredentials = true;
    options.passPidfd = true;
    EXPECT_TRUE(internal::compareWithSpec(matchingInfo(spec), options, spec, "identity").empty());
}

TEST(CompareWithSpec, ReportsOnlyTheFamilyOfANonUnixSocket) {
    SocketSpec spec = identitySpec();
    SocketInfo info = matchingInfo(spec);
    info.family = AF_INET;
    info.type = SOCK_DGRAM;
    info.address = "";
    AppliedOptions options; // everything off: would be three option mismatches on an AF_UNIX socket
    auto mismatches = internal::compareWithSpec(info, options, spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Family);
    EXPECT_FALSE(mismatches[0].repairable);
    EXPECT_THAT(mismatches[0].message, HasSubstr("is not an AF_UNIX socket (AF_INET)"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("'ListenStream=/run/svckit-example-identity.sock'"));
}

TEST(CompareWithSpec, ReportsAFdThatIsNotASocket) {
    SocketSpec spec = identitySpec();
    SocketInfo info; // isSocket = false
    auto mismatches = internal::compareWithSpec(info, AppliedOptions{}, spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Family);
    EXPECT_THAT(mismatches[0].message, HasSubstr("is not an AF_UNIX socket (not a socket at all)"));
}

TEST(CompareWithSpec, NamesListenSequentialPacketForAStreamSocket) {
    SocketSpec spec = identitySpec();
    spec.type = SocketType::SeqPacket;
    SocketInfo info = matchingInfo(spec);
    info.type = SOCK_STREAM;
    auto mismatches = internal::compareWithSpec(info, matchingOptions(spec), spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Type);
    EXPECT_FALSE(mismatches[0].repairable);
    EXPECT_THAT(mismatches[0].message,
                HasSubstr("is a SOCK_STREAM socket but the service expects SOCK_SEQPACKET"));
    EXPECT_THAT(mismatches[0].message,
                HasSubstr("'ListenSequentialPacket=/run/svckit-example-identity.sock'"));
}

TEST(CompareWithSpec, NamesListenStreamForASeqPacketSocket) {
    SocketSpec spec = identitySpec();
    SocketInfo info = matchingInfo(spec);
    info.type = SOCK_SEQPACKET;
    auto mismatches = internal::compareWithSpec(info, matchingOptions(spec), spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Type);
    EXPECT_THAT(mismatches[0].message, HasSubstr("'ListenStream=/run/svckit-example-identity.sock'"));
}

TEST(CompareWithSpec, SaysToRemoveAcceptYesForAConnectedSocket) {
    SocketSpec spec = identitySpec();
    SocketInfo info = matchingInfo(spec);
    info.listening = false;
    auto mismatches = internal::compareWithSpec(info, matchingOptions(spec), spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Listening);
    EXPECT_FALSE(mismatches[0].repairable);
    EXPECT_THAT(mismatches[0].message,
                HasSubstr("is a connected socket but the service expects a listening one"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("remove 'Accept=yes'"));
}

TEST(CompareWithSpec, SaysToAddAcceptYesForAListeningSocketOfAPerConnectionService) {
    SocketSpec spec = identitySpec();
    spec.accept = true;
    SocketInfo info = matchingInfo(spec);
    info.listening = true;
    auto mismatches = internal::compareWithSpec(info, matchingOptions(spec), spec, "connection");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Listening);
    EXPECT_THAT(mismatches[0].message, HasSubstr("socket 'connection'"));
    EXPECT_THAT(mismatches[0].message, HasSubstr("add 'Accept=yes'"));
    EXPECT_THAT(mismatches[0].message, Not(HasSubstr("remove")));
}

TEST(CompareWithSpec, NamesTheExpectedAddress) {
    SocketSpec spec = identitySpec();
    SocketInfo info = matchingInfo(spec);
    info.address = "/run/other.sock";
    auto mismatches = internal::compareWithSpec(info, matchingOptions(spec), spec, "identity");
    ASSERT_EQ(mismatches.size(), 1u);
    EXPECT_EQ(mismatches[0].kind, Mismatch::Kind::Address);
    EXPECT_FALSE(mismatches[0].repairable);
    EXPECT_THAT(
        mismatches[0].message,
        HasSubstr(
            "is bound to '/run/other.sock' but the service expects '/run/svckit-example-identity.sock': "
            "set 'ListenStream=/run/svckit-example-identity.sock'"));
}

TEST(CompareWithSpec, ReportsEveryMismatchAtOnce) {
    SocketSpec spec = identitySpec();
    SocketInfo info = matchingInfo(spec);
    info.type = SOCK_SEQPACKET;
    info.listening = false;
    info.address = "@elsewhere";
    AppliedOptions options;
    options.acceptFileDescriptors = true;
    auto mismatches = internal::compareWithSpec(info, options, spec, "identity");
    ASSERT_EQ(mismatches.size(), 6u);
    for (Mismatch::Kind kind :
         {Mismatch::Kind::Type, Mismatch::Kind::Listening, Mismatch::Kind::Address,
          Mismatch::Kind::PassCredentials, Mismatch::Kind::PassPidfd, Mismatch::Kind::AcceptFileDescriptors})
        EXPECT_NE(findKind(mismatches, kind), nullptr) << static_cast<int>(kind);
}

// --- verifySocket on real sockets
// ---------------------------------------------------------------------------

// A listening socket with the kernel's defaults (SO_PASSCRED 0, SO_PASSPIDFD 0, SO_PASSRIGHTS 1), as systemd
// leaves it when its setsockopt() calls fail, and a spec that wants the opposite of each.
struct DefaultSocket {
    SocketSpec spec = identitySpec();
    ActivatedFd fd;

    DefaultSocket() {
        spec.address = test::uniqueAbstractAddress("verify");
        fd.fd = test::boundSocket(SOCK_STREAM, spec.address);
        fd.name = spec.name;
    }
};

TEST(VerifySocket, StrictReportsEveryOptionAndLeavesTheSocketUntouched) {
    DefaultSocket s;
    ASSERT_TRUE(s.fd.fd);
    VerifyReport report = verifySocket(s.fd, s.spec, VerifyMode::Strict);
    EXPECT_FALSE(report.ok());
    EXPECT_EQ(report.mismatches.size(), 3u);
    EXPECT_TRUE(report.repaired.empty());
    EXPECT_TRUE(report.notes.empty()); // this kernel has SO_PASSRIGHTS

    auto after = readAppliedOptions(s.fd.fd.get());
    ASSERT_TRUE(after.has_value());
    EXPECT_FALSE(after->passCredentials);
    EXPECT_FALSE(after->passPidfd);
    EXPECT_EQ(after->acceptFileDescriptors, std::optional(true));
}

TEST(VerifySocket, RepairSetsTheOptionsAndReportsWhatItFixed) {
    DefaultSocket s;
    ASSERT_TRUE(s.fd.fd);
    VerifyReport report = verifySocket(s.fd, s.spec, VerifyMode::Repair);
    EXPECT_TRUE(report.ok());
    ASSERT_EQ(report.repaired.size(), 3u);
    std::string all;
    for (const std::string& line : report.repaired)
        all += line + "\n";
    EXPECT_THAT(all, HasSubstr("PassCredentials=yes"));
    EXPECT_THAT(all, HasSubstr("PassPIDFD=yes"));
    EXPECT_THAT(all, HasSubstr("AcceptFileDescriptors=no"));
    EXPECT_THAT(all, HasSubstr("SO_PASSRIGHTS=0"));

    auto after = readAppliedOptions(s.fd.fd.get());
    ASSERT_TRUE(after.has_value());
    EXPECT_TRUE(after->passCredentials);
    EXPECT_TRUE(after->passPidfd);
    EXPECT_EQ(after->acceptFileDescriptors, std::optional(false));

    // Repaired means fixed: a second check finds nothing.
    VerifyReport again = verifySocket(s.fd, s.spec, VerifyMode::Strict);
    EXPECT_TRUE(again.ok());
    EXPECT_TRUE(again.repaired.empty());
}

TEST(VerifySocket, RepairCannotFixTheSocketTypeButFixesTheOptions) {
    SocketSpec spec = identitySpec();
    spec.address = test::uniqueAbstractAddress("verify-type");
    ActivatedFd fd;
    fd.fd = test::boundSocket(SOCK_SEQPACKET, spec.address);
    fd.name = spec.name;
    ASSERT_TRUE(fd.fd);
    VerifyReport report = verifySocket(fd, spec, VerifyMode::Repair);
    EXPECT_FALSE(report.ok());
    ASSERT_EQ(report.mismatches.size(), 1u);
    EXPECT_EQ(report.mismatches[0].kind, Mismatch::Kind::Type);
    EXPECT_EQ(report.repaired.size(), 3u);
    auto after = readAppliedOptions(fd.fd.get());
    ASSERT_TRUE(after.has_value());
    EXPECT_TRUE(after->passPidfd);
}

TEST(VerifySocket, AcceptsASocketSetUpByApplyOptions) {
    DefaultSocket s;
    ASSERT_TRUE(s.fd.fd);
    ASSERT_TRUE(applyOptions(s.fd.fd.get(), s.spec).has_value());
    VerifyReport report = verifySocket(s.fd, s.spec, VerifyMode::Strict);
    EXPECT_TRUE(report.ok());
    EXPECT_TRUE(report.mismatches.empty());
    EXPECT_TRUE(report.repaired.empty());
}

// A socket bound at a path in a fresh directory by bindSocket(), which gives its file the spec's mode and
// options; the test then changes the file as a unit with other SocketMode=/SocketUser=/SocketGroup= would.
struct PathSocket {
    std::string dir;
    SocketSpec spec = identitySpec();
    ActivatedFd fd;

    explicit PathSocket(mode_t mode) {
        char pattern[] = "/tmp/svckit-verify-XXXXXX";
        if (::mkdtemp(pattern))
            dir = pattern;
        spec.address = dir + "/s.sock";
        spec.mode = mode;
        if (auto bound = bindSocket(spec))
            fd.fd = std::move(*bound);
        fd.name = spec.name;
    }
    ~PathSocket() {
        fd.fd.reset();
        ::unlink(spec.address.c_str());
        ::rmdir(dir.c_str());
    }
};

std::string allMessages(const VerifyReport& report) {
    std::string all;
    for (const Mismatch& mismatch : report.mismatches)
        all += mismatch.message + "\n";
    return all;
}

TEST(VerifySocket, RefusesASocketFileModeWiderThanTheSpecAndNamesSocketMode) {
    PathSocket s(0600);
    ASSERT_TRUE(s.fd.fd);
    EXPECT_TRUE(verifySocket(s.fd, s.spec, VerifyMode::Strict).ok()) << "bindSocket() gave it 0600";

    ASSERT_EQ(::chmod(s.spec.address.c_str(), 0666), 0); // as 'SocketMode=0666' would
    VerifyReport report = verifySocket(s.fd, s.spec, VerifyMode::Strict);
    EXPECT_FALSE(report.ok());
    EXPECT_THAT(allMessages(report), HasSubstr("has mode 0666 but the service expects 0600"));
    EXPECT_THAT(allMessages(report), HasSubstr("set 'SocketMode=0600' in the [Socket] section"));
    // Repair does not chmod: the unit is what must change.
    EXPECT_FALSE(verifySocket(s.fd, s.spec, VerifyMode::Repair).ok());
}

TEST(VerifySocket, AcceptsASocketFileModeNarrowerThanTheSpec) {
    PathSocket s(0666);
    ASSERT_TRUE(s.fd.fd);
    ASSERT_EQ(::chmod(s.spec.address.c_str(), 0600), 0); // an administrator's drop-in narrowing access
    EXPECT_TRUE(verifySocket(s.fd, s.spec, VerifyMode::Strict).ok());
}

TEST(VerifySocket, RefusesASocketFileOfAnotherOwnerOrGroupAndNamesSocketUserAndSocketGroup) {
    PathSocket s(0660);
    ASSERT_TRUE(s.fd.fd);
    struct stat st {};
    ASSERT_EQ(::stat(s.spec.address.c_str(), &st), 0);
    passwd* owner = ::getpwuid(st.st_uid);
    group* grp = ::getgrgid(st.st_gid);
    if (!owner || !grp)
        GTEST_SKIP() << "the socket file's owner or group has no name here";
    std::string ownerName = owner->pw_name;
    std::string groupName = grp->gr_name;

    s.spec.user = ownerName;
    s.spec.group = groupName;
    EXPECT_TRUE(verifySocket(s.fd, s.spec, VerifyMode::Strict).ok())
        << allMessages(verifySocket(s.fd, s.spec, VerifyMode::Strict));

    s.spec.user = ownerName == "nobody" ? "root" : "nobody";
    s.spec.group = "svckit-no-such-group";
    VerifyReport report = verifySocket(s.fd, s.spec, VerifyMode::Strict);
    EXPECT_FALSE(report.ok());
    EXPECT_THAT(
        allMessages(report),
        HasSubstr(std::format("owned by uid {} but the service expects user '{}'", st.st_uid, s.spec.user)));
    EXPECT_THAT(allMessages(report), HasSubstr(std::format("set 'SocketUser={}'", s.spec.user)));
    EXPECT_THAT(allMessages(report), HasSubstr("set 'SocketGroup=svckit-no-such-group'"));
}

TEST(VerifySocket, HasNoFileToCompareForAnAbstractSocket) {
    DefaultSocket s;
    ASSERT_TRUE(s.fd.fd);
    ASSERT_TRUE(applyOptions(s.fd.fd.get(), s.spec).has_value());
    s.spec.mode = 0600;
    s.spec.user = "svckit-no-such-user";
    EXPECT_TRUE(verifySocket(s.fd, s.spec, VerifyMode::Strict).ok());
}

TEST(VerifySocket, ReportsAFdThatIsNotASocket) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd writeEnd(p[1]);
    ActivatedFd fd;
    fd.fd = UniqueFd(p[0]);
    fd.name = "identity";
    VerifyReport report = verifySocket(fd, identitySpec(), VerifyMode::Repair);
    ASSERT_EQ(report.mismatches.size(), 1u);
    EXPECT_EQ(report.mismatches[0].kind, Mismatch::Kind::Family);
    EXPECT_TRUE(report.repaired.empty());
}

// --- verifyActivation, over fds passed on 3, 4, ... in a child
// ----------------------------------------------

internal::ListenEnvironment passing(int count, std::string names) {
    return internal::ListenEnvironment{.pid = std::to_string(::getpid()),
                                       .fds = std::to_string(count),
                                       .fdNames = std::move(names),
                                       .pidfdId = std::nullopt};
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> result;
    size_t start = 0;
    for (;;) {
        size_t end = text.find('\n', start);
        result.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
        if (end == std::string::npos)
            return result;
        start = end + 1;
    }
}

TEST(VerifyActivation, RejectsAFdWhoseNameHasNoSpec) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  SocketSpec spec = identitySpec();
                  spec.address = test::uniqueAbstractAddress("identity");
                  std::vector<UniqueFd> fds;
                  fds.push_back(test::boundSocket(SOCK_STREAM, spec.address));
                  fds.push_back(test::boundSocket(SOCK_STREAM, test::uniqueAbstractAddress("stray")));
                  CHILD_CHECK(fds[0] && fds[1]);
                  CHILD_CHECK(applyOptions(fds[0].get(), spec).has_value());
                  if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                      return e;
                  auto activation =
                      internal::activationFromValues(passing(2, "identity:stray"), ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value());

                  std::vector<SocketSpec> specs{spec};
                  for (VerifyMode mode : {VerifyMode::Strict, VerifyMode::Repair}) {
                      auto verified = verifyActivation(*activation, specs, mode);
                      CHILD_CHECK(!verified.has_value());
                      CHILD_CHECK(verified.error().code() == EINVAL);
                      const std::string& message = verified.error().message();
                      std::vector<std::string> all = lines(message);
                      CHILD_CHECK_MSG(all.size() == 2, "{}", message);
                      CHILD_CHECK_MSG(all[1].find("fd 4 'stray'") != std::string::npos, "{}", message);
                      CHILD_CHECK_MSG(all[1].find("FileDescriptorName=") != std::string::npos, "{}", message);
                      CHILD_CHECK_MSG(all[1].find("'identity'") != std::string::npos, "{}", message);
                  }
                  return {};
              }),
              "");
}

TEST(VerifyActivation, ListsEveryMismatchOnePerLineAndLeavesTheSocketsUntouched) {
    EXPECT_EQ(
        runInChild([]() -> std::string {
            SocketSpec identity = identitySpec();
            identity.address = test::uniqueAbstractAddress("identity");
            SocketSpec control = identitySpec();
            control.name = "control";
            control.passCredentials = false;
            control.address = test::uniqueAbstractAddress("control");
            std::vector<UniqueFd> fds;
            // identity: kernel defaults, so 3 option mismatches.
            fds.push_back(test::boundSocket(SOCK_STREAM, identity.address));
            // control: a seqpacket socket at another address, its options right: 2 mismatches.
            fds.push_back(test::boundSocket(SOCK_SEQPACKET, test::uniqueAbstractAddress("elsewhere")));
            CHILD_CHECK(fds[0] && fds[1]);
            CHILD_CHECK(applyOptions(fds[1].get(), control).has_value());
            if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                return e;
            auto activation =
                internal::activationFromValues(passing(2, "identity:control"), ::getpid(), std::nullopt);
            CHILD_CHECK(activation.has_value());

            std::vector<SocketSpec> specs{identity, control};
            auto verified = verifyActivation(*activation, specs, VerifyMode::Strict);
            CHILD_CHECK(!verified.has_value());
            CHILD_CHECK(verified.error().code() == EINVAL);
            const std::string& message = verified.error().message();
            std::vector<std::string> all = lines(message);
            CHILD_CHECK_MSG(all.size() == 1 + 5, "{}", message);
            CHILD_CHECK_MSG(all[0].find("5 mismatches") != std::string::npos, "{}", message);
            for (size_t i = 1; i < all.size(); ++i)
                CHILD_CHECK_MSG(all[i].starts_with("socket '"), "line {}: {}", i, all[i]);
            for (const char* setting : {"PassCredentials=yes", "PassPIDFD=yes", "AcceptFileDescriptors=no",
                                        "is a SOCK_SEQPACKET socket", "but the service expects '@"})
                CHILD_CHECK_MSG(message.find(setting) != std::string::npos, "no '{}' in: {}", setting,
                                message);

            // Strict changes nothing.
            auto options = readAppliedOptions(3);
            CHILD_CHECK(options.has_value());
            CHILD_CHECK(!options->passCredentials && !options->passPidfd);
            CHILD_CHECK(options->acceptFileDescriptors == std::optional(true));
            return {};
        }),
        "");
}

TEST(VerifyActivation, AcceptsSpecsThatHaveNoFd) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  SocketSpec identity = identitySpec();
                  identity.address = test::uniqueAbstractAddress("identity");
                  SocketSpec unused = identitySpec();
                  unused.name = "unused";
                  std::vector<UniqueFd> fds;
                  fds.push_back(test::boundSocket(SOCK_STREAM, identity.address));
                  CHILD_CHECK(fds[0]);
                  CHILD_CHECK(applyOptions(fds[0].get(), identity).has_value());
                  if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                      return e;
                  auto activation =
                      internal::activationFromValues(passing(1, "identity"), ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value());
                  std::vector<SocketSpec> specs{identity, unused};
                  auto verified = verifyActivation(*activation, specs, VerifyMode::Strict);
                  CHILD_CHECK_MSG(verified.has_value(), "{}", verified.error().message());
                  return {};
              }),
              "");
}

TEST(VerifyActivation, RepairFixesTheSocketAndLogsEachRepairAsAWarning) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  SocketSpec identity = identitySpec();
                  identity.address = test::uniqueAbstractAddress("identity");
                  std::vector<UniqueFd> fds;
                  fds.push_back(test::boundSocket(SOCK_STREAM, identity.address));
                  CHILD_CHECK(fds[0]);
                  if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                      return e;
                  auto activation =
                      internal::activationFromValues(passing(1, "identity"), ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value());

                  // Capture stderr, where svckit logs.
                  int p[2];
                  CHILD_CHECK(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
                  CHILD_CHECK(::dup2(p[1], STDERR_FILENO) == STDERR_FILENO);
                  ::close(p[1]);
                  setLogLevel(LogLevel::Info);

                  std::vector<SocketSpec> specs{identity};
                  auto verified = verifyActivation(*activation, specs, VerifyMode::Repair);
                  CHILD_CHECK_MSG(verified.has_value(), "{}", verified.error().message());

                  char buffer[8192];
                  ssize_t n = ::read(p[0], buffer, sizeof(buffer));
                  ::close(p[0]);
                  CHILD_CHECK(n > 0);
                  std::vector<std::string> logged = lines(std::string(buffer, static_cast<size_t>(n)));
                  CHILD_CHECK(logged.size() == 3 + 1 &&
                              logged.back().empty()); // three lines, each ended by '\n'
                  for (size_t i = 0; i < 3; ++i)
                      CHILD_CHECK_MSG(logged[i].starts_with("<4>socket 'identity'"), "{}", logged[i]);
                  std::string all = std::string(buffer, static_cast<size_t>(n));
                  CHILD_CHECK(all.find("PassPIDFD=yes") != std::string::npos);

                  auto options = readAppliedOptions(3);
                  CHILD_CHECK(options.has_value());
                  CHILD_CHECK(options->passCredentials && options->passPidfd);
                  CHILD_CHECK(options->acceptFileDescriptors == std::optional(false));
                  return {};
              }),
              "");
}

TEST(VerifyActivation, RepairStillRefusesWhatSetsockoptCannotFix) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  SocketSpec identity = identitySpec();
                  identity.address = test::uniqueAbstractAddress("identity");
                  std::vector<UniqueFd> fds;
                  fds.push_back(test::boundSocket(SOCK_STREAM, test::uniqueAbstractAddress("wrong")));
                  CHILD_CHECK(fds[0]);
                  CHILD_CHECK(applyOptions(fds[0].get(), identity).has_value());
                  if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                      return e;
                  auto activation =
                      internal::activationFromValues(passing(1, "identity"), ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value());
                  std::vector<SocketSpec> specs{identity};
                  auto verified = verifyActivation(*activation, specs, VerifyMode::Repair);
                  CHILD_CHECK(!verified.has_value());
                  CHILD_CHECK_MSG(verified.error().message().find("ListenStream=" + identity.address) !=
                                      std::string::npos,
                                  "{}", verified.error().message());
                  return {};
              }),
              "");
}

} // namespace
} // namespace svckit
