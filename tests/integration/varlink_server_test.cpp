// The varlink server over real AF_UNIX sockets: the server's EventLoop runs in its own thread, clients are
// plain blocking sockets in the test thread that write raw frames and read NUL-terminated replies
// (varlink_test_support.hpp).
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

TEST(VarlinkServer, EchoesARoundTrip) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(echo("hello")));
    Reply reply = parse(client.receive());
    EXPECT_EQ(reply.text(), "hello");
    EXPECT_FALSE(reply.root()["error"].exists());
    EXPECT_FALSE(reply.root()["continues"].exists());
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.calls, 1u);
    EXPECT_EQ(counters.connectionsAccepted, 1u);
}

TEST(VarlinkServer, TreatsAbsentNullAndEmptyParametersAlike) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo"})"));
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":null})"));
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":{}})"));
    for (int i = 0; i < 3; ++i) {
        Reply reply = parse(client.receive());
        EXPECT_EQ(reply.error(), "org.varlink.service.InvalidParameter");
        EXPECT_EQ(reply.root()["parameters"]["parameter"].string(), "text");
    }
}

TEST(VarlinkServer, AnswersPipelinedCallsInOrderEvenWhenAnEarlierOneAnswersLater) {
    TestServer server;
    Client client(server.path());
    std::string batch =
        std::string(R"({"method":"org.example.test.Later","parameters":{"text":"first","ms":150}})") + '\0' +
        echo("second") + '\0' +
        R"({"method":"org.example.test.Later","parameters":{"text":"third","ms":10}})" + '\0' +
        echo("fourth") + '\0';
    ASSERT_TRUE(client.sendRaw(batch));
    EXPECT_EQ(parse(client.receive()).text(), "first");
    EXPECT_EQ(parse(client.receive()).text(), "second");
    EXPECT_EQ(parse(client.receive()).text(), "third");
    EXPECT_EQ(parse(client.receive()).text(), "fourth");
}

TEST(VarlinkServer, SendsNoReplyToAOnewayCall) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Notify","oneway":true})"));
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":{"text":"x"},"oneway":true})"));
    ASSERT_TRUE(client.call(echo("after")));
    EXPECT_EQ(parse(client.receive()).text(), "after");
    EXPECT_FALSE(client.receive(200ms).has_value());
    server.stop();
    EXPECT_EQ(server.onewayCalls.load(), 1);
}

TEST(VarlinkServer, StreamsRepliesWithContinuesWhenCalledWithMore) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Count","parameters":{"n":3},"more":true})"));
    for (int i = 0; i < 3; ++i) {
        Reply reply = parse(client.receive());
        EXPECT_EQ(reply.root()["parameters"]["i"].int64(), i);
        EXPECT_EQ(reply.root()["continues"].boolean(), true);
    }
    Reply last = parse(client.receive());
    EXPECT_EQ(last.root()["parameters"]["i"].int64(), 3);
    EXPECT_FALSE(last.root()["continues"].exists());
}

TEST(VarlinkServer, RepliesExpectedMoreWhenAStreamingMethodIsCalledWithoutMore) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Count","parameters":{"n":3}})"));
    EXPECT_EQ(parse(client.receive()).error(), "org.varlink.service.ExpectedMore");
}

TEST(VarlinkServer, RepliesMethodNotFoundForUnknownMethodAndUnknownInterface) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Nope"})"));
    ASSERT_TRUE(client.call(R"({"method":"org.example.nothing.Echo"})"));
    Reply method = parse(client.receive());
    EXPECT_EQ(method.error(), "org.varlink.service.MethodNotFound");
    EXPECT_EQ(method.root()["parameters"]["method"].string(), "org.example.test.Nope");
    Reply interface = parse(client.receive());
    EXPECT_EQ(interface.error(), "org.varlink.service.MethodNotFound");
    EXPECT_EQ(interface.root()["parameters"]["method"].string(), "org.example.nothing.Echo");
}

TEST(VarlinkServer, RepliesInvalidParameterFromAHandlerThatChecksItsParameter) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":{"text":42}})"));
    Reply reply = parse(client.receive());
    EXPECT_EQ(reply.error(), "org.varlink.service.InvalidParameter");
    EXPECT_EQ(reply.root()["parameters"]["parameter"].string(), "text");
}

TEST(VarlinkServer, ServesGetInfoAndGetInterfaceDescription) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.varlink.service.GetInfo"})"));
    Reply info = parse(client.receive());
    JsonView p = info.root()["parameters"];
    EXPECT_EQ(p["vendor"].string(), "svckit");
    EXPECT_EQ(p["product"].string(), "test");
    EXPECT_EQ(p["version"].string(), "1");
    EXPECT_EQ(p["url"].string(), "https://example.org");
    std::vector<std::string> interfaces;
    p["interfaces"].forEachElement([&](JsonView e) { interfaces.emplace_back(e.string().value_or("")); });
    // Sorted, and with io.systemd (whose System error the server sends), as sd-varlink lists them.
    EXPECT_EQ(interfaces,
              (std::vector<std::string>{"io.systemd", "org.example.test", "org.varlink.service"}));

    ASSERT_TRUE(client.call(
        R"({"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.example.test"}})"));
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["description"].string(), testDescription);

    ASSERT_TRUE(client.call(
        R"({"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.varlink.service"}})"));
    Reply ownReply = parse(client.receive());
    auto own = ownReply.root()["parameters"]["description"].string();
    ASSERT_TRUE(own.has_value());
    EXPECT_NE(own->find("interface org.varlink.service"), std::string_view::npos);

    ASSERT_TRUE(client.call(
        R"({"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.example.none"}})"));
    Reply missing = parse(client.receive());
    EXPECT_EQ(missing.error(), "org.varlink.service.InterfaceNotFound");
    EXPECT_EQ(missing.root()["parameters"]["interface"].string(), "org.example.none");
}

// Each bad message closes its own connection; a second client is served before and after.
void expectClosesOnlyThatConnection(std::string_view bad, ServerOptions options = {}) {
    TestServer server(std::move(options));
    Client good(server.path());
    Client bad1(server.path());
    ASSERT_TRUE(good.call(echo("before")));
    EXPECT_EQ(parse(good.receive()).text(), "before");
    (void)bad1.sendRaw(bad);
    EXPECT_TRUE(bad1.closedByServer());
    ASSERT_TRUE(good.call(echo("after")));
    EXPECT_EQ(parse(good.receive()).text(), "after");
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.protocolErrors, 1u);
}

TEST(VarlinkServer, ClosesOnlyTheConnectionThatSentMalformedJson) {
    expectClosesOnlyThatConnection(std::string_view("{\"method\":\0", 11));
}

TEST(VarlinkServer, ClosesOnlyTheConnectionThatSentANonObject) {
    expectClosesOnlyThatConnection(std::string_view("[1,2]\0", 6));
}

TEST(VarlinkServer, ClosesOnlyTheConnectionThatSentNoMethodString) {
    expectClosesOnlyThatConnection(std::string_view("{\"method\":7}\0", 13));
}

TEST(VarlinkServer, ClosesOnlyTheConnectionThatSentTwoFlags) {
    std::string twoFlags = R"({"method":"org.example.test.Echo","oneway":true,"more":true})";
    twoFlags.push_back('\0');
    expectClosesOnlyThatConnection(twoFlags);
}

TEST(VarlinkServer, ClosesOnlyTheConnectionThatSentAnOversizedMessage) {
    ServerOptions options;
    options.maxMessageSize = 64 * 1024;
    // No NUL at all: the server must give up once the buffered part passes the cap.
    expectClosesOnlyThatConnection(std::string(200 * 1024, ' '), std::move(options));
}

TEST(VarlinkServer, AcceptsAMessageJustUnderTheSizeLimit) {
    ServerOptions options;
    options.maxMessageSize = 64 * 1024;
    TestServer server(std::move(options));
    Client client(server.path());
    std::string text(64 * 1024 - 100, 'a');
    ASSERT_TRUE(client.call(echo(text)));
    EXPECT_EQ(parse(client.receive()).text(), text);
}

TEST(VarlinkServer, DefaultsMatchSdVarlink) {
    ServerOptions options;
    EXPECT_EQ(options.maxMessageSize, 16u * 1024 * 1024);
    EXPECT_EQ(options.maxConnections, 4096u);
    EXPECT_EQ(options.maxConnectionsPerUid, 1024u);
    EXPECT_EQ(options.outputSoftLimit, 1024u * 1024);
    EXPECT_EQ(options.outputHardLimit, 64u * 1024 * 1024);
}

TEST(VarlinkServer, AssemblesAMessageWrittenOneByteAtATime) {
    TestServer server;
    Client client(server.path());
    std::string message = echo("split") + '\0';
    for (char c : message) {
        ASSERT_TRUE(client.sendRaw(std::string_view(&c, 1)));
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(parse(client.receive()).text(), "split");
}

TEST(VarlinkServer, AnswersManyMessagesMergedIntoOneWrite) {
    TestServer server;
    Client client(server.path());
    std::string batch;
    for (int i = 0; i < 500; ++i)
        batch += echo(std::to_string(i)) + '\0';
    ASSERT_TRUE(client.sendRaw(batch));
    for (int i = 0; i < 500; ++i)
        ASSERT_EQ(parse(client.receive()).text(), std::to_string(i));
    EXPECT_EQ(server.stop().calls, 500u);
}

TEST(VarlinkServer, AnswersEveryConnectionWhenManyAreReadyAtOnceAndOneOfThemIsClosed) {
    TestServer server;
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 40; ++i)
        clients.push_back(std::make_unique<Client>(server.path()));
    // Several rounds, each written to all connections before any reply is read: the server finds many of them
    // ready in one wake-up, one of which it closes for malformed JSON in the middle of the others.
    constexpr size_t bad = 20;
    for (int round = 0; round < 3; ++round) {
        for (size_t i = 0; i < clients.size(); ++i) {
            if (i == bad && round == 1) {
                ASSERT_TRUE(clients[i]->sendRaw(std::string_view("{\"method\":\0", 11)));
            } else if (i != bad || round == 0) {
                ASSERT_TRUE(clients[i]->call(echo(std::format("c{}r{}", i, round))));
            }
        }
        for (size_t i = 0; i < clients.size(); ++i) {
            if (i == bad && round == 1) {
                EXPECT_TRUE(clients[i]->closedByServer());
            } else if (i != bad || round == 0) {
                EXPECT_EQ(parse(clients[i]->receive()).text(), std::format("c{}r{}", i, round));
            }
        }
    }
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.protocolErrors, 1u);
    EXPECT_EQ(counters.calls, 40u + 39u + 39u);
}

TEST(VarlinkServer, TurnsAHandlerExceptionIntoAnErrorReply) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Throw"})"));
    Reply reply = parse(client.receive());
    EXPECT_EQ(reply.error(), "io.systemd.System");
    EXPECT_EQ(reply.root()["parameters"]["origin"].string(), "linux"); // as sd-varlink 262 sends it
    EXPECT_EQ(reply.root()["parameters"]["errno"].int64(), EIO);
    EXPECT_EQ(reply.root()["parameters"]["errnoName"].string(), "EIO");
    ASSERT_TRUE(client.call(echo("still here")));
    EXPECT_EQ(parse(client.receive()).text(), "still here");
    EXPECT_EQ(server.stop().handlerFailures, 1u);
}

TEST(VarlinkServer, KeepsServingOthersWhileAPeerDoesNotReadItsReplies) {
    ServerOptions options;
    options.outputSoftLimit = 64 * 1024;
    TestServer server(std::move(options));
    Client stuck(server.path());
    int small = 4096;
    ::setsockopt(stuck.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    // 1000 calls of 64 KiB replies: far more than the socket buffers hold; the client never reads.
    std::string batch;
    for (int i = 0; i < 1000; ++i)
        batch += std::string(R"({"method":"org.example.test.Big","parameters":{"size":65536}})") + '\0';
    Client other(server.path());
    ASSERT_TRUE(stuck.sendRaw(batch));
    // Wait until the server has answered some of the stuck peer's calls (calls beyond other's own State
    // calls).
    int64_t asked = 0;
    ASSERT_TRUE(waitFor([&] { return serverState(other).calls > ++asked; }, 10'000ms));
    ASSERT_TRUE(other.call(echo("served")));
    EXPECT_EQ(parse(other.receive(10'000ms)).text(), "served");
    // The server stopped reading the stuck peer's calls rather than answering them all into memory.
    EXPECT_LT(server.stop().calls, 100u);
}

TEST(VarlinkServer, ClosesAPeerWhoseUnreadRepliesPassTheHardLimit) {
    ServerOptions options;
    options.outputSoftLimit = 64 * 1024;
    options.outputHardLimit = 1024 * 1024;
    TestServer server(std::move(options));
    Client other(server.path());
    Client stuck(server.path());
    // One reply larger than the hard limit cannot be held back by not reading. Nothing is read until the
    // server has closed the connection (asked on the other one): a client reading while the server sends
    // would be a reader, not a peer that leaves its replies unread.
    ASSERT_TRUE(stuck.call(R"({"method":"org.example.test.Big","parameters":{"size":4194304}})"));
    EXPECT_TRUE(waitFor([&] { return serverState(other).connections == 1; }, 10'000ms))
        << "the server did not close the connection";
    // What arrives ends in end of stream, never a complete reply; a server that neither sends nor closes
    // (nullopt on timeout) fails too.
    std::optional<std::string> message = stuck.receive(10'000ms);
    EXPECT_FALSE(message.has_value()) << "a reply over the hard limit was sent whole";
    EXPECT_TRUE(stuck.endOfStream()) << "the server did not close the connection";
    ASSERT_TRUE(other.call(echo("ok")));
    EXPECT_EQ(parse(other.receive()).text(), "ok");
    EXPECT_EQ(server.stop().overflowCloses, 1u);
}

// Methods for the default output limits: Blob answers one reply with `size` bytes of text and counts the
// calls it answered; Stream (with more) answers `n` replies of `size` bytes each, all at once.
Extras blobMethods(std::atomic<int>& blobs) {
    return Extras{
        .methods =
            [&blobs](Server&, EventLoop&) {
                return std::vector<Method>{
                    Method{.name = "Blob",
                           .handler =
                               [&blobs](Call& call) {
                                   std::string blob(
                                       static_cast<size_t>(call.parameters()["size"].int64().value_or(0)),
                                       'x');
                                   (void)call.reply([&](JsonWriter& w) { w.field("blob", blob); });
                                   ++blobs;
                               }},
                    Method{
                        .name = "Stream",
                        .handler =
                            [](Call& call) {
                                auto n = call.parameters()["n"].int64().value_or(0);
                                std::string blob(
                                    static_cast<size_t>(call.parameters()["size"].int64().value_or(0)), 'x');
                                for (int64_t i = 0; i < n; ++i)
                                    (void)call.replyContinues([&](JsonWriter& w) { w.field("blob", blob); });
                                (void)call.reply([&](JsonWriter& w) { w.field("end", true); });
                            },
                        .requiresMore = true},
                };
            },
        .setup = {},
        .teardown = {}};
}

// The soft limit as shipped (1 MiB): a peer that does not read its replies is not read from once more than
// 1 MiB of them is unsent; nothing is lost, and once it reads, the server catches up.
TEST(VarlinkServer, StopsReadingAPeerWithMoreThanOneMebibyteOfUnreadRepliesByDefault) {
    std::atomic<int> blobs{0};
    TestServer server({}, false, blobMethods(blobs)); // the default ServerOptions
    Client stuck(server.path());
    Client other(server.path());
    // 40 calls of 250 000-byte replies (10 MB) in one write: all of them reach the server in one read.
    constexpr int calls = 40;
    constexpr size_t size = 250'000;
    std::string batch;
    for (int i = 0; i < calls; ++i)
        batch +=
            std::format(R"({{"method":"org.example.test.Blob","parameters":{{"size":{}}}}})", size) + '\0';
    ASSERT_TRUE(stuck.sendRaw(batch));
    ASSERT_TRUE(waitFor([&] { return blobs.load() >= 1; }, 10'000ms));
    // The server answers other only after its pass over the stuck peer's input (one thread): after these
    // round trips it has answered all it ever will while nobody reads.
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(other.call(echo("served")));
        ASSERT_EQ(parse(other.receive(10'000ms)).text(), "served");
    }
    int answered = blobs.load();
    // Four replies (1 000 112 bytes) stay under 1 MiB, the fifth passes it; the socket's buffer in the kernel
    // takes a few hundred KB more at most. A soft limit of 64 MiB would answer all 40.
    EXPECT_GE(answered, 5) << "held back below 1 MiB of unread replies";
    EXPECT_LE(answered, 10) << "not held back at 1 MiB of unread replies";
    // Held back, not dropped: reading, the peer gets every reply in order, and the connection goes on.
    for (int i = 0; i < calls; ++i) {
        auto reply = stuck.receive(10'000ms);
        ASSERT_TRUE(reply.has_value()) << "reply " << i << (stuck.endOfStream() ? ": closed" : ": timed out");
        ASSERT_EQ(parse(reply).root()["parameters"]["blob"].string()->size(), size) << "reply " << i;
    }
    ASSERT_TRUE(stuck.call(echo("after")));
    EXPECT_EQ(parse(stuck.receive()).text(), "after");
    EXPECT_EQ(blobs.load(), calls);
    EXPECT_EQ(server.stop().overflowCloses, 0u);
}

// The hard limit as shipped (64 MiB): a streaming call whose unread replies come to 62 MiB is kept and read
// to its end; one with 66 MiB is closed.
TEST(VarlinkServer, ClosesAPeerWithMoreThanSixtyFourMebibytesOfUnreadRepliesByDefault) {
    std::atomic<int> blobs{0};
    TestServer server({}, false, blobMethods(blobs)); // the default ServerOptions
    static constexpr size_t mebibyte = 1024 * 1024;
    auto stream = [](int n) {
        return std::format(
            R"({{"method":"org.example.test.Stream","parameters":{{"n":{},"size":{}}},"more":true}})", n,
            mebibyte);
    };
    // Nothing is read until the server has answered the call and checked the limit (seen from another
    // connection): a client reading while the server sends would be a reader, not a peer that does not read.
    Client watcher(server.path());
    int64_t stateCalls = 0;
    auto state = [&] {
        ++stateCalls;
        return serverState(watcher);
    };
    auto streamCalls = [&] { return state().calls - stateCalls; };
    {
        Client under(server.path());
        ASSERT_TRUE(under.call(stream(62)));
        ASSERT_TRUE(waitFor([&] { return streamCalls() == 1; }, 10'000ms));
        EXPECT_EQ(state().connections, 2) << "closed with 62 MiB of unread replies";
        for (int i = 0; i < 62; ++i) {
            auto reply = under.receive(10'000ms);
            ASSERT_TRUE(reply.has_value())
                << "reply " << i << (under.endOfStream() ? ": closed" : ": timed out");
            Reply parsed = parse(reply);
            ASSERT_EQ(parsed.root()["parameters"]["blob"].string()->size(), mebibyte) << "reply " << i;
            ASSERT_EQ(parsed.root()["continues"].boolean(), true) << "reply " << i;
        }
        EXPECT_EQ(parse(under.receive()).root()["parameters"]["end"].boolean(), true);
    }
    Client over(server.path());
    ASSERT_TRUE(over.call(stream(66)));
    ASSERT_TRUE(waitFor([&] { return streamCalls() == 2; }, 10'000ms));
    // Closed (and `under`, which left, seen gone): only the watcher is left.
    EXPECT_TRUE(waitFor([&] { return state().connections == 1; }, 10'000ms))
        << "not closed past 64 MiB of unread replies";
    // What arrives (what the kernel took before the close) is no complete reply, then end of stream.
    auto message = over.receive(10'000ms);
    EXPECT_FALSE(message.has_value()) << "a reply arrived whole";
    EXPECT_TRUE(over.endOfStream()) << "not closed past 64 MiB of unread replies";
    EXPECT_EQ(server.stop().overflowCloses, 1u);
}

TEST(VarlinkServer, RefusesConnectionsOverThePerUidLimit) {
    ServerOptions options;
    options.maxConnectionsPerUid = 2;
    TestServer server(std::move(options));
    Client first(server.path());
    Client second(server.path());
    ASSERT_TRUE(first.call(echo("1")));
    ASSERT_TRUE(second.call(echo("2")));
    EXPECT_EQ(parse(first.receive()).text(), "1");
    EXPECT_EQ(parse(second.receive()).text(), "2");
    Client third(server.path()); // connect() succeeds (the backlog), then the server closes it
    (void)third.call(echo("3"));
    EXPECT_TRUE(third.closedByServer());
    // A slot frees up when one of the others leaves: once the server has seen the close (asked on the
    // connection that stays), a new client is served.
    { Client gone = std::move(first); }
    EXPECT_TRUE(waitFor([&] { return serverState(second).connections == 1; }, 10'000ms))
        << "the server never saw the first client leave";
    Client fourth(server.path());
    ASSERT_TRUE(fourth.call(echo("4")));
    auto reply = fourth.receive();
    ASSERT_TRUE(reply.has_value()) << "the freed slot was not given to a new client";
    EXPECT_EQ(parse(reply).text(), "4");
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.connectionsRefused, 1u);
    EXPECT_EQ(counters.connectionsAccepted, 3u);
}

// Hold defers the call; Release answers every held call, then replies with how many it answered.
Extras holdAndRelease(std::vector<DeferredCall>& held) {
    return Extras{
        .methods =
            [&held](Server&, EventLoop&) {
                return std::vector<Method>{
                    Method{.name = "Hold", .handler = [&held](Call& call) { held.push_back(call.defer()); }},
                    Method{.name = "Release",
                           .handler =
                               [&held](Call& call) {
                                   size_t count = held.size();
                                   for (DeferredCall& d : held)
                                       (void)d.reply([](JsonWriter& w) { w.field("text", "late"); });
                                   held.clear();
                                   (void)call.reply([&](JsonWriter& w) { w.field("released", count); });
                               }},
                };
            },
        .setup = {},
        .teardown = [&held] { held.clear(); }};
}

TEST(VarlinkServer, DropsAReplyWhoseConnectionHasGone) {
    std::vector<DeferredCall> held; // touched on the server's thread only
    TestServer server({}, false, holdAndRelease(held));
    Client other(server.path());
    {
        Client leaving(server.path());
        ASSERT_TRUE(leaving.call(R"({"method":"org.example.test.Hold"})"));
        ASSERT_TRUE(waitFor([&] { return serverState(other).inFlight == 1; }, 10'000ms));
    }
    // The server has seen the close before the deferred call is answered.
    ASSERT_TRUE(waitFor([&] { return serverState(other).connections == 1; }, 10'000ms));
    ASSERT_TRUE(other.call(R"({"method":"org.example.test.Release"})"));
    EXPECT_EQ(parse(other.receive()).root()["parameters"]["released"].int64(), 1);
    ASSERT_TRUE(other.call(echo("fine")));
    EXPECT_EQ(parse(other.receive()).text(), "fine");
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.connectionsClosed, 1u); // the one that left (`other` is still open)
}

// read() that gives up after 5 s (-2) instead of hanging when a test's expectation does not hold.
ssize_t readSoon(int fd, char* data, size_t size) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 5000) <= 0)
        return -2;
    return ::read(fd, data, size);
}

// A pipe's write end passed with a call; returns the read end.
UniqueFd passPipe(Client& client, std::string_view method) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        throw std::runtime_error("pipe2");
    UniqueFd readEnd(fds[0]);
    UniqueFd writeEnd(fds[1]);
    std::string message = std::format(R"({{"method":"org.example.test.{}"}})", method) + '\0';
    if (test::sendWithFds(client.fd(), message, {writeEnd.get()}) != 0)
        throw std::runtime_error("sendmsg");
    return readEnd;
}

TEST(VarlinkServer, HandsFdsToAMethodThatAcceptsThem) {
    TestServer server({}, /*socketAcceptsFds=*/true);
    Client client(server.path());
    UniqueFd readEnd = passPipe(client, "WriteToFds");
    Reply reply = parse(client.receive());
    EXPECT_EQ(reply.root()["parameters"]["count"].int64(), 1);
    char data[2] = {};
    ASSERT_EQ(readSoon(readEnd.get(), data, 2), 2);
    EXPECT_EQ(std::string_view(data, 2), "hi");
    // And the server closed its copy after the call: the pipe reaches end of file.
    EXPECT_EQ(readSoon(readEnd.get(), data, 2), 0);
}

TEST(VarlinkServer, ClosesFdsPassedToAMethodThatDoesNotAcceptThem) {
    TestServer server({}, /*socketAcceptsFds=*/true);
    Client client(server.path());
    UniqueFd readEnd = passPipe(client, "CountFds");
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["count"].int64(), 0);
    char data[2] = {};
    EXPECT_EQ(readSoon(readEnd.get(), data, 2), 0); // no writer is left anywhere
}

TEST(VarlinkServer, ClosesFdsWhenTheSocketDoesNotAcceptThem) {
    TestServer server({}, /*socketAcceptsFds=*/false);
    Client client(server.path());
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    UniqueFd readEnd(fds[0]);
    UniqueFd writeEnd(fds[1]);
    std::string message = std::string(R"({"method":"org.example.test.WriteToFds"})") + '\0';
    int error = test::sendWithFds(client.fd(), message, {writeEnd.get()});
    writeEnd.reset();
    if (error == EPERM) {
        // Linux >= 6.16 refuses SCM_RIGHTS at send time on a socket with SO_PASSRIGHTS off; nothing to close.
        ASSERT_TRUE(client.call(R"({"method":"org.example.test.WriteToFds"})"));
    } else {
        ASSERT_EQ(error, 0);
    }
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["count"].int64(), 0);
    char data[2] = {};
    EXPECT_EQ(readSoon(readEnd.get(), data, 2), 0);
}

} // namespace
} // namespace svckit::varlink
