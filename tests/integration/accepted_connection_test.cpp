// Real bound AF_UNIX sockets in a temporary directory: bindSocket() applies the spec before listen(),
// accepted sockets inherit it (Linux >= 6.16), and a client that connected in the gap before the listener's
// options were set is repaired or refused by acceptConnection(); fds a hostile client pushed in that gap are
// closed.
#include <svckit/activation.hpp>

#include "../unit/activation_test_support.hpp"

#include <svckit/message.hpp>
#include <svckit/socket_options.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

using ::testing::HasSubstr;

namespace svckit {
namespace {

using test::countOpenFds;
using test::sendWithFds;
using test::TempDir;

constexpr const char* inheritanceSkip = "accepted sockets inherit SO_PASSCRED/SO_PASSPIDFD/SO_PASSRIGHTS "
                                        "from their listener only since Linux 6.16";

SocketSpec serviceSpec(std::string address, SocketType type = SocketType::Stream) {
    SocketSpec spec;
    spec.name = "identity";
    spec.address = std::move(address);
    spec.type = type;
    spec.passCredentials = true;
    spec.passPidfd = true;
    spec.acceptFileDescriptors = false;
    spec.mode = 0600;
    return spec;
}

void expectOptionsOf(int fd, const SocketSpec& spec) {
    auto options = readAppliedOptions(fd);
    ASSERT_TRUE(options.has_value()) << options.error().message();
    EXPECT_EQ(options->passCredentials, spec.passCredentials);
    EXPECT_EQ(options->passPidfd, spec.passPidfd);
    EXPECT_EQ(options->acceptFileDescriptors, std::optional(spec.acceptFileDescriptors));
}

// The client's view of a refused connection: readable, and the read returns end of stream.
bool sawConnectionClosed(int client) {
    pollfd p{.fd = client, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 2000) != 1)
        return false;
    char byte = 0;
    ssize_t n = ::recv(client, &byte, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

std::string receiveText(int fd, const ReceiveOptions& options, ConnectionCounters* counters,
                        size_t* fdsClosed) {
    std::array<std::byte, 256> buffer{};
    auto message = receiveMessage(fd, buffer, options, counters);
    if (!message)
        return "error: " + message.error().message();
    if (fdsClosed)
        *fdsClosed = message->fdsClosed;
    return std::string(reinterpret_cast<const char*>(buffer.data()), message->size);
}

// --- bindSocket
// ----------------------------------------------------------------------------------------------

TEST(BindSocket, AppliesTheSpecBeforeListening) {
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    SocketSpec spec = serviceSpec(dir.path() + "/identity.sock");
    auto fd = bindSocket(spec);
    ASSERT_TRUE(fd.has_value()) << fd.error().message();

    expectOptionsOf(fd->get(), spec);
    auto info = inspectSocket(fd->get());
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(info->listening);
    EXPECT_EQ(info->type, SOCK_STREAM);
    EXPECT_EQ(info->address, spec.address);

    struct stat st {};
    ASSERT_EQ(::stat(spec.address.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_TRUE(::fcntl(fd->get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
}

TEST(BindSocket, AppliesAnotherSpecToo) {
    // The opposite of each option, so that a bindSocket() that ignored the spec fails one of the two tests.
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/fds.sock");
    spec.passCredentials = false;
    spec.passPidfd = false;
    spec.acceptFileDescriptors = true;
    spec.mode = 0660;
    auto fd = bindSocket(spec);
    ASSERT_TRUE(fd.has_value()) << fd.error().message();
    expectOptionsOf(fd->get(), spec);
    struct stat st {};
    ASSERT_EQ(::stat(spec.address.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST(BindSocket, BindsAnAbstractSeqPacketSocket) {
    SocketSpec spec = serviceSpec(test::uniqueAbstractAddress("bind"), SocketType::SeqPacket);
    auto fd = bindSocket(spec);
    ASSERT_TRUE(fd.has_value()) << fd.error().message();
    auto info = inspectSocket(fd->get());
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->type, SOCK_SEQPACKET);
    EXPECT_TRUE(info->listening);
    EXPECT_EQ(info->address, spec.address);
    expectOptionsOf(fd->get(), spec);
}

TEST(BindSocket, ReplacesAStaleSocketFile) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/stale.sock");
    {
        auto first = bindSocket(spec);
        ASSERT_TRUE(first.has_value());
    }
    struct stat st {};
    ASSERT_EQ(::stat(spec.address.c_str(), &st), 0) << "the closed listener leaves its file behind";
    auto second = bindSocket(spec);
    ASSERT_TRUE(second.has_value()) << second.error().message();
    UniqueFd client = test::connectTo(SOCK_STREAM, spec.address);
    EXPECT_TRUE(client) << "the new listener serves the path";
}

TEST(BindSocket, RefusesAPathAnotherListenerStillServes) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/busy.sock");
    auto first = bindSocket(spec);
    ASSERT_TRUE(first.has_value());
    auto second = bindSocket(spec);
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error().code(), EADDRINUSE);
    EXPECT_EQ(second.error().message(), "Failed to bind '" + spec.address + "': Address already in use");
    // The first listener keeps its path.
    UniqueFd client = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(client);
    UniqueFd accepted(::accept4(first->get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    EXPECT_TRUE(accepted);
}

TEST(BindSocket, DoesNotReplaceAFileThatIsNotASocket) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/file");
    std::ofstream(spec.address) << "data";
    auto fd = bindSocket(spec);
    ASSERT_FALSE(fd.has_value());
    EXPECT_EQ(fd.error().code(), EEXIST);
    EXPECT_THAT(fd.error().message(), HasSubstr("Failed to bind '" + spec.address + "'"));
    struct stat st {};
    ASSERT_EQ(::stat(spec.address.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(BindSocket, FailsClearlyWhenTheDirectoryIsMissing) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/missing/x.sock");
    auto fd = bindSocket(spec);
    ASSERT_FALSE(fd.has_value());
    EXPECT_EQ(fd.error().code(), ENOENT);
    EXPECT_THAT(fd.error().message(), HasSubstr("Failed to bind '" + spec.address + "'"));
    EXPECT_THAT(fd.error().message(), HasSubstr("'" + dir.path() + "/missing' must exist"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/missing"));
}

TEST(BindSocket, RejectsAnAddressThatIsNeitherAPathNorAbstract) {
    for (std::string address : {"relative.sock", "", "@"}) {
        auto fd = bindSocket(serviceSpec(address));
        ASSERT_FALSE(fd.has_value()) << address;
        EXPECT_EQ(fd.error().code(), EINVAL) << address;
    }
    auto tooLong = bindSocket(serviceSpec("/" + std::string(200, 'x')));
    ASSERT_FALSE(tooLong.has_value());
    EXPECT_EQ(tooLong.error().code(), ENAMETOOLONG);
}

// --- accepted connections
// -----------------------------------------------------------------------------------

TEST(AcceptedConnection, InheritsTheListenersOptionsWhenItConnectsAfterThem) {
    if (!test::kernelAtLeast(6, 16))
        GTEST_SKIP() << inheritanceSkip;
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/inherit.sock");
    auto listener = bindSocket(spec);
    ASSERT_TRUE(listener.has_value());

    UniqueFd first = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(first);
    UniqueFd raw(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(raw);
    expectOptionsOf(raw.get(), spec);

    // Nothing to repair and nothing to refuse, even under the strictest policy.
    UniqueFd second = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(second);
    ConnectionCounters counters;
    auto accepted = acceptConnection(listener->get(), spec, AcceptedPolicy::Refuse, &counters);
    ASSERT_TRUE(accepted.has_value()) << accepted.error().message();
    expectOptionsOf(accepted->get(), spec);
    EXPECT_EQ(counters.repairedConnections.load(), 0u);
    EXPECT_EQ(counters.refusedConnections.load(), 0u);
}

// The premise of the per-connection check: a client that connects before the listener's options are set (as
// systemd sets them, after listen()) gets a socket with the kernel's defaults.
TEST(AcceptedConnection, AClientThatConnectedInTheGapCarriesTheKernelDefaults) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/gap.sock");
    UniqueFd listener = test::boundSocket(SOCK_STREAM, spec.address);
    ASSERT_TRUE(listener);
    UniqueFd client = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(client);
    ASSERT_TRUE(applyOptions(listener.get(), spec).has_value());

    UniqueFd raw(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(raw);
    auto options = readAppliedOptions(raw.get());
    ASSERT_TRUE(options.has_value());
    EXPECT_FALSE(options->passCredentials);
    EXPECT_FALSE(options->passPidfd);
    EXPECT_NE(options->acceptFileDescriptors, std::optional(false)); // on, or a kernel without SO_PASSRIGHTS
}

TEST(AcceptedConnection, RepairSetsTheOptionsOnAClientThatConnectedInTheGap) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/repair.sock");
    UniqueFd listener = test::boundSocket(SOCK_STREAM, spec.address);
    ASSERT_TRUE(listener);
    UniqueFd gapClient = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(gapClient);
    ASSERT_TRUE(applyOptions(listener.get(), spec).has_value());

    ConnectionCounters counters;
    auto accepted = acceptConnection(listener.get(), spec, AcceptedPolicy::Repair, &counters);
    ASSERT_TRUE(accepted.has_value()) << accepted.error().message();
    expectOptionsOf(accepted->get(), spec);
    EXPECT_EQ(counters.repairedConnections.load(), 1u);
    EXPECT_EQ(counters.refusedConnections.load(), 0u);
    EXPECT_TRUE(::fcntl(accepted->get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(accepted->get(), F_GETFD) & FD_CLOEXEC);

    // The repaired connection works, and its messages now carry the client's pidfd.
    ASSERT_EQ(sendWithFds(gapClient.get(), "hello", {}), 0);
    std::array<std::byte, 64> buffer{};
    auto message = receiveMessage(accepted->get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(message.has_value()) << message.error().message();
    EXPECT_EQ(message->size, 5u);
    EXPECT_TRUE(message->pidfd);

    if (test::kernelAtLeast(6, 16)) {
        UniqueFd later = test::connectTo(SOCK_STREAM, spec.address);
        ASSERT_TRUE(later);
        auto inherited = acceptConnection(listener.get(), spec, AcceptedPolicy::Repair, &counters);
        ASSERT_TRUE(inherited.has_value());
        EXPECT_EQ(counters.repairedConnections.load(), 1u) << "a client after the options needs no repair";
    }
}

TEST(AcceptedConnection, RefuseClosesAClientThatConnectedInTheGap) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/refuse.sock");
    UniqueFd listener = test::boundSocket(SOCK_STREAM, spec.address);
    ASSERT_TRUE(listener);
    UniqueFd gapClient = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(gapClient);
    ASSERT_TRUE(applyOptions(listener.get(), spec).has_value());

    size_t before = countOpenFds();
    ConnectionCounters counters;
    auto refused = acceptConnection(listener.get(), spec, AcceptedPolicy::Refuse, &counters);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code(), EPROTO);
    EXPECT_THAT(refused.error().message(), HasSubstr("Refused a connection on socket 'identity'"));
    EXPECT_THAT(refused.error().message(), HasSubstr("SO_PASSPIDFD is off"));
    EXPECT_EQ(counters.refusedConnections.load(), 1u);
    EXPECT_EQ(counters.repairedConnections.load(), 0u);
    EXPECT_EQ(test::openFdsSoon(before), before) << "the refused connection is closed";
    EXPECT_TRUE(sawConnectionClosed(gapClient.get()));

    if (test::kernelAtLeast(6, 16)) {
        UniqueFd later = test::connectTo(SOCK_STREAM, spec.address);
        ASSERT_TRUE(later);
        auto accepted = acceptConnection(listener.get(), spec, AcceptedPolicy::Refuse, &counters);
        ASSERT_TRUE(accepted.has_value()) << accepted.error().message();
        EXPECT_EQ(counters.refusedConnections.load(), 1u);
    }
}

TEST(AcceptedConnection, ReturnsEagainWhenNoClientWaits) {
    SocketSpec spec = serviceSpec(test::uniqueAbstractAddress("empty"));
    auto listener = bindSocket(spec);
    ASSERT_TRUE(listener.has_value());
    auto accepted = acceptConnection(listener->get(), spec, AcceptedPolicy::Repair);
    ASSERT_FALSE(accepted.has_value());
    EXPECT_EQ(accepted.error().code(), EAGAIN);
}

TEST(AcceptedConnection, ClosesFdsAHostileClientSentInTheGapAndStillServesTheNextClient) {
    TempDir dir;
    SocketSpec spec = serviceSpec(dir.path() + "/hostile.sock");
    UniqueFd listener = test::boundSocket(SOCK_STREAM, spec.address);
    ASSERT_TRUE(listener);

    // In the gap, SO_PASSRIGHTS is still the kernel's default (on): the hostile client's fds get queued.
    UniqueFd hostile = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(hostile);
    std::vector<UniqueFd> files;
    std::vector<int> raw;
    for (int i = 0; i < 3; ++i) {
        files.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        raw.push_back(files.back().get());
    }
    ASSERT_EQ(sendWithFds(hostile.get(), "take these", raw), 0);
    files.clear(); // only the queued copies remain

    ASSERT_TRUE(applyOptions(listener.get(), spec).has_value());
    UniqueFd polite = test::connectTo(SOCK_STREAM, spec.address);
    ASSERT_TRUE(polite);
    ASSERT_EQ(sendWithFds(polite.get(), "ping", {}), 0);

    ConnectionCounters counters;
    auto hostileConnection = acceptConnection(listener.get(), spec, AcceptedPolicy::Repair, &counters);
    ASSERT_TRUE(hostileConnection.has_value()) << hostileConnection.error().message();
    EXPECT_EQ(counters.repairedConnections.load(), 1u);

    size_t before = countOpenFds();
    size_t closed = 0;
    ReceiveOptions options;
    options.acceptFds = spec.acceptFileDescriptors;
    EXPECT_EQ(receiveText(hostileConnection->get(), options, &counters, &closed), "take these");
    EXPECT_EQ(closed, 3u);
    EXPECT_EQ(counters.unwantedFdsClosed.load(), 3u);
    EXPECT_EQ(test::openFdsSoon(before), before) << "the unwanted fds did not stay open";

    // Repaired: the kernel now refuses the hostile client's fds at sendmsg().
    std::vector<UniqueFd> more;
    more.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    EXPECT_EQ(sendWithFds(hostile.get(), "again", {more[0].get()}), EPERM);

    auto politeConnection = acceptConnection(listener.get(), spec, AcceptedPolicy::Repair, &counters);
    ASSERT_TRUE(politeConnection.has_value()) << politeConnection.error().message();
    EXPECT_EQ(receiveText(politeConnection->get(), options, &counters, nullptr), "ping");
    ASSERT_EQ(::send(politeConnection->get(), "pong", 4, MSG_NOSIGNAL), 4);
    char reply[8] = {};
    pollfd p{.fd = polite.get(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    ASSERT_EQ(::recv(polite.get(), reply, sizeof(reply), 0), 4);
    EXPECT_EQ(std::string_view(reply, 4), "pong");
    EXPECT_EQ(counters.unwantedFdsClosed.load(), 3u);
}

} // namespace
} // namespace svckit
