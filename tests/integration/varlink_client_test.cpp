// The blocking varlink client against svckit's own varlink::Server in a thread, over bound sockets and a
// socketpair — against a raw peer for what the server cannot do (send fds, send garbage) — and against the
// two servers of org.example.bench, svckit's (the bench example) and sd-varlink's (the reference server).
#include <svckit/varlink_client.hpp>

#include "../unit/activation_test_support.hpp"
#include "server_process.hpp"
#include "varlink_server_thread.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <format>
#include <memory>
#include <string>
#include <vector>

namespace svckit::varlink {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::VarlinkServerThread;

struct Counters {
    std::atomic<int> notified{0};
};

// org.example.client: Echo, Count (requires more), Later (answers after `ms` from a timer), Fail (an error
// with parameters), Notify (for oneway calls), WriteToFds (accepts fds, writes "hi" to each).
std::string addTestInterface(EventLoop& loop, Server& server, std::shared_ptr<Counters> counters) {
    auto timers = std::make_shared<std::vector<EventSource>>();
    auto added = server.addInterface(Interface{
        .name = "org.example.client",
        .description = "interface org.example.client\n",
        .methods =
            {
                Method{.name = "Echo",
                       .handler =
                           [](Call& call) {
                               auto text = call.parameters()["text"].string();
                               if (!text) {
                                   (void)call.invalidParameter("text");
                                   return;
                               }
                               (void)call.reply([&](JsonWriter& w) { w.field("text", *text); });
                           }},
                Method{.name = "Count",
                       .handler =
                           [](Call& call) {
                               int64_t n = call.parameters()["n"].int64().value_or(0);
                               for (int64_t i = 0; i + 1 < n; ++i)
                                   (void)call.replyContinues([&](JsonWriter& w) { w.field("i", i); });
                               (void)call.reply([&](JsonWriter& w) { w.field("i", n - 1); });
                           },
                       .requiresMore = true},
                Method{.name = "Later",
                       .handler =
                           [&loop, timers](Call& call) {
                               auto ms = call.parameters()["ms"].int64().value_or(10);
                               auto deferred = std::make_shared<DeferredCall>(call.defer());
                               auto timer = loop.addTimer(std::chrono::milliseconds(ms), [deferred] {
                                   (void)deferred->reply([](JsonWriter& w) { w.field("late", true); });
                               });
                               if (timer)
                                   timers->push_back(std::move(*timer));
                           }},
                Method{.name = "Fail",
                       .handler =
                           [](Call& call) {
                               (void)call.error("org.example.client.Failed", [](JsonWriter& w) {
                                   w.field("reason", "asked to");
                                   w.field("code", 7);
                               });
                           }},
                Method{.name = "Notify", .handler = [counters](Call&) { ++counters->notified; }},
                Method{.name = "WriteToFds",
                       .handler =
                           [](Call& call) {
                               for (UniqueFd& fd : call.fds())
                                   (void)!::write(fd.get(), "hi", 2);
                               (void)call.reply([&](JsonWriter& w) { w.field("count", call.fds().size()); });
                           },
                       .acceptsFds = true},
            },
    });
    return added ? "" : added.error().message();
}

// The test interface on a socket at `path`.
class Fixture {
public:
    explicit Fixture(bool acceptFds = false, std::string path = {})
        : path_(path.empty() ? dir_.path() + "/varlink.sock" : std::move(path)),
          counters_(std::make_shared<Counters>()),
          server_([this, acceptFds](EventLoop& loop, Server& server) {
              std::string error = addTestInterface(loop, server, counters_);
              return error.empty() ? VarlinkServerThread::listenOn(server, path_, acceptFds) : error;
          }) {}

    [[nodiscard]] const std::string& path() const { return path_; }
    Client connect() {
        auto client = Client::connect(path_);
        if (!client)
            throw std::runtime_error(client.error().message());
        return std::move(*client);
    }
    VarlinkServerThread& server() { return server_; }
    Counters& counters() { return *counters_; }

private:
    TempDir dir_;
    std::string path_;
    std::shared_ptr<Counters> counters_;
    VarlinkServerThread server_;
};

std::string textOf(const ReplyMessage& reply) {
    return std::string(reply.parameters()["text"].string().value_or("<none>"));
}

TEST(VarlinkClient, CallsAMethodAndReadsItsReply) {
    Fixture fixture;
    Client client = fixture.connect();
    auto reply = client.call("org.example.client.Echo", R"({"text":"hello"})");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(textOf(*reply), "hello");
    EXPECT_FALSE(reply->error());
    EXPECT_FALSE(reply->continues());
    EXPECT_TRUE(reply->fds.empty());
}

TEST(VarlinkClient, ConnectsToUnixPrefixedAndAbstractAddresses) {
    Fixture byPath;
    auto prefixed = Client::connect("unix:" + byPath.path() + ";mode=0600");
    ASSERT_TRUE(prefixed) << prefixed.error().message();
    auto reply = prefixed->call("org.example.client.Echo", R"({"text":"unix:"})");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(textOf(*reply), "unix:");

    std::string abstract = std::format("@svckit-client-test-{}", ::getpid());
    Fixture byName(false, abstract);
    auto named = Client::connect(abstract);
    ASSERT_TRUE(named) << named.error().message();
    reply = named->call("org.example.client.Echo", R"({"text":"abstract"})");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(textOf(*reply), "abstract");
}

TEST(VarlinkClient, RefusesAddressesItCannotReach) {
    EXPECT_EQ(Client::connect("tcp:127.0.0.1:80").error().code(), EINVAL);
    EXPECT_EQ(Client::connect("").error().code(), EINVAL);
    EXPECT_EQ(Client::connect("/" + std::string(200, 'x')).error().code(), ENAMETOOLONG);
    TempDir dir;
    EXPECT_EQ(Client::connect(dir.path() + "/none.sock").error().code(), ENOENT);
}

TEST(VarlinkClient, SendsNoParametersWhenGivenNone) {
    Fixture fixture;
    Client client = fixture.connect();
    auto reply = client.call("org.example.client.Echo", "");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->error(), "org.varlink.service.InvalidParameter");
    EXPECT_EQ(reply->parameters()["parameter"].string(), "text");
}

TEST(VarlinkClient, ReadsStreamedRepliesUntilOneDoesNotContinue) {
    Fixture fixture;
    Client client = fixture.connect();
    ASSERT_TRUE(client.send("org.example.client.Count", R"({"n":3})", CallFlags{.more = true}));
    for (int64_t i = 0; i < 3; ++i) {
        auto reply = client.receive(5s);
        ASSERT_TRUE(reply) << reply.error().message();
        EXPECT_EQ(reply->parameters()["i"].int64(), i);
        EXPECT_EQ(reply->continues(), i < 2);
    }
    // Without `more` the server refuses it.
    auto refused = client.call("org.example.client.Count", R"({"n":3})");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->error(), "org.varlink.service.ExpectedMore");
}

TEST(VarlinkClient, GetsNoReplyToAOnewayCall) {
    Fixture fixture;
    Client client = fixture.connect();
    ASSERT_TRUE(client.send("org.example.client.Notify", "{}", CallFlags{.oneway = true}));
    ASSERT_TRUE(client.send("org.example.client.Notify", "", CallFlags{.oneway = true}));
    // The next reply is the Echo's: nothing came for the oneway calls.
    auto reply = client.call("org.example.client.Echo", R"({"text":"after"})");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(textOf(*reply), "after");
    EXPECT_EQ(fixture.counters().notified.load(), 2);
    EXPECT_EQ(client.receive(100ms).error().code(), ETIMEDOUT);
}

TEST(VarlinkClient, ReturnsErrorRepliesWithTheirParameters) {
    Fixture fixture;
    Client client = fixture.connect();
    auto reply = client.call("org.example.client.Fail", "{}");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->error(), "org.example.client.Failed");
    EXPECT_EQ(reply->parameters()["reason"].string(), "asked to");
    EXPECT_EQ(reply->parameters()["code"].int64(), 7);

    reply = client.call("org.example.client.Nope", "{}");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->error(), "org.varlink.service.MethodNotFound");
    EXPECT_EQ(reply->parameters()["method"].string(), "org.example.client.Nope");
}

TEST(VarlinkClient, KeepsRepliesOfPipelinedCallsForLaterReceives) {
    Fixture fixture;
    Client client = fixture.connect();
    constexpr int calls = 500;
    // A long text makes the replies span several reads; the short ones arrive many per read.
    std::string longText(3000, 'y');
    for (int i = 0; i < calls; ++i) {
        std::string text = i % 7 == 0 ? longText + std::to_string(i) : std::to_string(i);
        ASSERT_TRUE(client.send("org.example.client.Echo", std::format(R"({{"text":"{}"}})", text)));
    }
    for (int i = 0; i < calls; ++i) {
        auto reply = client.receive(5s);
        ASSERT_TRUE(reply) << i << ": " << reply.error().message();
        std::string want = i % 7 == 0 ? longText + std::to_string(i) : std::to_string(i);
        ASSERT_EQ(textOf(*reply), want);
    }
}

TEST(VarlinkClient, TimesOutAndStillGetsTheReplyLater) {
    Fixture fixture;
    Client client = fixture.connect();
    ASSERT_TRUE(client.send("org.example.client.Later", R"({"ms":300})"));
    auto early = client.receive(20ms);
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().code(), ETIMEDOUT);
    auto reply = client.receive(5s);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->parameters()["late"].boolean(), true);
}

TEST(VarlinkClient, PassesFdsToAMethodThatAcceptsThem) {
    Fixture fixture(/*acceptFds=*/true);
    Client client = fixture.connect();
    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]);
    UniqueFd writeEnd(pipeFds[1]);
    int fds[] = {writeEnd.get()};
    auto reply = client.call("org.example.client.WriteToFds", "{}", fds);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->parameters()["count"].int64(), 1);
    writeEnd.reset();
    char buffer[8] = {};
    EXPECT_EQ(::read(readEnd.get(), buffer, sizeof(buffer)), 2);
    EXPECT_STREQ(buffer, "hi");
}

TEST(VarlinkClient, WorksOnASocketpairServedAsAConnection) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd ours(pair[0]);
    auto theirs = std::make_shared<UniqueFd>(pair[1]);
    auto counters = std::make_shared<Counters>();
    VarlinkServerThread server([&, theirs](EventLoop& loop, Server& s) {
        std::string error = addTestInterface(loop, s, counters);
        if (!error.empty())
            return error;
        SocketSpec spec;
        spec.name = "varlink";
        spec.accept = true;
        spec.passPidfd = false;
        spec.acceptFileDescriptors = false;
        auto served = s.serveConnection(std::move(*theirs), spec);
        return served ? std::string() : served.error().message();
    });
    Client client = Client::adopt(std::move(ours));
    auto reply = client.call("org.example.client.Echo", R"({"text":"pair"})");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(textOf(*reply), "pair");
}

TEST(VarlinkClient, ReportsTheServerClosingTheConnection) {
    auto fixture = std::make_unique<Fixture>();
    Client client = fixture->connect();
    ASSERT_TRUE(client.call("org.example.client.Echo", R"({"text":"x"})"));
    fixture.reset(); // the server and its connections go
    auto reply = client.receive(5s);
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().code(), ECONNRESET) << reply.error().message();
    // Sending to a closed peer: EPIPE (or ECONNRESET), never SIGPIPE.
    auto sent = client.send("org.example.client.Echo", R"({"text":"x"})");
    ASSERT_FALSE(sent);
    EXPECT_TRUE(sent.error().code() == EPIPE || sent.error().code() == ECONNRESET) << sent.error().message();
}

TEST(VarlinkClient, RefusesCallsItCannotSend) {
    Fixture fixture;
    Client client = fixture.connect();
    EXPECT_EQ(client.send("org.example.client.Echo", "[1]").error().code(), EINVAL);
    EXPECT_EQ(
        client.send("org.example.client.Echo", std::string_view("{\"text\":\"a\0b\"}", 14)).error().code(),
        EINVAL);
    EXPECT_EQ(
        client.send("org.example.client.Echo", "{}", CallFlags{.oneway = true, .more = true}).error().code(),
        EINVAL);
    // Nothing went out: the connection still works.
    auto reply = client.call("org.example.client.Echo", R"({"text":"still"})");
    ASSERT_TRUE(reply);
    EXPECT_EQ(textOf(*reply), "still");
}

// A raw peer on the other end of a socketpair.
struct RawPeer {
    explicit RawPeer(ClientOptions options = {}) {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
            throw std::runtime_error("socketpair");
        client.emplace(Client::adopt(UniqueFd(pair[0]), options));
        peer = UniqueFd(pair[1]);
    }
    void write(std::string_view bytes) const {
        ASSERT_EQ(::send(peer.get(), bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
    }
    std::optional<Client> client;
    UniqueFd peer;
};

TEST(VarlinkClient, HandsOutFdsReceivedWithAReply) {
    RawPeer raw(ClientOptions{.acceptFds = true});
    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]);
    UniqueFd writeEnd(pipeFds[1]);
    // One write brings two replies; the fd came with the first.
    std::string replies =
        std::string(R"({"parameters":{"n":1}})") + '\0' + R"({"parameters":{"n":2}})" + '\0';
    ASSERT_EQ(test::sendWithFds(raw.peer.get(), replies, {readEnd.get()}), 0);
    readEnd.reset();

    auto first = raw.client->receive(5s);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->parameters()["n"].int64(), 1);
    ASSERT_EQ(first->fds.size(), 1u);
    ASSERT_EQ(::write(writeEnd.get(), "ok", 2), 2);
    char buffer[4] = {};
    EXPECT_EQ(::read(first->fds[0].get(), buffer, sizeof(buffer)), 2);
    EXPECT_STREQ(buffer, "ok");
    EXPECT_NE(::fcntl(first->fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);

    auto second = raw.client->receive(5s);
    ASSERT_TRUE(second) << second.error().message();
    EXPECT_EQ(second->parameters()["n"].int64(), 2);
    EXPECT_TRUE(second->fds.empty());
}

TEST(VarlinkClient, ReassemblesAReplySplitAcrossWrites) {
    RawPeer raw;
    raw.write(R"({"parame)");
    EXPECT_EQ(raw.client->receive(50ms).error().code(), ETIMEDOUT);
    raw.write(std::string(R"(ters":{"text":"joined"}})") + '\0');
    auto reply = raw.client->receive(5s);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(textOf(*reply), "joined");
}

TEST(VarlinkClient, RefusesMalformedRepliesAndATruncatedOne) {
    RawPeer raw;
    raw.write(std::string("{not json") + '\0' + "[1,2]" + '\0' + R"({"error":5})" + '\0' +
              R"({"parameters":{"ok":true}})" + '\0' + R"({"parameters":)");
    EXPECT_EQ(raw.client->receive(5s).error().code(), EBADMSG);
    EXPECT_EQ(raw.client->receive(5s).error().code(), EBADMSG);
    EXPECT_EQ(raw.client->receive(5s).error().code(), EBADMSG);
    // A bad reply costs only itself.
    auto good = raw.client->receive(5s);
    ASSERT_TRUE(good) << good.error().message();
    EXPECT_EQ(good->parameters()["ok"].boolean(), true);
    raw.peer.reset();
    auto truncated = raw.client->receive(5s);
    ASSERT_FALSE(truncated);
    EXPECT_EQ(truncated.error().code(), ECONNRESET);
    EXPECT_NE(truncated.error().message().find("middle"), std::string::npos) << truncated.error().message();
}

// The same calls against svckit's server and sd-varlink's, each in a process of its own.
TEST(VarlinkClient, CallsSvckitsAndSdVarlinksServersAlike) {
    for (const char* variable : {"SVCKIT_BENCH_EXAMPLE", "SVCKIT_REFERENCE_SERVER"}) {
        SCOPED_TRACE(variable);
        const char* binary = std::getenv(variable);
        if (!binary || !*binary) {
            std::printf("%s is not set (no C compiler for the sd-varlink server?): that server is skipped\n",
                        variable);
            continue;
        }
        TempDir dir;
        std::string path = dir.path() + "/bench.sock";
        test::ServerProcess server(binary, path);
        auto client = Client::connect(path);
        ASSERT_TRUE(client) << client.error().message();

        auto echo = client->call("org.example.bench.Echo", R"({"text":"both"})");
        ASSERT_TRUE(echo) << echo.error().message();
        EXPECT_EQ(textOf(*echo), "both");
        auto overflow = client->call("org.example.bench.Add", R"({"a":9223372036854775807,"b":1})");
        ASSERT_TRUE(overflow);
        EXPECT_EQ(overflow->error(), "org.example.bench.Overflow");

        // oneway, then a `more` call and pipelined calls: the replies come in call order
        ASSERT_TRUE(client->send("org.example.bench.Echo", R"({"text":"none"})", CallFlags{.oneway = true}));
        ASSERT_TRUE(client->send("org.example.bench.Count", R"({"n":3})", CallFlags{.more = true}));
        for (int i = 0; i < 5; ++i)
            ASSERT_TRUE(client->send("org.example.bench.Add", std::format(R"({{"a":{},"b":1}})", i)));
        for (int64_t i = 0; i < 3; ++i) {
            auto count = client->receive(5s);
            ASSERT_TRUE(count) << count.error().message();
            EXPECT_EQ(count->parameters()["i"].int64(), i);
            EXPECT_EQ(count->continues(), i < 2);
        }
        for (int64_t i = 0; i < 5; ++i) {
            auto sum = client->receive(5s);
            ASSERT_TRUE(sum) << sum.error().message();
            EXPECT_EQ(sum->parameters()["sum"].int64(), i + 1);
        }

        server.pause();
        ASSERT_TRUE(client->send("org.example.bench.Echo", R"({"text":"late"})"));
        EXPECT_EQ(client->receive(100ms).error().code(), ETIMEDOUT);
        server.killNow();
        EXPECT_EQ(client->receive(5s).error().code(), ECONNRESET);
    }
}

} // namespace
} // namespace svckit::varlink
