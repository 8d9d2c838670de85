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
    ASSERT_TRUE(stuck.sendRaw(batch));
    std::this_thread::sleep_for(100ms);
    Client other(server.path());
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(other.call(echo("served")));
    EXPECT_EQ(parse(other.receive(2000ms)).text(), "served");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    // The server stopped reading the stuck peer's calls rather than answering them all into memory.
    EXPECT_LT(server.stop().calls, 100u);
}

TEST(VarlinkServer, ClosesAPeerWhoseUnreadRepliesPassTheHardLimit) {
    ServerOptions options;
    options.outputSoftLimit = 64 * 1024;
    options.outputHardLimit = 1024 * 1024;
    TestServer server(std::move(options));
    Client stuck(server.path());
    // One reply larger than the hard limit cannot be held back by not reading.
    ASSERT_TRUE(stuck.call(R"({"method":"org.example.test.Big","parameters":{"size":4194304}})"));
    std::this_thread::sleep_for(200ms);
    // Drain: what arrives ends in end-of-stream, never a complete reply.
    std::optional<std::string> message = stuck.receive(3000ms);
    EXPECT_FALSE(message.has_value());
    Client other(server.path());
    ASSERT_TRUE(other.call(echo("ok")));
    EXPECT_EQ(parse(other.receive()).text(), "ok");
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
    // A slot frees up when one of the others leaves.
    { Client gone = std::move(first); }
    std::this_thread::sleep_for(100ms);
    Client fourth(server.path());
    ASSERT_TRUE(fourth.call(echo("4")));
    EXPECT_EQ(parse(fourth.receive()).text(), "4");
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.connectionsRefused, 1u);
    EXPECT_EQ(counters.connectionsAccepted, 3u);
}

TEST(VarlinkServer, DropsAReplyWhoseConnectionHasGone) {
    TestServer server;
    {
        Client leaving(server.path());
        ASSERT_TRUE(
            leaving.call(R"({"method":"org.example.test.Later","parameters":{"text":"late","ms":100}})"));
        std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(200ms); // the deferred reply fires after its connection closed
    Client other(server.path());
    ASSERT_TRUE(other.call(echo("fine")));
    EXPECT_EQ(parse(other.receive()).text(), "fine");
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.connectionsClosed, 1u);
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
