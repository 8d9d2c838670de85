// The varlink server under clients that misbehave or push its limits: a connection over the total limit is
// refused while the others keep working; a deferred call dropped without an answer still gets one; a
// connected socket (Accept=yes) is served; and a client that half-writes, floods or never reads never stops
// another client from being served.
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

// One call's round trip: whether it was answered (in time: a generous bound, so that a loaded machine does
// not fail it, while a server that does not serve this client at all does).
bool answers(Client& client, std::string_view text) {
    if (!client.call(echo(text)))
        return false;
    auto reply = client.receive(10'000ms);
    return reply && parse(reply).text() == text;
}

TEST(VarlinkRobustness, RefusesAConnectionOverTheTotalLimitWhileTheOthersWork) {
    ServerOptions options;
    options.maxConnections = 2;
    options.maxConnectionsPerUid = 0; // only the total limit
    TestServer server(options);
    Client first(server.path());
    Client second(server.path());
    EXPECT_TRUE(answers(first, "1"));
    EXPECT_TRUE(answers(second, "2"));
    Client third(server.path()); // connect() succeeds (the backlog), then the server closes it
    (void)third.call(echo("3"));
    EXPECT_TRUE(third.closedByServer());
    EXPECT_TRUE(answers(first, "1 again"));
    EXPECT_TRUE(answers(second, "2 again"));
    { Client gone = std::move(first); }
    // Once the server has seen the close (asked on the connection that stays), a new client is served.
    EXPECT_TRUE(waitFor([&] { return serverState(second).connections == 1; }, 10'000ms))
        << "the server never saw the first client leave";
    Client fourth(server.path());
    EXPECT_TRUE(answers(fourth, "4"));
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.connectionsRefused, 1u);
    EXPECT_EQ(counters.connectionsAccepted, 3u);
}

TEST(VarlinkRobustness, AnswersEcanceledForADeferredCallDroppedWithoutAnAnswer) {
    std::vector<EventSource> timers;
    TestServer server({}, false,
                      Extras{.methods =
                                 [&timers](Server&, EventLoop& loop) {
                                     return std::vector<Method>{Method{
                                         .name = "Drop", .handler = [&timers, &loop](Call& call) {
                                             // The handle lives in a timer that lets it go unanswered.
                                             auto deferred = std::make_shared<DeferredCall>(call.defer());
                                             auto timer = loop.addTimer(
                                                 50ms, [deferred]() mutable { deferred.reset(); });
                                             if (timer)
                                                 timers.push_back(std::move(*timer));
                                         }}};
                                 },
                             .setup = {},
                             .teardown = [&timers] { timers.clear(); }});
    Client client(server.path());
    ASSERT_TRUE(
        client.sendRaw(std::string(R"({"method":"org.example.test.Drop"})") + '\0' + echo("after") + '\0'));
    Reply dropped = parse(client.receive());
    EXPECT_EQ(dropped.error(), "io.systemd.System");
    EXPECT_EQ(dropped.root()["parameters"]["errno"].int64(), ECANCELED);
    EXPECT_EQ(dropped.root()["parameters"]["errnoName"].string(), "ECANCELED");
    EXPECT_EQ(parse(client.receive()).text(), "after"); // still in call order
}

TEST(VarlinkRobustness, AnswersADeferredCallWhoseReplyWriterThrowsAndKeepsTheOrder) {
    std::vector<EventSource> timers;
    std::atomic<int> replyErrno{-1};
    TestServer server(
        {}, false,
        Extras{.methods =
                   [&timers, &replyErrno](Server&, EventLoop& loop) {
                       return std::vector<Method>{
                           Method{.name = "ThrowLater", .handler = [&timers, &replyErrno, &loop](Call& call) {
                                      auto deferred = std::make_shared<DeferredCall>(call.defer());
                                      auto timer = loop.addTimer(1ms, [deferred, &replyErrno] {
                                          try {
                                              auto r = deferred->reply([](JsonWriter&) {
                                                  throw std::runtime_error("writer failed");
                                              });
                                              replyErrno = r ? 0 : r.error().code();
                                          } catch (...) {
                                              replyErrno = -2; // the exception came through
                                          }
                                      });
                                      if (timer)
                                          timers.push_back(std::move(*timer));
                                  }}};
                   },
               .setup = {},
               .teardown = [&timers] { timers.clear(); }});
    Client client(server.path());
    ASSERT_TRUE(client.sendRaw(std::string(R"({"method":"org.example.test.ThrowLater"})") + '\0' +
                               echo("after") + '\0'));
    auto failed = client.receive(10'000ms);
    ASSERT_TRUE(failed) << "the deferred call whose writer threw was never answered";
    EXPECT_EQ(parse(failed).error(), "io.systemd.System");
    EXPECT_EQ(parse(failed).root()["parameters"]["errno"].int64(), EIO);
    EXPECT_EQ(parse(client.receive(10'000ms)).text(), "after"); // still in call order
    EXPECT_EQ(replyErrno.load(), EIO);
}

TEST(VarlinkRobustness, ServesAnAlreadyConnectedSocket) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd clientEnd(pair[0]);
    auto serverEnd = std::make_shared<UniqueFd>(pair[1]);
    std::string served;
    TestServer server({}, false,
                      Extras{.methods = {},
                             .setup =
                                 [serverEnd, &served](Server& s, EventLoop&) {
                                     SocketSpec spec;
                                     spec.name = "connection";
                                     spec.passPidfd = false;
                                     spec.acceptFileDescriptors = false;
                                     auto r = s.serveConnection(std::move(*serverEnd), spec);
                                     served = r ? "" : r.error().message();
                                 },
                             .teardown = {}});
    ASSERT_EQ(served, "");
    Client client(std::move(clientEnd));
    EXPECT_TRUE(answers(client, "over a socketpair"));
    ASSERT_TRUE(client.call(R"({"method":"org.varlink.service.GetInfo"})"));
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["product"].string(), "test");
    // The listening socket serves others alongside it.
    Client other(server.path());
    EXPECT_TRUE(answers(other, "via the listener"));
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.connectionsAccepted, 2u);
}

TEST(VarlinkRobustness, ServesOthersWhileAClientHoldsAHalfWrittenMessage) {
    TestServer server;
    Client half(server.path());
    std::string message = echo("completed later") + '\0';
    ASSERT_TRUE(half.sendRaw(message.substr(0, 20)));
    Client other(server.path());
    for (int i = 0; i < 20; ++i)
        ASSERT_TRUE(answers(other, std::to_string(i)));
    ASSERT_TRUE(half.sendRaw(message.substr(20)));
    EXPECT_EQ(parse(half.receive()).text(), "completed later");
}

TEST(VarlinkRobustness, ServesOthersWhileAClientFloodsCallsWithoutReading) {
    ServerOptions options;
    options.outputSoftLimit = 256 * 1024;
    TestServer server(options);
    Client flood(server.path());
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> sent{0};
    std::atomic<bool> blocked{false};
    std::atomic<bool> watching{false};
    std::atomic<int> attemptsMade{0};
    std::atomic<int> attemptsWatched{0};
    std::atomic<bool> sentWhileWatched{false};
    std::thread flooder([&] {
        std::string batch;
        for (int i = 0; i < 1000; ++i)
            batch += echo("flood") + '\0';
        int flags = ::fcntl(flood.fd(), F_GETFL);
        (void)::fcntl(flood.fd(), F_SETFL, flags | O_NONBLOCK);
        size_t offset = 0;
        while (!stop) {
            ssize_t n = ::send(flood.fd(), batch.data() + offset, batch.size() - offset, MSG_NOSIGNAL);
            ++attemptsMade;
            if (watching) {
                ++attemptsWatched;
                if (n > 0)
                    sentWhileWatched = true;
            }
            if (n > 0) {
                sent += static_cast<uint64_t>(n);
                offset = (offset + static_cast<size_t>(n)) % batch.size();
            } else {
                blocked = true;
                std::this_thread::sleep_for(1ms); // the server stopped reading: the socket buffers are full
            }
        }
    });
    // Until the server holds the flooder back: its socket is full, and the server answers none of its calls
    // while the flooder goes on trying to send (a condition, however long the flood takes to get there).
    Client other(server.path());
    auto heldBack = [&] {
        int64_t before = serverState(other).calls;
        int start = attemptsMade.load();
        if (!waitFor([&] { return attemptsMade.load() >= start + 5; }, 10'000ms))
            return false;
        return blocked.load() && serverState(other).calls == before + 1; // only the State call itself
    };
    bool flooded = waitFor(heldBack, 10'000ms);
    int answered = 0;
    while (answered < 50 && answers(other, std::to_string(answered)))
        ++answered;
    // Held back, the flooder's socket stays full: none of its next sends gets through while the server goes
    // on serving other. A server that kept reading it would make room for them.
    uint64_t sentBefore = sent.load();
    watching = true;
    (void)waitFor([&] { return attemptsWatched.load() >= 20; }, 10'000ms);
    int attempts = attemptsWatched.load();
    stop = true;
    flooder.join();
    EXPECT_TRUE(flooded) << "the server never held the flooder back";
    EXPECT_EQ(answered, 50);
    EXPECT_GE(attempts, 20);
    EXPECT_FALSE(sentWhileWatched.load())
        << "the server read on from a peer past the soft limit: " << sentBefore << " bytes sent before, "
        << sent.load() << " after";
    EXPECT_GT(sent.load(), 0u);
    // The flooder's calls were read only as far as the soft limit on its unread replies allowed (about 9000
    // replies of 30 bytes): unchecked, the server answers hundreds of thousands in that time.
    EXPECT_LT(server.stop().calls, 50000u);
}

TEST(VarlinkRobustness, ServesOthersWhileAClientSendsAnEndlessMessage) {
    ServerOptions options;
    options.maxMessageSize = 1024 * 1024;
    TestServer server(options);
    Client endless(server.path());
    std::atomic<bool> closed{false};
    std::thread writer([&] {
        std::string chunk(64 * 1024, ' ');
        for (int i = 0; i < 64 && endless.sendRaw(chunk); ++i) {
        }
        closed = endless.closedByServer();
    });
    Client other(server.path());
    for (int i = 0; i < 20; ++i)
        ASSERT_TRUE(answers(other, std::to_string(i)));
    writer.join();
    EXPECT_TRUE(closed.load());
    EXPECT_EQ(server.stop().protocolErrors, 1u);
}

TEST(VarlinkRobustness, ClosesAStreamThatIsNeverReadAndServesOthers) {
    ServerOptions options;
    options.outputSoftLimit = 64 * 1024;
    options.outputHardLimit = 1024 * 1024;
    TestServer server(options);
    Client stuck(server.path());
    int small = 4096;
    ::setsockopt(stuck.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    // One call whose replies (about 3 MB) pass the hard limit at once.
    ASSERT_TRUE(stuck.call(R"({"method":"org.example.test.Count","parameters":{"n":100000},"more":true})"));
    Client other(server.path());
    EXPECT_TRUE(answers(other, "served"));
    // Closed when the replies were queued, before anything was read (a client that read them all would wait
    // here in vain): seen from the other connection before the stuck one reads anything.
    EXPECT_TRUE(waitFor([&] { return serverState(other).connections == 1; }, 10'000ms));
    EXPECT_TRUE(stuck.drainUntilClosed());
    EXPECT_EQ(server.stop().overflowCloses, 1u);
}

} // namespace
} // namespace svckit::varlink
