// receiveMessage() over real socketpairs: the sender's identity from SCM_CREDENTIALS and SCM_PIDFD, fds kept
// or closed and counted, truncation, EAGAIN and end of stream; and no fd leaks on any of these paths.
#include <svckit/message.hpp>

#include "activation_test_support.hpp"

#include <svckit/activation.hpp>
#include <svckit/internal/activation.hpp>
#include <svckit/internal/linux_socket.hpp>
#include <svckit/socket_options.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace svckit {
namespace {

using test::countOpenFds;
using test::sendWithFds;

struct Pair {
    UniqueFd sender;
    UniqueFd receiver;
};

Pair socketPair(int type) {
    int fds[2] = {-1, -1};
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0)
        return {};
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool setFlag(int fd, int option, bool on) {
    int value = on ? 1 : 0;
    return ::setsockopt(fd, SOL_SOCKET, option, &value, sizeof(value)) == 0;
}

// The "Pid:" line of a pidfd's fdinfo: the process it refers to.
pid_t pidOfPidfd(int pidfd) {
    std::ifstream fdinfo("/proc/self/fdinfo/" + std::to_string(pidfd));
    std::string line;
    while (std::getline(fdinfo, line))
        if (line.starts_with("Pid:"))
            return static_cast<pid_t>(std::stol(line.substr(4)));
    return -1;
}

struct Files {
    std::vector<UniqueFd> owned;
    std::vector<int> raw;
};

// `count` fds on /dev/null, to send.
Files openFiles(size_t count) {
    Files files;
    for (size_t i = 0; i < count; ++i) {
        files.owned.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        files.raw.push_back(files.owned.back().get());
    }
    return files;
}

bool sameFile(int a, int b) {
    struct stat sa {
    }, sb{};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

std::string_view text(const std::array<std::byte, 64>& buffer, size_t size) {
    return {reinterpret_cast<const char*>(buffer.data()), size};
}

TEST(ReceiveMessage, NamesTheSenderWithScmCredentialsAndScmPidfd) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSCRED, true));
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSPIDFD, true));
    ASSERT_EQ(sendWithFds(pair.sender.get(), "hello", {}), 0);

    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(message.has_value()) << message.error().message();
    EXPECT_EQ(text(buffer, message->size), "hello");
    EXPECT_FALSE(message->eof);
    ASSERT_TRUE(message->credentials.has_value());
    EXPECT_EQ(message->credentials->pid, ::getpid());
    EXPECT_EQ(message->credentials->uid, ::getuid());
    EXPECT_EQ(message->credentials->gid, ::getgid());
    ASSERT_TRUE(message->pidfd);
    EXPECT_EQ(pidOfPidfd(message->pidfd.get()), ::getpid());
    int flags = ::fcntl(message->pidfd.get(), F_GETFD);
    EXPECT_TRUE(flags & FD_CLOEXEC);
    if (std::optional<uint64_t> own = internal::ownPidfdId()) {
        struct stat st {};
        ASSERT_EQ(::fstat(message->pidfd.get(), &st), 0);
        EXPECT_EQ(static_cast<uint64_t>(st.st_ino), *own);
    }
}

TEST(ReceiveMessage, CarriesNoIdentityWhenTheReceiverDidNotAskForIt) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_EQ(sendWithFds(pair.sender.get(), "hi", {}), 0);
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(message.has_value());
    EXPECT_EQ(message->size, 2u);
    EXPECT_FALSE(message->credentials.has_value());
    EXPECT_FALSE(message->pidfd);
}

TEST(ReceiveMessage, SenderCannotPassFdsWhenSoPassRightsIsOff) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    SocketSpec spec;
    spec.acceptFileDescriptors = false;
    ASSERT_TRUE(applyOptions(pair.receiver.get(), spec).has_value());

    Files files = openFiles(1);
    EXPECT_EQ(sendWithFds(pair.sender.get(), "fd", files.raw), EPERM);
    // The same message without fds still goes through.
    EXPECT_EQ(sendWithFds(pair.sender.get(), "plain", {}), 0);
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(message.has_value());
    EXPECT_EQ(text(buffer, message->size), "plain");
}

TEST(ReceiveMessage, ClosesAndCountsFdsItDoesNotAccept) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSRIGHTS, true)); // e.g. Linux < 6.16, or the accept gap
    Files files = openFiles(3);
    size_t before = countOpenFds();

    ASSERT_EQ(sendWithFds(pair.sender.get(), "unwanted", files.raw), 0);
    ConnectionCounters counters;
    std::array<std::byte, 64> buffer{};
    ReceiveOptions options;
    options.acceptFds = false;
    auto message = receiveMessage(pair.receiver.get(), buffer, options, &counters);
    ASSERT_TRUE(message.has_value()) << message.error().message();
    EXPECT_EQ(text(buffer, message->size), "unwanted");
    EXPECT_TRUE(message->fds.empty());
    EXPECT_EQ(message->fdsClosed, 3u);
    EXPECT_EQ(counters.unwantedFdsClosed.load(), 3u);
    EXPECT_EQ(test::openFdsSoon(before), before);
}

TEST(ReceiveMessage, ReturnsAcceptedFdsOwnedAndCloexec) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSRIGHTS, true));
    Files files = openFiles(2);
    size_t before = countOpenFds();

    ASSERT_EQ(sendWithFds(pair.sender.get(), "fds", files.raw), 0);
    ConnectionCounters counters;
    std::array<std::byte, 64> buffer{};
    ReceiveOptions options;
    options.acceptFds = true;
    {
        auto message = receiveMessage(pair.receiver.get(), buffer, options, &counters);
        ASSERT_TRUE(message.has_value()) << message.error().message();
        ASSERT_EQ(message->fds.size(), 2u);
        EXPECT_EQ(message->fdsClosed, 0u);
        EXPECT_EQ(counters.unwantedFdsClosed.load(), 0u);
        for (size_t i = 0; i < 2; ++i) {
            EXPECT_TRUE(sameFile(message->fds[i].get(), files.raw[i]));
            EXPECT_NE(message->fds[i].get(), files.raw[i]);
            EXPECT_TRUE(::fcntl(message->fds[i].get(), F_GETFD) & FD_CLOEXEC);
        }
        EXPECT_EQ(countOpenFds(), before + 2);
    }
    // Owned: they close with the message.
    EXPECT_EQ(test::openFdsSoon(before), before);
}

TEST(ReceiveMessage, KeepsAtMostMaxFdsAndClosesTheRest) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSRIGHTS, true));
    Files files = openFiles(4);
    size_t before = countOpenFds();

    ASSERT_EQ(sendWithFds(pair.sender.get(), "many", files.raw), 0);
    ConnectionCounters counters;
    std::array<std::byte, 64> buffer{};
    ReceiveOptions options;
    options.acceptFds = true;
    options.maxFds = 1;
    {
        auto message = receiveMessage(pair.receiver.get(), buffer, options, &counters);
        ASSERT_TRUE(message.has_value());
        ASSERT_EQ(message->fds.size(), 1u);
        EXPECT_TRUE(sameFile(message->fds[0].get(), files.raw[0]));
        // Whatever arrived beyond maxFds was closed here; whatever did not fit, the kernel closed.
        if (!message->controlTruncated) {
            EXPECT_EQ(message->fdsClosed, 3u);
        }
        EXPECT_GT(message->fdsClosed, 0u);
        EXPECT_EQ(counters.unwantedFdsClosed.load(), message->fdsClosed);
        EXPECT_EQ(test::openFdsSoon(before + 1), before + 1);
    }
    EXPECT_EQ(test::openFdsSoon(before), before);
}

TEST(ReceiveMessage, ReportsLostControlDataWhenMoreFdsArriveThanTheBufferHolds) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSRIGHTS, true));
    Files files = openFiles(64);
    size_t before = countOpenFds();

    ASSERT_EQ(sendWithFds(pair.sender.get(), "flood", files.raw), 0);
    std::array<std::byte, 64> buffer{};
    ReceiveOptions options;
    options.acceptFds = true;
    options.maxFds = 4;
    {
        auto message = receiveMessage(pair.receiver.get(), buffer, options);
        ASSERT_TRUE(message.has_value());
        EXPECT_TRUE(message->controlTruncated);
        EXPECT_EQ(text(buffer, message->size), "flood");
        EXPECT_EQ(message->fds.size(), 4u);
        EXPECT_LT(message->fds.size() + message->fdsClosed, 64u);
        EXPECT_EQ(test::openFdsSoon(before + 4), before + 4);
    }
    EXPECT_EQ(test::openFdsSoon(before), before);
}

TEST(ReceiveMessage, ReportsATruncatedPacket) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_EQ(sendWithFds(pair.sender.get(), "0123456789", {}), 0);
    std::array<std::byte, 4> small{};
    auto message = receiveMessage(pair.receiver.get(), small, ReceiveOptions{});
    ASSERT_TRUE(message.has_value());
    EXPECT_TRUE(message->truncated);
    EXPECT_EQ(message->size, 4u);
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(small.data()), 4), "0123");
}

TEST(ReceiveMessage, ReturnsEagainOnAnEmptyNonblockingSocket) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_FALSE(message.has_value());
    EXPECT_EQ(message.error().code(), EAGAIN);
}

TEST(ReceiveMessage, ReportsEofAfterThePeerCloses) {
    for (int type : {SOCK_SEQPACKET, SOCK_STREAM}) {
        Pair pair = socketPair(type);
        ASSERT_TRUE(pair.sender && pair.receiver);
        ASSERT_EQ(sendWithFds(pair.sender.get(), "last", {}), 0);
        pair.sender.reset();
        std::array<std::byte, 64> buffer{};
        auto last = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
        ASSERT_TRUE(last.has_value());
        EXPECT_EQ(text(buffer, last->size), "last");
        EXPECT_FALSE(last->eof);
        auto end = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
        ASSERT_TRUE(end.has_value()) << end.error().message();
        EXPECT_TRUE(end->eof) << type;
        EXPECT_EQ(end->size, 0u);
    }
}

TEST(ReceiveMessage, ReportsEofEvenWhenTheSocketPassesCredentialsAndPidfds) {
    // At the end of a stream the kernel still attaches SCM_CREDENTIALS (naming pid 0) when SO_PASSCRED is on.
    for (int type : {SOCK_STREAM, SOCK_SEQPACKET}) {
        Pair pair = socketPair(type);
        ASSERT_TRUE(pair.sender && pair.receiver);
        ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSCRED, true));
        ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSPIDFD, true));
        pair.sender.reset();
        size_t before = countOpenFds();
        std::array<std::byte, 64> buffer{};
        auto end = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
        ASSERT_TRUE(end.has_value()) << end.error().message();
        EXPECT_TRUE(end->eof) << type;
        EXPECT_FALSE(end->credentials.has_value()) << type;
        EXPECT_FALSE(end->pidfd) << type;
        EXPECT_EQ(test::openFdsSoon(before), before);
    }
}

TEST(ReceiveMessage, TreatsAnEmptyPacketWithCredentialsAsAMessage) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_TRUE(setFlag(pair.receiver.get(), SO_PASSCRED, true));
    ASSERT_EQ(sendWithFds(pair.sender.get(), "", {}), 0);
    pair.sender.reset(); // even when the sender is gone by the time it is read
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(message.has_value()) << message.error().message();
    EXPECT_EQ(message->size, 0u);
    EXPECT_FALSE(message->eof);
    ASSERT_TRUE(message->credentials.has_value());
    EXPECT_EQ(message->credentials->pid, ::getpid());
    auto end = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->eof);
}

TEST(ReceiveMessage, TreatsAnEmptyPacketFromALivePeerAsAMessage) {
    Pair pair = socketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair.sender && pair.receiver);
    ASSERT_EQ(sendWithFds(pair.sender.get(), "", {}), 0);
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(message.has_value()) << message.error().message();
    EXPECT_EQ(message->size, 0u);
    EXPECT_FALSE(message->eof);
    // Nothing else was queued.
    auto next = receiveMessage(pair.receiver.get(), buffer, ReceiveOptions{});
    ASSERT_FALSE(next.has_value());
    EXPECT_EQ(next.error().code(), EAGAIN);
}

TEST(ReceiveMessage, FailsOnAnInvalidFd) {
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(-1, buffer, ReceiveOptions{});
    ASSERT_FALSE(message.has_value());
    EXPECT_EQ(message.error().code(), EBADF);
}

} // namespace
} // namespace svckit
