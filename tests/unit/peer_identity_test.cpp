// Who is calling: identityOfPeer() over real connections and identityOfMessage() over real messages, from
// this process and from forked children, including a peer that has gone away.
#include <svckit/identity.hpp>
#include <svckit/internal/linux_socket.hpp>
#include <svckit/message.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <memory>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace svckit;

namespace {

// pidfd_open(2) by system call: glibc 2.43's <sys/pidfd.h> declares it without extern "C", so C++ cannot link
// it.
int pidfdOpen(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// Distinctive credentials a child takes on (as root) so that "names the child" cannot pass by naming us.
constexpr uid_t childUid = 4040;
constexpr gid_t childGid = 4141;
const std::vector<gid_t> childGroups = {4242, 4343};

struct FdPair {
    UniqueFd first;
    UniqueFd second;
};

FdPair socketPair(int type) {
    int fds[2];
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0)
        ADD_FAILURE() << "socketpair: " << std::strerror(errno);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

FdPair makePipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::vector<gid_t> sorted(std::vector<gid_t> groups) {
    std::ranges::sort(groups);
    return groups;
}

std::vector<gid_t> ownGroups() {
    int n = ::getgroups(0, nullptr);
    std::vector<gid_t> groups(static_cast<size_t>(n > 0 ? n : 0));
    if (n > 0)
        groups.resize(static_cast<size_t>(::getgroups(n, groups.data())));
    return sorted(groups);
}

bool isCloexec(int fd) {
    return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

// Whether the running kernel is at least major.minor.
bool kernelAtLeast(int major, int minor) {
    utsname u{};
    if (::uname(&u) < 0)
        return false;
    int haveMajor = 0;
    int haveMinor = 0;
    if (std::sscanf(u.release, "%d.%d", &haveMajor, &haveMinor) != 2)
        return false;
    return haveMajor > major || (haveMajor == major && haveMinor >= minor);
}

bool canChangeCredentials() {
    return ::geteuid() == 0;
}

// In a child: take on the distinctive credentials (when we may). Async-signal-safe calls only.
void becomeDistinctive() {
    if (!canChangeCredentials())
        return;
    if (::setgroups(childGroups.size(), childGroups.data()) < 0 ||
        ::setresgid(childGid, childGid, childGid) < 0 || ::setresuid(childUid, childUid, childUid) < 0)
        ::_exit(90);
}

// A forked child that is killed and reaped when the test ends, however it ends.
class Child {
public:
    Child() = default;
    explicit Child(pid_t pid) : pid_(pid) {}
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    [[nodiscard]] pid_t pid() const { return pid_; }
    // Waits for the child to exit and reaps it; returns its exit status.
    int reap() {
        int status = 0;
        if (::waitpid(pid_, &status, 0) != pid_)
            ADD_FAILURE() << "waitpid: " << std::strerror(errno);
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_ = -1;
};

// A listening socket on an autobound abstract address, and that address.
struct Listener {
    UniqueFd fd;
    sockaddr_un address{};
    socklen_t addressLength = 0;
};

Listener listenAbstract() {
    Listener l;
    l.fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un any{};
    any.sun_family = AF_UNIX;
    // Binding with only the family autobinds a unique abstract address: no clash with concurrent runs.
    if (!l.fd || ::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&any), sizeof(sa_family_t)) < 0 ||
        ::listen(l.fd.get(), 4) < 0) {
        ADD_FAILURE() << "listen: " << std::strerror(errno);
        return l;
    }
    l.addressLength = sizeof l.address;
    ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&l.address), &l.addressLength);
    return l;
}

// Forks a child that takes on distinctive credentials, connects to `listener`, then waits until its
// connection is closed (or written to) and exits. Returns the child and our end of its connection.
std::pair<std::unique_ptr<Child>, UniqueFd> connectingChild(const Listener& listener) {
    pid_t pid = ::fork();
    if (pid == 0) {
        becomeDistinctive();
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 ||
            ::connect(fd, reinterpret_cast<const sockaddr*>(&listener.address), listener.addressLength) < 0)
            ::_exit(91);
        char byte;
        while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
        }
        ::_exit(0);
    }
    auto child = std::make_unique<Child>(pid);
    if (pid < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return {std::move(child), UniqueFd()};
    }
    UniqueFd connection(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection)
        ADD_FAILURE() << "accept4: " << std::strerror(errno);
    return {std::move(child), std::move(connection)};
}

// Sends one message with no ancillary data of our own: the kernel attaches the sender's credentials.
void sendText(int fd, std::string_view text) {
    if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size()))
        ADD_FAILURE() << "send: " << std::strerror(errno);
}

void enableCredentialPassing(int fd) {
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_PASSPIDFD, &one, sizeof one) < 0)
        ADD_FAILURE() << "setsockopt(SO_PASSCRED/SO_PASSPIDFD): " << std::strerror(errno);
}

// Receives one message the way a service does: through svckit::receiveMessage().
Result<ReceivedMessage> receiveOne(int fd) {
    std::array<std::byte, 256> buffer{};
    ReceiveOptions options{.acceptFds = false, .maxFds = 4, .nonblocking = false};
    return receiveMessage(fd, buffer, options);
}

} // namespace

TEST(PeerIdentity, NamesThisProcessOverASocketpair) {
    auto [ours, theirs] = socketPair(SOCK_STREAM);

    auto identity = identityOfPeer(ours.get());
    ASSERT_TRUE(identity) << identity.error().message();
    EXPECT_EQ(identity->uid, ::getuid());
    EXPECT_EQ(identity->gid, ::getgid());
    EXPECT_EQ(identity->pid, ::getpid());
    ASSERT_TRUE(identity->pidfd.isValid()) << "SO_PEERPIDFD gave no pidfd on a kernel that has it";
    EXPECT_TRUE(isCloexec(identity->pidfd.get()));
    auto pid = pidOfPidfd(identity->pidfd.get());
    ASSERT_TRUE(pid) << pid.error().message();
    EXPECT_EQ(*pid, ::getpid());
    EXPECT_EQ(sorted(identity->groups), ownGroups());
    EXPECT_EQ(identity->securityLabel.value_or("").find('\0'), std::string::npos) << "the label keeps a NUL";
    EXPECT_NE(identity->securityLabel, "") << "no label is absent, not empty";
}

TEST(PeerIdentity, NamesTheConnectingChildNotUs) {
    Listener listener = listenAbstract();
    auto [child, connection] = connectingChild(listener);
    ASSERT_TRUE(connection.isValid());

    auto identity = identityOfPeer(connection.get());
    ASSERT_TRUE(identity) << identity.error().message();
    EXPECT_EQ(identity->pid, child->pid());
    EXPECT_NE(identity->pid, ::getpid());
    ASSERT_TRUE(identity->pidfd.isValid());
    EXPECT_TRUE(isCloexec(identity->pidfd.get()));
    auto pid = pidOfPidfd(identity->pidfd.get());
    ASSERT_TRUE(pid) << pid.error().message();
    EXPECT_EQ(*pid, child->pid());
    if (canChangeCredentials()) {
        EXPECT_EQ(identity->uid, childUid);
        EXPECT_EQ(identity->gid, childGid);
        EXPECT_EQ(sorted(identity->groups), childGroups);
    } else {
        EXPECT_EQ(identity->uid, ::getuid());
    }

    auto facts = readProcessFacts(identity->pidfd.get());
    ASSERT_TRUE(facts) << facts.error().message();
    EXPECT_EQ(facts->pid, child->pid());
    if (canChangeCredentials()) {
        EXPECT_EQ(facts->uid, childUid);
        EXPECT_EQ(facts->euid, childUid);
        EXPECT_EQ(facts->gid, childGid);
        EXPECT_EQ(facts->egid, childGid);
    }

    connection.reset(); // the child reads EOF and exits
    EXPECT_EQ(child->reap(), 0);
}

TEST(PeerIdentity, FactsOfAPeerThatExitedAndWasReapedAreEsrch) {
    Listener listener = listenAbstract();
    auto [child, connection] = connectingChild(listener);
    ASSERT_TRUE(connection.isValid());
    auto identity = identityOfPeer(connection.get());
    ASSERT_TRUE(identity) << identity.error().message();
    ASSERT_TRUE(identity->pidfd.isValid());
    ASSERT_TRUE(readProcessFacts(identity->pidfd.get())) << "facts of the live peer";

    ASSERT_EQ(::shutdown(connection.get(), SHUT_WR), 0);
    ASSERT_EQ(child->reap(), 0);

    auto alive = isAlive(identity->pidfd.get());
    ASSERT_TRUE(alive) << alive.error().message();
    EXPECT_FALSE(*alive);
    auto pid = pidOfPidfd(identity->pidfd.get());
    ASSERT_FALSE(pid) << "a reaped process still has pid " << *pid;
    EXPECT_EQ(pid.error().code(), ESRCH);
    auto facts = readProcessFacts(identity->pidfd.get());
    ASSERT_FALSE(facts) << "facts of a reaped process: pid " << facts->pid << ", comm "
                        << facts->comm.value_or("");
    EXPECT_EQ(facts.error().code(), ESRCH);
    EXPECT_EQ(facts.error().message(), "Failed to read process facts: the process has exited");

    // The connection still remembers the peer: a later identityOfPeer gives the same pid, and a pidfd that
    // (if the kernel gives one for a reaped peer) is as dead as the first.
    auto again = identityOfPeer(connection.get());
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again->pid, identity->pid);
    if (again->pidfd.isValid()) {
        auto later = readProcessFacts(again->pidfd.get());
        ASSERT_FALSE(later);
        EXPECT_EQ(later.error().code(), ESRCH);
    }
}

TEST(PeerIdentity, FailsOnADescriptorThatIsNotASocket) {
    auto [readEnd, writeEnd] = makePipe();
    auto identity = identityOfPeer(readEnd.get());
    ASSERT_FALSE(identity);
    EXPECT_EQ(identity.error().code(), ENOTSOCK);
    EXPECT_NE(identity.error().message().find("SO_PEERCRED"), std::string::npos)
        << identity.error().message();
}

TEST(MessageIdentity, NamesThisProcessAsTheSenderOfASeqpacketMessage) {
    auto [receiver, sender] = socketPair(SOCK_SEQPACKET);
    enableCredentialPassing(receiver.get());
    sendText(sender.get(), "hello");

    auto message = receiveOne(receiver.get());
    ASSERT_TRUE(message) << message.error().message();
    ASSERT_TRUE(message->credentials.has_value());
    ASSERT_TRUE(message->pidfd.isValid());

    auto identity = identityOfMessage(*message);
    ASSERT_TRUE(identity) << identity.error().message();
    EXPECT_EQ(identity->uid, ::getuid());
    EXPECT_EQ(identity->gid, ::getgid());
    EXPECT_EQ(identity->pid, ::getpid());
    EXPECT_FALSE(message->pidfd.isValid()) << "the pidfd was copied, not moved into the identity";
    ASSERT_TRUE(identity->pidfd.isValid());
    EXPECT_TRUE(isCloexec(identity->pidfd.get()));
    auto pid = pidOfPidfd(identity->pidfd.get());
    ASSERT_TRUE(pid) << pid.error().message();
    EXPECT_EQ(*pid, ::getpid());
}

TEST(MessageIdentity, NamesTheChildThatSentTheMessage) {
    auto [receiver, sender] = socketPair(SOCK_SEQPACKET);
    enableCredentialPassing(receiver.get());
    auto [exitRead, exitWrite] = makePipe();

    pid_t pid = ::fork();
    if (pid == 0) {
        becomeDistinctive();
        static constexpr char text[] = "from the child";
        if (::send(sender.get(), text, sizeof text - 1, MSG_NOSIGNAL) < 0)
            ::_exit(92);
        exitWrite.reset(); // or our own copy of it would keep the pipe from ever reaching EOF
        char byte;
        while (::read(exitRead.get(), &byte, 1) < 0 && errno == EINTR) {
        }
        ::_exit(0);
    }
    ASSERT_GT(pid, 0) << std::strerror(errno);
    Child child(pid);

    auto message = receiveOne(receiver.get());
    ASSERT_TRUE(message) << message.error().message();
    auto identity = identityOfMessage(*message);
    ASSERT_TRUE(identity) << identity.error().message();
    EXPECT_EQ(identity->pid, pid);
    if (canChangeCredentials()) {
        EXPECT_EQ(identity->uid, childUid);
        EXPECT_EQ(identity->gid, childGid);
    }
    ASSERT_TRUE(identity->pidfd.isValid());
    auto facts = readProcessFacts(identity->pidfd.get());
    ASSERT_TRUE(facts) << facts.error().message();
    EXPECT_EQ(facts->pid, pid);
    if (canChangeCredentials()) {
        EXPECT_EQ(facts->uid, childUid);
    }

    exitWrite.reset();
    EXPECT_EQ(child.reap(), 0);
}

TEST(MessageIdentity, KeepsTheIdentityOfASenderThatHasSinceExited) {
    auto [receiver, sender] = socketPair(SOCK_SEQPACKET);
    enableCredentialPassing(receiver.get());

    pid_t pid = ::fork();
    if (pid == 0) {
        static constexpr char text[] = "last words";
        ::_exit(::send(sender.get(), text, sizeof text - 1, MSG_NOSIGNAL) < 0 ? 93 : 0);
    }
    ASSERT_GT(pid, 0) << std::strerror(errno);
    Child child(pid);
    ASSERT_EQ(child.reap(), 0);

    // The message outlived its sender; the kernel still attached who sent it.
    auto message = receiveOne(receiver.get());
    ASSERT_TRUE(message) << message.error().message();
    auto identity = identityOfMessage(*message);
    ASSERT_TRUE(identity) << identity.error().message();
    EXPECT_EQ(identity->pid, pid);
    // Linux >= 6.16 hands out a pidfd for a sender that has been reaped (pidfs keeps it); older kernels give
    // none, and then there is nothing more to check here.
    if (!identity->pidfd.isValid()) {
        ASSERT_FALSE(kernelAtLeast(6, 16)) << "no SCM_PIDFD for a reaped sender on Linux >= 6.16";
        GTEST_SKIP() << "this kernel (< 6.16) gives no SCM_PIDFD for a sender that has been reaped";
    }
    auto facts = readProcessFacts(identity->pidfd.get());
    ASSERT_FALSE(facts) << "facts of a reaped sender: pid " << facts->pid << ", comm "
                        << facts->comm.value_or("");
    EXPECT_EQ(facts.error().code(), ESRCH);
}

TEST(MessageIdentity, RefusesAMessageWithoutCredentials) {
    // A socket without PassCredentials=yes: the message arrives with no SCM_CREDENTIALS.
    auto [receiver, sender] = socketPair(SOCK_SEQPACKET);
    sendText(sender.get(), "anonymous");
    auto message = receiveOne(receiver.get());
    ASSERT_TRUE(message) << message.error().message();
    ASSERT_FALSE(message->credentials.has_value());

    auto identity = identityOfMessage(*message);
    ASSERT_FALSE(identity);
    EXPECT_EQ(identity.error().code(), EPROTO);
    EXPECT_NE(identity.error().message().find("PassCredentials=yes"), std::string::npos)
        << identity.error().message();

    // The same for a message built by hand that carries only a pidfd.
    ReceivedMessage onlyPidfd;
    onlyPidfd.pidfd.reset(pidfdOpen(::getpid()));
    ASSERT_TRUE(onlyPidfd.pidfd.isValid());
    auto refused = identityOfMessage(onlyPidfd);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EPROTO);
}

TEST(MessageIdentity, RefusesCredentialsAndPidfdThatNameDifferentProcesses) {
    auto [exitRead, exitWrite] = makePipe();
    pid_t pid = ::fork();
    if (pid == 0) {
        exitWrite.reset(); // or our own copy of it would keep the pipe from ever reaching EOF
        char byte;
        while (::read(exitRead.get(), &byte, 1) < 0 && errno == EINTR) {
        }
        ::_exit(0);
    }
    ASSERT_GT(pid, 0) << std::strerror(errno);
    Child child(pid);

    // Credentials naming us, a pidfd naming the child.
    ReceivedMessage message;
    message.credentials = ucred{.pid = ::getpid(), .uid = ::getuid(), .gid = ::getgid()};
    message.pidfd.reset(pidfdOpen(pid));
    ASSERT_TRUE(message.pidfd.isValid()) << std::strerror(errno);
    auto identity = identityOfMessage(message);
    ASSERT_FALSE(identity) << "accepted pid " << identity->pid << " with a pidfd of pid " << pid;
    EXPECT_EQ(identity.error().code(), EPROTO);

    // Matching ones are accepted.
    ReceivedMessage matching;
    matching.credentials = ucred{.pid = pid, .uid = ::getuid(), .gid = ::getgid()};
    matching.pidfd.reset(pidfdOpen(pid));
    auto accepted = identityOfMessage(matching);
    ASSERT_TRUE(accepted) << accepted.error().message();
    EXPECT_EQ(accepted->pid, pid);

    exitWrite.reset();
    EXPECT_EQ(child.reap(), 0);
}
