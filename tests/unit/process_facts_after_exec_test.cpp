// Process facts describe the caller's process as it is when they are read, not as it was when it connected: a
// caller that connects and then execs another program is reported with that program's exe and comm, while the
// connection's SO_PEERCRED uid/gid (and pid) stay those taken at connect(). This is why a service authorizes
// on SO_PEERCRED and never on exe or comm (docs/identity.md, docs/security.md "Identity and its limits").
#include <svckit/identity.hpp>

#include "activation_test_support.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace svckit {
namespace {

using namespace std::chrono_literals;

TEST(ProcessFactsAfterExec, DescribeTheProgramTheCallerExecedAfterConnectingWhileItsCredentialsStay) {
    std::string address = test::uniqueAbstractAddress("exec");
    UniqueFd listener = test::boundSocket(SOCK_STREAM, address);
    ASSERT_TRUE(listener);
    int goPipe[2];
    ASSERT_EQ(::pipe2(goPipe, O_CLOEXEC), 0);
    UniqueFd goRead(goPipe[0]);
    UniqueFd goWrite(goPipe[1]);

    std::fflush(nullptr);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The caller: connect (as this test program), wait for the go, then become another program. The
        // connected socket is CLOEXEC: the new program does not even hold it, yet the facts follow the pidfd.
        UniqueFd connection = test::connectTo(SOCK_STREAM, address);
        char go = 0;
        if (!connection || ::read(goRead.get(), &go, 1) != 1)
            ::_exit(1);
        ::execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    goRead.reset();

    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted);
    auto identity = identityOfPeer(accepted.get());
    ASSERT_TRUE(identity) << identity.error().message();
    if (!identity->pidfd) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
        GTEST_SKIP() << "no SO_PEERPIDFD here (Linux < 6.5)";
    }
    EXPECT_EQ(identity->pid, child);
    auto atConnect = readProcessFacts(identity->pidfd.get());
    ASSERT_TRUE(atConnect) << atConnect.error().message();
    ASSERT_TRUE(atConnect->comm.has_value());
    EXPECT_NE(*atConnect->comm, "sleep");

    ASSERT_EQ(::write(goWrite.get(), "g", 1), 1);
    std::optional<ProcessFacts> afterExec;
    for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;
         std::this_thread::sleep_for(5ms)) {
        auto facts = readProcessFacts(identity->pidfd.get());
        if (facts && facts->comm == "sleep") {
            afterExec = *facts;
            break;
        }
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);

    ASSERT_TRUE(afterExec.has_value()) << "the caller's comm never changed from " << *atConnect->comm;
    EXPECT_EQ(afterExec->pid, child);
    ASSERT_TRUE(afterExec->exe.has_value());
    EXPECT_TRUE(afterExec->exe->ends_with("/sleep")) << *afterExec->exe;
    EXPECT_NE(afterExec->exe, atConnect->exe);
    // What the connection says about its peer was fixed at connect() and does not move with the exec.
    auto again = identityOfPeer(accepted.get());
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again->uid, identity->uid);
    EXPECT_EQ(again->gid, identity->gid);
    EXPECT_EQ(again->pid, child);
}

} // namespace
} // namespace svckit
