// SOCK_SEQPACKET and message boundaries. A packet longer than the reader's buffer is cut by the kernel and
// its rest discarded (MSG_TRUNC): receiveMessage() reports it, and the next packet arrives whole and on its
// own. Varlink is a byte stream of NUL-terminated messages, read into whatever room its buffer has: on a
// seqpacket socket a cut packet's head would be joined to the next packet, so the varlink server refuses such
// a socket outright.
#include <svckit/event_loop.hpp>
#include <svckit/message.hpp>
#include <svckit/varlink.hpp>

#include "../unit/activation_test_support.hpp"

#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

using ::testing::HasSubstr;

namespace svckit {
namespace {

std::string textOf(std::span<const std::byte> bytes, size_t size) {
    return std::string(reinterpret_cast<const char*>(bytes.data()), size);
}

TEST(SeqPacketBoundaries, ReportsAnOversizedPacketTruncatedAndKeepsTheNextPacketWhole) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd sender(pair[0]);
    UniqueFd receiver(pair[1]);
    std::string big(100 * 1024, 'a');
    std::string next = "next";
    ASSERT_EQ(test::sendWithFds(sender.get(), big, {}), 0);
    ASSERT_EQ(test::sendWithFds(sender.get(), next, {}), 0);

    std::vector<std::byte> buffer(64 * 1024); // the raw endpoint's buffer size
    auto first = receiveMessage(receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_TRUE(first->truncated);
    EXPECT_EQ(first->size, buffer.size());

    auto second = receiveMessage(receiver.get(), buffer, ReceiveOptions{});
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_FALSE(second->truncated);
    EXPECT_EQ(textOf(buffer, second->size), "next") << "the rest of the cut packet was spliced onto the next";
}

SocketSpec seqPacketSpec(const std::string& address) {
    return SocketSpec{.name = "varlink", .address = address, .type = SocketType::SeqPacket};
}

TEST(SeqPacketBoundaries, VarlinkServerRefusesASeqPacketListenerAndNamesListenStream) {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.has_value());
    auto server = varlink::Server::create(*loop);
    ASSERT_TRUE(server.has_value()) << server.error().message();
    std::string address = test::uniqueAbstractAddress("seqpacket-varlink");
    UniqueFd listener = test::boundSocket(SOCK_SEQPACKET, address);
    ASSERT_TRUE(listener);

    auto listened = server->listen(std::move(listener), seqPacketSpec(address));
    ASSERT_FALSE(listened.has_value()) << "a varlink server accepted a SOCK_SEQPACKET listener";
    EXPECT_EQ(listened.error().code(), EPROTOTYPE);
    EXPECT_THAT(listened.error().message(), HasSubstr("SOCK_SEQPACKET"));
    EXPECT_THAT(listened.error().message(), HasSubstr(std::format("use 'ListenStream={}'", address)));
}

TEST(SeqPacketBoundaries, VarlinkServerRefusesAConnectedSeqPacketSocket) {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.has_value());
    auto server = varlink::Server::create(*loop);
    ASSERT_TRUE(server.has_value()) << server.error().message();
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd peer(pair[1]);
    SocketSpec spec = seqPacketSpec("@unused");
    spec.accept = true;

    auto served = server->serveConnection(UniqueFd(pair[0]), spec);
    ASSERT_FALSE(served.has_value()) << "a varlink server served a SOCK_SEQPACKET connection";
    EXPECT_EQ(served.error().code(), EPROTOTYPE);
}

} // namespace
} // namespace svckit
