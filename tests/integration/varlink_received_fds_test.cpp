// What the varlink engine does with the file descriptors a caller passes on a socket that accepts them
// (AcceptFileDescriptors=yes): an fd whose close blocks does not stall the loop, and a connection that piles
// up fds without ever completing a message is closed before it fills the fd table (docs/security.md).
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

// A loopback TCP connection whose close() blocks: the listener never accepts nor reads, the socket's send
// queue is full, and SO_LINGER {1, 8 s} makes close() wait up to 8 s for that queue to drain. Closing the
// listener (the destructor) resets the connection, which ends any close() still waiting on it.
struct LingeringSocket {
    UniqueFd listener;
    UniqueFd socket;

    static LingeringSocket make() {
        LingeringSocket s;
        s.listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof(address);
        if (::bind(s.listener.get(), reinterpret_cast<sockaddr*>(&address), length) < 0 ||
            ::listen(s.listener.get(), 1) < 0 ||
            ::getsockname(s.listener.get(), reinterpret_cast<sockaddr*>(&address), &length) < 0)
            throw std::runtime_error(std::format("TCP listener: {}", std::strerror(errno)));
        s.socket = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(s.socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0)
            throw std::runtime_error(std::format("TCP connect: {}", std::strerror(errno)));
        int flags = ::fcntl(s.socket.get(), F_GETFL);
        ::fcntl(s.socket.get(), F_SETFL, flags | O_NONBLOCK);
        std::string chunk(64 * 1024, 'x');
        for (;;) {
            ssize_t n = ::send(s.socket.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                break;
            if (n < 0)
                throw std::runtime_error(std::format("TCP send: {}", std::strerror(errno)));
        }
        linger lingering{.l_onoff = 1, .l_linger = 8};
        if (::setsockopt(s.socket.get(), SOL_SOCKET, SO_LINGER, &lingering, sizeof(lingering)) < 0)
            throw std::runtime_error(std::format("SO_LINGER: {}", std::strerror(errno)));
        return s;
    }
};

// Waits (bounded) until the server has read everything this client sent: an AF_UNIX sender's SIOCOUTQ counts
// the bytes the receiver has not read yet.
bool waitUntilRead(int fd, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        int unread = 0;
        if (::ioctl(fd, SIOCOUTQ, &unread) < 0 || unread == 0)
            return true;
        std::this_thread::sleep_for(1ms);
    }
    return false;
}

// Client A passes a lingering socket with a call and drops its own copy, so the server's close() is the last
// one and blocks; client B's call, sent once the server has read A's, is answered well before those 8 s.
// Not a timed performance assertion: 2 s is a bound far above any answer time here and far below the 8 s a
// close on the loop thread takes; it tells "the loop waited for the close" from "it did not".
void expectALingeringCloseDoesNotStallOthers(std::string_view method) {
    TestServer server({}, /*socketAcceptsFds=*/true);
    LingeringSocket lingering = LingeringSocket::make();
    Client a(server.path());
    Client b(server.path());
    std::string message = std::format(R"({{"method":"org.example.test.{}"}})", method) + '\0';
    ASSERT_EQ(test::sendWithFds(a.fd(), message, {lingering.socket.get()}), 0);
    lingering.socket.reset(); // the server holds the last reference: its close() is the one that lingers
    ASSERT_TRUE(waitUntilRead(a.fd()));

    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(b.call(R"({"method":"org.example.test.Echo","parameters":{"text":"b"}})"));
    auto reply = b.receive(20s);
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(reply);
    EXPECT_EQ(parse(reply).text(), "b");
    EXPECT_LT(seconds, 2.0) << "client B waited " << seconds << " s behind the close of A's fd";
    EXPECT_EQ(parse(a.receive(20s)).error(), "");
}

TEST(VarlinkReceivedFds, AnUnwantedFdWhoseCloseBlocksDoesNotStallOtherCallers) {
    expectALingeringCloseDoesNotStallOthers("CountFds"); // a method that takes no fds
}

TEST(VarlinkReceivedFds, AnFdLeftByAHandlerWhoseCloseBlocksDoesNotStallOtherCallers) {
    expectALingeringCloseDoesNotStallOthers("WriteToFds"); // takes fds, leaves them to svckit
}

// A connection that sends 1-byte writes without a NUL, each with 16 copies of one fd, is closed once it holds
// more than maxFdsPerCall of them; the process never holds many more than that, the fds are released, and
// another client is served.
TEST(VarlinkReceivedFds, ClosesAConnectionThatHoardsFdsBeforeItFillsTheFdTable) {
    TestServer server({}, /*socketAcceptsFds=*/true);
    Client other(server.path());
    Client hoarder(server.path());
    UniqueFd passed(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(passed);
    const std::vector<int> copies(16, passed.get());
    // Both connections accepted (with their pidfds) before the count starts.
    for (Client* client : {&other, &hoarder}) {
        ASSERT_TRUE(client->call(R"({"method":"org.example.test.Echo","parameters":{"text":"hi"}})"));
        ASSERT_EQ(parse(client->receive()).text(), "hi");
    }
    size_t baseline = test::countOpenFds();
    size_t most = baseline;
    // Twice the cap: enough to see the fd count stop at the cap rather than grow with every write.
    const size_t writes = 2 * maxFdsPerCall / copies.size() + 1;
    size_t sent = 0;
    for (; sent < writes; ++sent) {
        if (test::sendWithFds(hoarder.fd(), "{", copies) != 0)
            break; // the server closed the connection (EPIPE, ECONNRESET)
        if (!waitUntilRead(hoarder.fd()))
            break; // not read any more: closed, the rest of the queue is dropped
        most = std::max(most, test::countOpenFds());
    }
    size_t grown = most - baseline;
    EXPECT_LE(grown, maxFdsPerCall + copies.size())
        << "the process held " << grown << " more fds after " << sent << " writes of " << copies.size();
    EXPECT_TRUE(hoarder.drainUntilClosed());

    // The hoarded fds are released (asynchronously: a bounded wait).
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (test::countOpenFds() > baseline && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    EXPECT_LE(test::countOpenFds(), baseline);

    ASSERT_TRUE(other.call(R"({"method":"org.example.test.Echo","parameters":{"text":"still here"}})"));
    EXPECT_EQ(parse(other.receive()).text(), "still here");
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.fdLimitCloses, 1u);
}

// Within the cap every fd of a call reaches a method that takes fds, also beyond the 16 a read used to keep.
TEST(VarlinkReceivedFds, HandsEveryFdOfACallUpToTheCap) {
    TestServer server({}, /*socketAcceptsFds=*/true);
    Client client(server.path());
    UniqueFd passed(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(passed);
    std::string message = std::string(R"({"method":"org.example.test.WriteToFds"})") + '\0';
    ASSERT_EQ(test::sendWithFds(client.fd(), message, std::vector<int>(40, passed.get())), 0);
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["count"].int64(), 40);
}

} // namespace
} // namespace svckit::varlink
