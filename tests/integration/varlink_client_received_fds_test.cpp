// What the varlink clients do with fds a server sends: the blocking Client and the AsyncClient close them on
// receipt unless asked for them (ClientOptions::acceptFds, AsyncClientOptions::acceptFds), and even then take
// at most maxFdsPerReply for one reply: a hostile server that sends fds with every write and never finishes a
// reply cannot fill the client's fd table.
#include <svckit/event_loop.hpp>
#include <svckit/varlink_async_client.hpp>
#include <svckit/varlink_client.hpp>

#include "../unit/activation_test_support.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace svckit::varlink {
namespace {

using namespace std::chrono_literals;

constexpr int hostileWrites = 40;
constexpr int fdsPerWrite = 16;

// The server end of a socketpair, and the client end to adopt.
struct HostileServer {
    UniqueFd clientEnd;
    UniqueFd serverEnd;
    UniqueFd passed; // what it sends, as many copies as it likes

    HostileServer() {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
            clientEnd = UniqueFd(pair[0]);
            serverEnd = UniqueFd(pair[1]);
        }
        passed = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }

    // `writes` writes of one blank (valid JSON whitespace, no NUL), each with `fdsPerWrite` copies of an fd.
    // 40 x 16 = 640 fds in flight stays under the sender's in-flight limit (its RLIMIT_NOFILE).
    void sendBlanksWithFds(int writes) {
        std::vector<int> fds(fdsPerWrite, passed.get());
        for (int i = 0; i < writes; ++i)
            ASSERT_EQ(test::sendWithFds(serverEnd.get(), " ", fds), 0);
    }
    void sendReply(std::vector<int> fds = {}) {
        std::string reply = std::string(R"({"parameters":{}})") + '\0';
        ASSERT_EQ(test::sendWithFds(serverEnd.get(), reply, fds), 0);
    }
};

TEST(VarlinkClientReceivedFds, ClosesEveryFdTheServerSendsWhenNotAskedFor) {
    HostileServer server;
    ASSERT_TRUE(server.clientEnd && server.passed);
    size_t before = test::countOpenFds();
    Client client = Client::adopt(std::move(server.clientEnd));
    server.sendBlanksWithFds(hostileWrites);
    server.sendReply({server.passed.get()});

    auto reply = client.receive(5s);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->fds.size(), 0u) << "the client took fds it never asked for";
    // The client's own socket is the one fd it holds now (the others are closed off this thread).
    EXPECT_EQ(test::openFdsSoon(before), before) << "open fds while the reply is held";
}

TEST(VarlinkClientReceivedFds, RefusesAServerThatSendsMoreFdsForOneReplyThanTheCap) {
    HostileServer server;
    ASSERT_TRUE(server.clientEnd && server.passed);
    size_t before = test::countOpenFds();
    Client client =
        Client::adopt(std::move(server.clientEnd), ClientOptions{.acceptFds = true, .maxFdsPerReply = 16});
    server.sendBlanksWithFds(hostileWrites);

    auto reply = client.receive(5s);
    ASSERT_FALSE(reply) << "a reply with " << reply->fds.size() << " fds was accepted";
    EXPECT_EQ(reply.error().code(), EPROTO) << reply.error().message();
    // The connection is closed too: one fd fewer than before.
    EXPECT_EQ(test::openFdsSoon(before - 1), before - 1);
}

TEST(VarlinkClientReceivedFds, HandsOutTheFdsOfAReplyWhenAskedFor) {
    HostileServer server;
    ASSERT_TRUE(server.clientEnd && server.passed);
    Client client = Client::adopt(std::move(server.clientEnd), ClientOptions{.acceptFds = true});
    server.sendReply({server.passed.get(), server.passed.get()});
    auto reply = client.receive(5s);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->fds.size(), 2u);
}

template <typename Condition>
bool runUntil(EventLoop& loop, Condition&& done, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        if (sd_event_run(loop.get(), 10'000) < 0)
            return false;
    }
    return true;
}

TEST(VarlinkClientReceivedFds, AsyncClientFailsTheCallsOfAServerThatSendsMoreFdsThanTheCap) {
    HostileServer server;
    ASSERT_TRUE(server.clientEnd && server.passed);
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop) << loop.error().message();
    auto client = AsyncClient::adopt(*loop, std::move(server.clientEnd),
                                     AsyncClientOptions{.acceptFds = true, .maxFdsPerReply = 16});
    ASSERT_TRUE(client) << client.error().message();
    std::optional<Result<ReplyMessage>> reply;
    auto call = client->call("org.example.Get", "", [&](Result<ReplyMessage> r) { reply = std::move(r); });
    ASSERT_TRUE(call);
    // Counted once the call is queued: the loop then has every source (and fd) it keeps.
    size_t before = test::countOpenFds();
    server.sendBlanksWithFds(hostileWrites);

    ASSERT_TRUE(runUntil(*loop, [&] { return reply.has_value(); }));
    ASSERT_FALSE(*reply) << "a reply with " << (*reply)->fds.size() << " fds was accepted";
    EXPECT_EQ(reply->error().code(), EPROTO) << reply->error().message();
    EXPECT_FALSE(client->connected());
    EXPECT_EQ(test::openFdsSoon(before - 1), before - 1);
}

} // namespace
} // namespace svckit::varlink
