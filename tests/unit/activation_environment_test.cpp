// Reading LISTEN_* and taking the passed fds. Every case that could take fds 3, 4, ... runs in a forked child
// that puts real sockets there first, so the test process's own descriptors are never touched.
#include <svckit/activation.hpp>

#include <svckit/internal/activation.hpp>

#include "activation_test_support.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <filesystem>
#include <format>
#include <optional>
#include <string>
#include <vector>

using ::testing::HasSubstr;

namespace svckit {
namespace {

using test::hasCloexec;
using test::isOpen;
using test::placeAsPassedFds;
using test::runInChild;

internal::ListenEnvironment environment(std::optional<std::string> pid, std::optional<std::string> fds,
                                        std::optional<std::string> names = std::nullopt,
                                        std::optional<std::string> pidfdId = std::nullopt) {
    return internal::ListenEnvironment{.pid = std::move(pid),
                                       .fds = std::move(fds),
                                       .fdNames = std::move(names),
                                       .pidfdId = std::move(pidfdId)};
}

std::string self() {
    return std::to_string(::getpid());
}

// `count` listening stream sockets on abstract addresses, to be placed on 3, 4, ...
std::vector<UniqueFd> listeners(int count) {
    std::vector<UniqueFd> fds;
    for (int i = 0; i < count; ++i)
        fds.push_back(test::boundSocket(SOCK_STREAM, test::uniqueAbstractAddress("env")));
    return fds;
}

// In a child: puts `count` listeners on 3.. and returns the error of placing them ("" when fine).
std::string placeListeners(int count) {
    std::vector<UniqueFd> fds = listeners(count);
    for (const UniqueFd& fd : fds)
        if (!fd)
            return "could not create a listening socket";
    return placeAsPassedFds(std::move(fds));
}

std::optional<uint64_t> requirePidfdId() {
    return internal::ownPidfdId();
}

// --- LISTEN_PID / LISTEN_PIDFDID ---------------------------------------------------------------------------

TEST(ActivationEnvironment, TakesPassedSocketsByNameAndMarksThemCloexec) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  std::string stream = test::uniqueAbstractAddress("stream");
                  std::string seqpacket = test::uniqueAbstractAddress("seqpacket");
                  std::vector<UniqueFd> fds;
                  fds.push_back(test::boundSocket(SOCK_STREAM, stream));
                  fds.push_back(test::boundSocket(SOCK_SEQPACKET, seqpacket));
                  CHILD_CHECK(fds[0] && fds[1]);
                  if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                      return e;
                  CHILD_CHECK(!hasCloexec(3) && !hasCloexec(4));

                  auto activation = internal::activationFromValues(
                      environment(self(), "2", "varlink:control"), ::getpid(), internal::ownPidfdId());
                  CHILD_CHECK_MSG(activation.has_value(), "{}", activation.error().message());
                  CHILD_CHECK(activation->activated());
                  CHILD_CHECK(activation->ignoredReason().empty());
                  auto passed = activation->fds();
                  CHILD_CHECK(passed.size() == 2);
                  CHILD_CHECK(passed[0].fd.get() == 3 && passed[0].name == "varlink");
                  CHILD_CHECK(passed[1].fd.get() == 4 && passed[1].name == "control");
                  CHILD_CHECK(passed[0].info.isSocket && passed[0].info.family == AF_UNIX);
                  CHILD_CHECK(passed[0].info.type == SOCK_STREAM && passed[0].info.listening);
                  CHILD_CHECK_MSG(passed[0].info.address == stream, "{}", passed[0].info.address);
                  CHILD_CHECK(passed[1].info.type == SOCK_SEQPACKET && passed[1].info.address == seqpacket);
                  CHILD_CHECK(hasCloexec(3) && hasCloexec(4));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, IgnoresFdsWhenListenPidNamesAnotherProcess) {
    EXPECT_EQ(
        runInChild([]() -> std::string {
            if (auto e = placeListeners(1); !e.empty())
                return e;
            std::string other = std::to_string(::getppid());
            auto activation =
                internal::activationFromValues(environment(other, "1", "varlink"), ::getpid(), std::nullopt);
            CHILD_CHECK(activation.has_value());
            CHILD_CHECK(!activation->activated());
            CHILD_CHECK(activation->fds().empty());
            CHILD_CHECK_MSG(activation->ignoredReason().find("LISTEN_PID=" + other) != std::string::npos,
                            "{}", activation->ignoredReason());
            // Untouched: neither owned (closed with the Activation) nor marked CLOEXEC.
            activation = Activation();
            CHILD_CHECK(isOpen(3) && !hasCloexec(3));
            return {};
        }),
        "");
}

TEST(ActivationEnvironment, IgnoresFdsWhenListenPidfdIdNamesAnotherProcess) {
    if (!requirePidfdId())
        GTEST_SKIP() << "pidfds are not on pidfs here (Linux < 6.9): no pidfd id to compare";
    EXPECT_EQ(
        runInChild([]() -> std::string {
            if (auto e = placeListeners(1); !e.empty())
                return e;
            std::optional<uint64_t> own = internal::ownPidfdId();
            CHILD_CHECK(own.has_value());
            std::string stale = std::to_string(*own + 1);
            auto activation =
                internal::activationFromValues(environment(self(), "1", "varlink", stale), ::getpid(), own);
            CHILD_CHECK(activation.has_value());
            CHILD_CHECK(!activation->activated());
            CHILD_CHECK(activation->fds().empty());
            CHILD_CHECK_MSG(activation->ignoredReason().find("LISTEN_PIDFDID=" + stale) != std::string::npos,
                            "{}", activation->ignoredReason());
            activation = Activation();
            CHILD_CHECK(isOpen(3) && !hasCloexec(3));
            return {};
        }),
        "");
}

TEST(ActivationEnvironment, TakesFdsWhenListenPidfdIdNamesThisProcess) {
    if (!requirePidfdId())
        GTEST_SKIP() << "pidfds are not on pidfs here (Linux < 6.9): no pidfd id to compare";
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  std::optional<uint64_t> own = internal::ownPidfdId();
                  CHILD_CHECK(own.has_value());
                  auto activation = internal::activationFromValues(
                      environment(self(), "1", "varlink", std::to_string(*own)), ::getpid(), own);
                  CHILD_CHECK_MSG(activation.has_value(), "{}", activation.error().message());
                  CHILD_CHECK(activation->activated());
                  CHILD_CHECK(activation->fds().size() == 1 && activation->fds()[0].fd.get() == 3);
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, SkipsTheListenPidfdIdCheckWhenTheOwnIdIsUnknown) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  auto activation = internal::activationFromValues(
                      environment(self(), "1", "varlink", "12345"), ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value());
                  CHILD_CHECK(activation->activated());
                  CHILD_CHECK(activation->fds().size() == 1);
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, OwnPidfdIdIsTheInodeOfAPidfdOfThisProcess) {
    std::optional<uint64_t> own = internal::ownPidfdId();
    if (!own)
        GTEST_SKIP() << "pidfds are not on pidfs here (Linux < 6.9)";
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    ASSERT_TRUE(pidfd);
    struct stat st {};
    ASSERT_EQ(::fstat(pidfd.get(), &st), 0);
    EXPECT_EQ(*own, static_cast<uint64_t>(st.st_ino));
    EXPECT_EQ(internal::ownPidfdId(), own);

    uint64_t parent = *own;
    EXPECT_EQ(runInChild([parent]() -> std::string {
                  std::optional<uint64_t> child = internal::ownPidfdId();
                  CHILD_CHECK(child.has_value());
                  CHILD_CHECK_MSG(*child != parent, "child and parent both have pidfd id {}", parent);
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, IsNotActivatedWithoutListenPid) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  auto none = internal::activationFromValues(environment(std::nullopt, std::nullopt),
                                                             ::getpid(), std::nullopt);
                  CHILD_CHECK(none.has_value() && !none->activated() && none->ignoredReason().empty());

                  auto fdsOnly = internal::activationFromValues(environment(std::nullopt, "1"), ::getpid(),
                                                                std::nullopt);
                  CHILD_CHECK(fdsOnly.has_value() && !fdsOnly->activated());
                  CHILD_CHECK_MSG(fdsOnly->ignoredReason().find("LISTEN_PID") != std::string::npos, "{}",
                                  fdsOnly->ignoredReason());
                  none = Activation();
                  fdsOnly = Activation();
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, RejectsAMalformedListenPid) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  for (std::string bad : {"", "abc", "-1", "0", "12abc", " 12", "+12"}) {
                      auto activation =
                          internal::activationFromValues(environment(bad, "1"), ::getpid(), std::nullopt);
                      CHILD_CHECK_MSG(!activation.has_value(), "LISTEN_PID='{}' was accepted", bad);
                      CHILD_CHECK(activation.error().code() == EINVAL);
                      CHILD_CHECK_MSG(activation.error().message().find("LISTEN_PID") != std::string::npos,
                                      "{}", activation.error().message());
                  }
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, RejectsAMalformedListenPidfdId) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  for (std::string bad : {"", "abc", "-1", "1.5"}) {
                      auto activation = internal::activationFromValues(environment(self(), "1", "x", bad),
                                                                       ::getpid(), std::nullopt);
                      CHILD_CHECK_MSG(!activation.has_value(), "LISTEN_PIDFDID='{}' was accepted", bad);
                      CHILD_CHECK(activation.error().code() == EINVAL);
                      CHILD_CHECK(activation.error().message().find("LISTEN_PIDFDID") != std::string::npos);
                  }
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

// --- LISTEN_FDS / LISTEN_FDNAMES
// -----------------------------------------------------------------------------

TEST(ActivationEnvironment, IsNotActivatedWhenListenFdsIsMissing) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  auto activation = internal::activationFromValues(environment(self(), std::nullopt),
                                                                   ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value());
                  CHILD_CHECK(!activation->activated() && activation->fds().empty());
                  CHILD_CHECK(activation->ignoredReason().find("LISTEN_FDS") != std::string::npos);
                  activation = Activation();
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, RejectsAMalformedListenFdsWithoutTouchingTheFds) {
    EXPECT_EQ(
        runInChild([]() -> std::string {
            if (auto e = placeListeners(1); !e.empty())
                return e;
            for (std::string bad : {"", "abc", "0", "-1", "+1", "1x", " 1", "99999999999", "2147483647"}) {
                auto activation =
                    internal::activationFromValues(environment(self(), bad), ::getpid(), std::nullopt);
                CHILD_CHECK_MSG(!activation.has_value(), "LISTEN_FDS='{}' was accepted", bad);
                CHILD_CHECK(activation.error().code() == EINVAL);
                CHILD_CHECK_MSG(activation.error().message().find("LISTEN_FDS") != std::string::npos, "{}",
                                activation.error().message());
            }
            CHILD_CHECK(isOpen(3) && !hasCloexec(3));
            return {};
        }),
        "");
}

TEST(ActivationEnvironment, RejectsListenFdNamesWhoseCountDiffersFromListenFds) {
    EXPECT_EQ(
        runInChild([]() -> std::string {
            if (auto e = placeListeners(2); !e.empty())
                return e;
            for (std::string names : {"varlink", "a:b:c", ""}) {
                auto activation =
                    internal::activationFromValues(environment(self(), "2", names), ::getpid(), std::nullopt);
                CHILD_CHECK_MSG(!activation.has_value(), "LISTEN_FDNAMES='{}' was accepted", names);
                CHILD_CHECK(activation.error().code() == EINVAL);
                CHILD_CHECK_MSG(activation.error().message().find("LISTEN_FDNAMES") != std::string::npos,
                                "{}", activation.error().message());
            }
            // An error takes nothing: the fds are neither closed nor marked.
            CHILD_CHECK(isOpen(3) && isOpen(4) && !hasCloexec(3) && !hasCloexec(4));
            return {};
        }),
        "");
}

TEST(ActivationEnvironment, NamesEveryFdUnknownWithoutListenFdNames) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(2); !e.empty())
                      return e;
                  auto activation =
                      internal::activationFromValues(environment(self(), "2"), ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value() && activation->activated());
                  CHILD_CHECK(activation->fds().size() == 2);
                  CHILD_CHECK(activation->fds()[0].name == "unknown" &&
                              activation->fds()[1].name == "unknown");
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, KeepsEmptyNamesBetweenColons) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(3); !e.empty())
                      return e;
                  auto activation = internal::activationFromValues(environment(self(), "3", "a::c"),
                                                                   ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value() && activation->fds().size() == 3);
                  CHILD_CHECK(activation->fds()[0].name == "a");
                  CHILD_CHECK(activation->fds()[1].name.empty());
                  CHILD_CHECK(activation->fds()[2].name == "c");
                  return {};
              }),
              "");
}

// LISTEN_FDS comes from the environment (tests/fuzz/listen_environment.cpp found this too): a huge count must
// be refused from the fd table (one fcntl() on the last fd it names) before a name or a SocketInfo is made
// per fd. 5 000 000 "unknown" names alone would be ~160 MB; the child's peak RSS must not grow by more than a
// few MB.
TEST(ActivationEnvironment, RefusesAHugeListenFdsFromTheFdTableBeforeAllocatingPerFd) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  for (std::string huge : {"2147483000", "5000000", "100000"}) {
                      rusage before{};
                      ::getrusage(RUSAGE_SELF, &before);
                      auto activation =
                          internal::activationFromValues(environment(self(), huge), ::getpid(), std::nullopt);
                      rusage after{};
                      ::getrusage(RUSAGE_SELF, &after);
                      CHILD_CHECK_MSG(!activation.has_value(), "LISTEN_FDS={} was accepted", huge);
                      CHILD_CHECK(activation.error().code() == EBADF);
                      CHILD_CHECK_MSG(activation.error().message().find("LISTEN_FDS=" + huge) !=
                                          std::string::npos,
                                      "{}", activation.error().message());
                      CHILD_CHECK_MSG(after.ru_maxrss - before.ru_maxrss < 16 * 1024,
                                      "LISTEN_FDS={}: peak RSS grew by {} KiB", huge,
                                      after.ru_maxrss - before.ru_maxrss);
                  }
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, FailsWithoutTakingAnyFdWhenAPassedFdIsClosed) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  ::close(4);
                  auto activation = internal::activationFromValues(environment(self(), "2", "a:b"),
                                                                   ::getpid(), std::nullopt);
                  CHILD_CHECK(!activation.has_value());
                  CHILD_CHECK(activation.error().code() == EBADF);
                  CHILD_CHECK_MSG(activation.error().message().find("fd 4") != std::string::npos, "{}",
                                  activation.error().message());
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, ClassifiesAPassedNonSocket) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  int p[2];
                  CHILD_CHECK(::pipe2(p, O_CLOEXEC) == 0);
                  UniqueFd writeEnd(p[1]);
                  std::vector<UniqueFd> fds;
                  fds.emplace_back(p[0]);
                  if (auto e = placeAsPassedFds(std::move(fds)); !e.empty())
                      return e;
                  auto activation = internal::activationFromValues(environment(self(), "1", "fifo"),
                                                                   ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value() && activation->fds().size() == 1);
                  CHILD_CHECK(!activation->fds()[0].info.isSocket);
                  CHILD_CHECK(activation->fds()[0].info.family == 0);
                  return {};
              }),
              "");
}

// --- find / take
// ---------------------------------------------------------------------------------------------

TEST(ActivationEnvironment, FindsTheFirstFdOfANameAndTakeRemovesAllOfThem) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(3); !e.empty())
                      return e;
                  auto activation = internal::activationFromValues(environment(self(), "3", "a:b:a"),
                                                                   ::getpid(), std::nullopt);
                  CHILD_CHECK(activation.has_value() && activation->fds().size() == 3);

                  ActivatedFd* first = activation->find("a");
                  CHILD_CHECK(first != nullptr && first->fd.get() == 3);
                  CHILD_CHECK(activation->find("nothing") == nullptr);

                  std::vector<ActivatedFd> taken = activation->take("a");
                  CHILD_CHECK(taken.size() == 2);
                  CHILD_CHECK(taken[0].fd.get() == 3 && taken[1].fd.get() == 5);
                  CHILD_CHECK(activation->find("a") == nullptr);
                  CHILD_CHECK(activation->fds().size() == 1 && activation->fds()[0].name == "b");
                  CHILD_CHECK(activation->fds()[0].fd.get() == 4);
                  CHILD_CHECK(activation->take("nothing").empty());
                  CHILD_CHECK(activation->fds().size() == 1);

                  // The taken fds belong to the caller now, and close with it.
                  CHILD_CHECK(isOpen(3) && isOpen(5));
                  taken.clear();
                  CHILD_CHECK(!isOpen(3) && !isOpen(5) && isOpen(4));
                  return {};
              }),
              "");
}

// --- fromEnvironment
// -----------------------------------------------------------------------------------------

bool listenVariablesUnset() {
    return !std::getenv("LISTEN_PID") && !std::getenv("LISTEN_FDS") && !std::getenv("LISTEN_FDNAMES") &&
           !std::getenv("LISTEN_PIDFDID");
}

void setListenVariables(const std::string& pid, const std::string& fds, const std::string& names,
                        const std::optional<std::string>& pidfdId) {
    ::setenv("LISTEN_PID", pid.c_str(), 1);
    ::setenv("LISTEN_FDS", fds.c_str(), 1);
    ::setenv("LISTEN_FDNAMES", names.c_str(), 1);
    if (pidfdId)
        ::setenv("LISTEN_PIDFDID", pidfdId->c_str(), 1);
    else
        ::unsetenv("LISTEN_PIDFDID");
}

TEST(ActivationEnvironment, FromEnvironmentTakesTheFdsAndUnsetsTheVariables) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  std::optional<uint64_t> own = internal::ownPidfdId();
                  setListenVariables(self(), "1", "varlink",
                                     own ? std::optional(std::to_string(*own)) : std::nullopt);
                  auto activation = Activation::fromEnvironment();
                  CHILD_CHECK_MSG(activation.has_value(), "{}", activation.error().message());
                  CHILD_CHECK(activation->activated());
                  CHILD_CHECK(activation->fds().size() == 1 && activation->fds()[0].name == "varlink");
                  CHILD_CHECK(listenVariablesUnset());

                  // Read once: a second call finds nothing.
                  auto again = Activation::fromEnvironment();
                  CHILD_CHECK(again.has_value() && !again->activated());
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, FromEnvironmentUnsetsTheVariablesWhenTheyNameAnotherProcess) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  setListenVariables(std::to_string(::getppid()), "1", "varlink", std::nullopt);
                  auto activation = Activation::fromEnvironment();
                  CHILD_CHECK(activation.has_value() && !activation->activated());
                  CHILD_CHECK(listenVariablesUnset());
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, FromEnvironmentChecksListenPidfdIdAgainstThisProcess) {
    if (!requirePidfdId())
        GTEST_SKIP() << "pidfds are not on pidfs here (Linux < 6.9): no pidfd id to compare";
    EXPECT_EQ(runInChild([]() -> std::string {
                  if (auto e = placeListeners(1); !e.empty())
                      return e;
                  std::optional<uint64_t> own = internal::ownPidfdId();
                  CHILD_CHECK(own.has_value());
                  setListenVariables(self(), "1", "varlink", std::to_string(*own + 1));
                  auto activation = Activation::fromEnvironment();
                  CHILD_CHECK(activation.has_value() && !activation->activated());
                  CHILD_CHECK(activation->ignoredReason().find("LISTEN_PIDFDID") != std::string::npos);
                  CHILD_CHECK(listenVariablesUnset());
                  CHILD_CHECK(isOpen(3) && !hasCloexec(3));
                  return {};
              }),
              "");
}

TEST(ActivationEnvironment, ReadKeepsTheVariablesUnlessAskedToUnset) {
    EXPECT_EQ(runInChild([]() -> std::string {
                  setListenVariables("42", "2", "a:b", std::string("7"));
                  internal::ListenEnvironment kept = internal::ListenEnvironment::read(false);
                  CHILD_CHECK(kept.pid == "42" && kept.fds == "2" && kept.fdNames == "a:b" &&
                              kept.pidfdId == "7");
                  CHILD_CHECK(std::getenv("LISTEN_PID") != nullptr);
                  internal::ListenEnvironment taken = internal::ListenEnvironment::read(true);
                  CHILD_CHECK(taken.pid == "42" && taken.fdNames == "a:b");
                  CHILD_CHECK(listenVariablesUnset());
                  internal::ListenEnvironment empty = internal::ListenEnvironment::read(false);
                  CHILD_CHECK(!empty.pid && !empty.fds && !empty.fdNames && !empty.pidfdId);
                  return {};
              }),
              "");
}

// --- agreement with libsystemd
// -------------------------------------------------------------------------------

enum class Pid { Self, Other, Garbage, Unset };
enum class PidfdId { Unset, Own, Other, Garbage };

struct DifferentialCase {
    Pid pid;
    std::optional<std::string> fds;
    std::optional<std::string> names;
    PidfdId pidfdId = PidfdId::Unset;
};

std::string describe(const DifferentialCase& c) {
    return std::format("pid={} fds={} names={} pidfdid={}", static_cast<int>(c.pid),
                       c.fds.value_or("<unset>"), c.names.value_or("<unset>"), static_cast<int>(c.pidfdId));
}

// In a child with three sockets on 3, 4, 5: the same environment through sd_listen_fds_with_names() and
// through Activation; they must agree on error / not activated / count and names.
std::string compareWithLibsystemd(const DifferentialCase& c) {
    if (auto e = placeListeners(3); !e.empty())
        return e;
    std::optional<uint64_t> own = internal::ownPidfdId();
    auto set = [](const char* name, const std::optional<std::string>& value) {
        if (value)
            ::setenv(name, value->c_str(), 1);
        else
            ::unsetenv(name);
    };
    switch (c.pid) {
    case Pid::Self:
        set("LISTEN_PID", self());
        break;
    case Pid::Other:
        set("LISTEN_PID", std::to_string(::getppid()));
        break;
    case Pid::Garbage:
        set("LISTEN_PID", "x1");
        break;
    case Pid::Unset:
        set("LISTEN_PID", std::nullopt);
        break;
    }
    set("LISTEN_FDS", c.fds);
    set("LISTEN_FDNAMES", c.names);
    switch (c.pidfdId) {
    case PidfdId::Unset:
        set("LISTEN_PIDFDID", std::nullopt);
        break;
    case PidfdId::Own:
        if (!own)
            return std::format("{}: no pidfd id of our own (pidfs) to compare", describe(c));
        set("LISTEN_PIDFDID", std::to_string(*own));
        break;
    case PidfdId::Other:
        if (!own)
            return std::format("{}: no pidfd id of our own (pidfs) to compare", describe(c));
        set("LISTEN_PIDFDID", std::to_string(*own + 1));
        break;
    case PidfdId::Garbage:
        set("LISTEN_PIDFDID", "pidfd");
        break;
    }

    char** sdNames = nullptr;
    int sd = sd_listen_fds_with_names(0, &sdNames);
    std::vector<std::string> expectedNames;
    if (sdNames) {
        for (char** n = sdNames; *n; ++n) {
            expectedNames.emplace_back(*n);
            std::free(*n);
        }
        std::free(static_cast<void*>(sdNames));
    }

    auto ours = internal::activationFromValues(internal::ListenEnvironment::read(false), ::getpid(), own);
    if (sd < 0) {
        CHILD_CHECK_MSG(!ours.has_value(), "{}: libsystemd failed ({}) but svckit accepted", describe(c), sd);
        return {};
    }
    CHILD_CHECK_MSG(ours.has_value(), "{}: libsystemd returned {} but svckit failed: {}", describe(c), sd,
                    ours.error().message());
    if (sd == 0) {
        CHILD_CHECK_MSG(!ours->activated(), "{}: libsystemd says not activated, svckit took {} fds",
                        describe(c), ours->fds().size());
        return {};
    }
    CHILD_CHECK_MSG(ours->activated() && ours->fds().size() == static_cast<size_t>(sd),
                    "{}: libsystemd took {} fds, svckit {}", describe(c), sd, ours->fds().size());
    for (size_t i = 0; i < ours->fds().size(); ++i)
        CHILD_CHECK_MSG(ours->fds()[i].name == expectedNames.at(i),
                        "{}: name {} is '{}' for libsystemd, '{}' for svckit", describe(c), i,
                        expectedNames.at(i), ours->fds()[i].name);
    return {};
}

TEST(ActivationEnvironment, AgreesWithLibsystemdOnCountAndNames) {
    const std::vector<DifferentialCase> cases = {
        {Pid::Self, "1", "varlink"},
        {Pid::Self, "3", "varlink:control:metrics"},
        {Pid::Self, "2", std::nullopt},
        {Pid::Self, "2", "a:"},
        {Pid::Self, "3", "a::c"},
        {Pid::Self, "1", ""},
        {Pid::Self, "2", ""},
        {Pid::Self, "2", "a"},
        {Pid::Self, "1", "a:b"},
        {Pid::Self, "0", "a"},
        {Pid::Self, "abc", "a"},
        {Pid::Self, "-1", std::nullopt},
        {Pid::Self, "4", std::nullopt}, // fd 6 is not open
        {Pid::Self, std::nullopt, "a"},
        {Pid::Other, "1", "varlink"},
        {Pid::Garbage, "1", "varlink"},
        {Pid::Unset, "1", "varlink"},
        {Pid::Self, "1", "varlink", PidfdId::Garbage},
        {Pid::Other, "1", "varlink", PidfdId::Garbage},
    };
    for (const DifferentialCase& c : cases)
        EXPECT_EQ(runInChild([&c] { return compareWithLibsystemd(c); }), "") << describe(c);
}

TEST(ActivationEnvironment, AgreesWithLibsystemdOnListenPidfdId) {
    if (!requirePidfdId())
        GTEST_SKIP() << "pidfds are not on pidfs here (Linux < 6.9): no pidfd id to compare";
    const std::vector<DifferentialCase> cases = {
        {Pid::Self, "1", "varlink", PidfdId::Own},
        {Pid::Self, "1", "varlink", PidfdId::Other},
        {Pid::Self, "3", "a:b:c", PidfdId::Own},
        {Pid::Other, "1", "varlink", PidfdId::Own},
    };
    for (const DifferentialCase& c : cases)
        EXPECT_EQ(runInChild([&c] { return compareWithLibsystemd(c); }), "") << describe(c);
}

// --- inspectSocket
// -------------------------------------------------------------------------------------------

using test::TempDir;

TEST(SocketInspection, ReportsAListeningPathSocket) {
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    std::string path = dir.path() + "/listen.sock";
    UniqueFd fd = test::boundSocket(SOCK_STREAM, path);
    ASSERT_TRUE(fd);
    auto info = inspectSocket(fd.get());
    ASSERT_TRUE(info.has_value()) << info.error().message();
    EXPECT_TRUE(info->isSocket);
    EXPECT_EQ(info->family, AF_UNIX);
    EXPECT_EQ(info->type, SOCK_STREAM);
    EXPECT_TRUE(info->listening);
    EXPECT_EQ(info->address, path);
}

TEST(SocketInspection, ReportsAConnectedUnnamedSocketAsNotListening) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd a(pair[0]), b(pair[1]);
    auto info = inspectSocket(a.get());
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(info->isSocket);
    EXPECT_EQ(info->family, AF_UNIX);
    EXPECT_FALSE(info->listening);
    EXPECT_EQ(info->address, "");
}

TEST(SocketInspection, ReportsAnAcceptedSocketWithItsListenersAddress) {
    std::string address = test::uniqueAbstractAddress("accepted");
    UniqueFd listener = test::boundSocket(SOCK_STREAM, address);
    ASSERT_TRUE(listener);
    UniqueFd client = test::connectTo(SOCK_STREAM, address);
    ASSERT_TRUE(client);
    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted);
    auto info = inspectSocket(accepted.get());
    ASSERT_TRUE(info.has_value());
    EXPECT_FALSE(info->listening);
    EXPECT_EQ(info->type, SOCK_STREAM);
    EXPECT_EQ(info->address, address);
}

TEST(SocketInspection, ReportsTheSeqPacketType) {
    std::string address = test::uniqueAbstractAddress("seqpacket");
    UniqueFd fd = test::boundSocket(SOCK_SEQPACKET, address);
    ASSERT_TRUE(fd);
    auto info = inspectSocket(fd.get());
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->type, SOCK_SEQPACKET);
    EXPECT_TRUE(info->listening);
    EXPECT_EQ(info->address, address);
}

TEST(SocketInspection, ReportsAnAbstractNameWithAnAtSignAndItsExactLength) {
    // Abstract names are byte strings: a NUL inside is part of the name, and nothing follows the length.
    std::string name = std::format("svckit-test-{}", ::getpid());
    name += '\0';
    name += "tail";
    std::string address = "@" + name;
    UniqueFd fd = test::boundSocket(SOCK_STREAM, address);
    ASSERT_TRUE(fd);
    auto info = inspectSocket(fd.get());
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->address, address);
    EXPECT_EQ(info->address.size(), address.size());
}

TEST(SocketInspection, ReportsANonSocketAsNotASocket) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd readEnd(p[0]), writeEnd(p[1]);
    auto info = inspectSocket(readEnd.get());
    ASSERT_TRUE(info.has_value());
    EXPECT_FALSE(info->isSocket);
    EXPECT_EQ(info->family, 0);
    EXPECT_EQ(info->address, "");
}

TEST(SocketInspection, FailsOnAnInvalidFd) {
    auto info = inspectSocket(-1);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code(), EBADF);
    EXPECT_THAT(info.error().message(), HasSubstr("-1"));
}

} // namespace
} // namespace svckit
