// The asynchronous varlink client on an EventLoop, over real sockets: against svckit's server (the bench
// example) and sd-varlink's (bench/varlink/reference_server.c), both serving org.example.bench in a process
// of their own (so that a test can stop or kill them); against a raw peer for what no server does (send fds,
// garbage); and a service whose handler calls another service through the client on its own loop while it
// serves a second client.
#include <svckit/varlink_async_client.hpp>

#include "org.example.bench.varlink.hpp"

#include <svckit/varlink_client.hpp>
#include <svckit/varlink_typed.hpp>

#include "../unit/activation_test_support.hpp"
#include "server_process.hpp"
#include "varlink_server_thread.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <format>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace svckit::varlink {
namespace {

using namespace std::chrono_literals;
namespace bench = org::example::bench;
using test::ServerProcess;
using test::TempDir;
using test::VarlinkServerThread;

// Runs the loop until `done` holds (false when `timeout` passes first).
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

// Runs the loop for `time`, whatever happens.
void runFor(EventLoop& loop, std::chrono::milliseconds time) {
    (void)runUntil(
        loop, [] { return false; }, time);
}

struct ServerKind {
    const char* name;
    const char* binaryVariable; // the environment variable meson sets to the server's path
};

class AsyncClientTest : public ::testing::TestWithParam<ServerKind> {
protected:
    void SetUp() override {
        const char* binary = std::getenv(GetParam().binaryVariable);
        if (!binary || !*binary)
            GTEST_SKIP() << GetParam().binaryVariable << " is not set (the " << GetParam().name
                         << " server was not built: no C compiler?)";
        path_ = dir_.path() + "/bench.sock";
        server_.emplace(binary, path_);
        auto loop = EventLoop::create();
        ASSERT_TRUE(loop) << loop.error().message();
        loop_.emplace(std::move(*loop));
    }

    AsyncClient connect() {
        auto client = AsyncClient::connect(*loop_, path_);
        if (!client)
            throw std::runtime_error(client.error().message());
        return std::move(*client);
    }

    TempDir dir_;
    std::string path_;
    std::optional<ServerProcess> server_;
    std::optional<EventLoop> loop_;
};

std::string textOf(const Result<ReplyMessage>& reply) {
    if (!reply)
        return "transport error: " + reply.error().message();
    if (auto error = reply->error())
        return "error " + std::string(*error);
    return std::string(reply->parameters()["text"].string().value_or("?"));
}

TEST_P(AsyncClientTest, CallGetsItsReply) {
    auto client = connect();
    std::optional<Result<ReplyMessage>> reply;
    auto call = client.call(
        "org.example.bench.Echo", [](JsonWriter& w) { w.field("text", "hello"); },
        [&](Result<ReplyMessage> r) { reply = std::move(r); });
    ASSERT_TRUE(call) << call.error().message();
    EXPECT_TRUE(call->pending());
    ASSERT_TRUE(runUntil(*loop_, [&] { return reply.has_value(); }));
    EXPECT_EQ(textOf(*reply), "hello");
    EXPECT_FALSE(call->pending());
    EXPECT_EQ(client.pendingCalls(), 0u);
}

TEST_P(AsyncClientTest, MethodErrorsAreRepliesNotTransportErrors) {
    auto client = connect();
    std::vector<Result<ReplyMessage>> replies;
    auto record = [&](Result<ReplyMessage> r) { replies.push_back(std::move(r)); };
    auto overflow = client.call("org.example.bench.Add", R"({"a": 9223372036854775807, "b": 1})", record);
    auto missing = client.call("org.example.bench.Nope", "{}", record);
    auto noMore = client.call("org.example.bench.Count", R"({"n": 2})", record);
    ASSERT_TRUE(overflow && missing && noMore);
    ASSERT_TRUE(runUntil(*loop_, [&] { return replies.size() == 3; }));
    for (const auto& reply : replies)
        ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(replies[0]->error(), "org.example.bench.Overflow");
    EXPECT_EQ(replies[1]->error(), "org.varlink.service.MethodNotFound");
    EXPECT_EQ(replies[2]->error(), "org.varlink.service.ExpectedMore");
    EXPECT_TRUE(client.connected()) << "a method error leaves the connection usable";
}

TEST_P(AsyncClientTest, MoreCallGetsEveryReplyInOrder) {
    auto client = connect();
    std::vector<std::pair<int64_t, bool>> replies; // i, continues
    bool failed = false;
    auto call = client.callMore(
        "org.example.bench.Count", [](JsonWriter& w) { w.field("n", 5); },
        [&](Result<ReplyMessage> r) {
            if (!r || r->error()) {
                failed = true;
                return;
            }
            replies.emplace_back(r->parameters()["i"].int64().value_or(-1), r->continues());
        });
    ASSERT_TRUE(call);
    ASSERT_TRUE(runUntil(*loop_, [&] { return failed || (!replies.empty() && !replies.back().second); }));
    ASSERT_FALSE(failed);
    std::vector<std::pair<int64_t, bool>> expected{{0, true}, {1, true}, {2, true}, {3, true}, {4, false}};
    EXPECT_EQ(replies, expected);
    EXPECT_FALSE(call->pending());
}

TEST_P(AsyncClientTest, OnewayCallGetsNoReply) {
    auto client = connect();
    ASSERT_TRUE(client.oneway("org.example.bench.Echo", R"({"text": "nobody listens"})"));
    std::vector<std::string> texts;
    auto call = client.call(
        "org.example.bench.Echo", [](JsonWriter& w) { w.field("text", "after"); },
        [&](Result<ReplyMessage> r) { texts.push_back(textOf(r)); });
    ASSERT_TRUE(call);
    ASSERT_TRUE(runUntil(*loop_, [&] { return !texts.empty(); }));
    runFor(*loop_, 50ms); // a reply to the oneway call would have come by now, and been a protocol error
    EXPECT_EQ(texts, std::vector<std::string>{"after"});
    EXPECT_TRUE(client.connected());
}

TEST_P(AsyncClientTest, PipelinedCallsAreAnsweredInCallOrder) {
    auto client = connect();
    std::vector<std::string> got;
    std::vector<std::string> expected;
    std::vector<PendingCall> calls;
    // All queued before the loop runs: they go out together, and the replies come back in one or a few reads.
    for (int i = 0; i < 100; ++i) {
        if (i % 10 == 5) {
            auto call = client.callMore(
                "org.example.bench.Count", [&](JsonWriter& w) { w.field("n", 2); },
                [&, i](Result<ReplyMessage> r) {
                    got.push_back(r && !r->error() ? std::format("{}:count {}", i,
                                                                 r->parameters()["i"].int64().value_or(-1))
                                                   : std::format("{}:failed", i));
                });
            ASSERT_TRUE(call);
            calls.push_back(std::move(*call));
            expected.push_back(std::format("{}:count 0", i));
            expected.push_back(std::format("{}:count 1", i));
        } else {
            auto call = client.call(
                "org.example.bench.Add",
                [&](JsonWriter& w) {
                    w.field("a", i);
                    w.field("b", 1000);
                },
                [&, i](Result<ReplyMessage> r) {
                    got.push_back(r && !r->error() ? std::format("{}:sum {}", i,
                                                                 r->parameters()["sum"].int64().value_or(-1))
                                                   : std::format("{}:failed", i));
                });
            ASSERT_TRUE(call);
            calls.push_back(std::move(*call));
            expected.push_back(std::format("{}:sum {}", i, i + 1000));
        }
    }
    EXPECT_EQ(client.pendingCalls(), 100u);
    ASSERT_TRUE(runUntil(*loop_, [&] { return client.pendingCalls() == 0; }));
    EXPECT_EQ(got, expected);
}

TEST_P(AsyncClientTest, DestroyingTheHandleCancelsTheCall) {
    auto client = connect();
    std::vector<std::string> texts;
    {
        auto dropped = client.call(
            "org.example.bench.Echo", [](JsonWriter& w) { w.field("text", "dropped"); },
            [&](Result<ReplyMessage> r) { texts.push_back(textOf(r)); });
        ASSERT_TRUE(dropped);
    }
    auto kept = client.call(
        "org.example.bench.Echo", [](JsonWriter& w) { w.field("text", "kept"); },
        [&](Result<ReplyMessage> r) { texts.push_back(textOf(r)); });
    ASSERT_TRUE(kept);
    ASSERT_TRUE(runUntil(*loop_, [&] { return client.pendingCalls() == 0; }));
    EXPECT_EQ(texts, std::vector<std::string>{"kept"})
        << "the reply to the cancelled call was read and dropped";
}

TEST_P(AsyncClientTest, TimeoutFailsTheCallAndClosesTheConnection) {
    auto client = connect();
    server_->pause(); // the server reads nothing and answers nothing
    std::optional<Result<ReplyMessage>> late;
    std::optional<Result<ReplyMessage>> other;
    auto started = std::chrono::steady_clock::now();
    auto call = client.call(
        "org.example.bench.Echo", [](JsonWriter& w) { w.field("text", "late"); },
        [&](Result<ReplyMessage> r) { late = std::move(r); }, CallOptions{.timeout = 100ms});
    auto second = client.call(
        "org.example.bench.Echo", [](JsonWriter& w) { w.field("text", "queued behind it"); },
        [&](Result<ReplyMessage> r) { other = std::move(r); });
    ASSERT_TRUE(call && second);
    ASSERT_TRUE(runUntil(*loop_, [&] { return late && other; }));
    EXPECT_GE(std::chrono::steady_clock::now() - started, 100ms);
    ASSERT_FALSE(*late);
    EXPECT_EQ(late->error().code(), ETIMEDOUT) << late->error().message();
    ASSERT_FALSE(*other);
    EXPECT_EQ(other->error().code(), ECONNABORTED) << other->error().message();
    EXPECT_FALSE(client.connected()) << "replies are ordered: after a timeout the connection is closed";
    auto after = client.call("org.example.bench.Echo", R"({"text": "x"})", [](Result<ReplyMessage>) {});
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error().code(), ENOTCONN);
}

TEST_P(AsyncClientTest, ServerVanishingMidCallFailsEveryPendingCall) {
    auto client = connect();
    server_->pause();
    std::vector<int> codes;
    std::vector<PendingCall> calls;
    for (int i = 0; i < 3; ++i) {
        auto call = client.call("org.example.bench.Echo", R"({"text": "lost"})",
                                [&](Result<ReplyMessage> r) { codes.push_back(r ? 0 : r.error().code()); });
        ASSERT_TRUE(call);
        calls.push_back(std::move(*call));
    }
    runFor(*loop_, 50ms); // the calls are sent, and wait
    EXPECT_TRUE(codes.empty());
    server_->killNow();
    ASSERT_TRUE(runUntil(*loop_, [&] { return codes.size() == 3; }));
    EXPECT_EQ(codes, (std::vector<int>{ECONNRESET, ECONNRESET, ECONNRESET}));
    EXPECT_FALSE(client.connected());
}

TEST_P(AsyncClientTest, TypedClientDecodesOutputsAndErrors) {
    auto connection = connect();
    bench::AsyncClient client(connection);
    std::optional<std::string> echoed;
    std::optional<bool> overflowed;
    std::vector<int64_t> counted;
    bool countDone = false;
    auto echo = client.Echo({.text = "typed"}, [&](varlink::AsyncReply<bench::EchoOut> reply) {
        echoed = reply && *reply ? (*reply)->text : std::string("failed");
    });
    auto add = client.Add({.a = INT64_MAX, .b = 1}, [&](varlink::AsyncReply<bench::AddOut> reply) {
        overflowed = reply && !*reply && bench::Overflow::from(reply->error()).has_value();
    });
    auto count = client.Count({.n = 3}, varlink::more,
                              [&](varlink::AsyncReply<bench::CountOut> reply, bool continues) {
                                  if (reply && *reply)
                                      counted.push_back((*reply)->i);
                                  countDone = !continues;
                              });
    ASSERT_TRUE(client.Echo({.text = "oneway"}, varlink::oneway));
    ASSERT_TRUE(echo && add && count);
    ASSERT_TRUE(runUntil(*loop_, [&] { return echoed && overflowed && countDone; }));
    EXPECT_EQ(*echoed, "typed");
    EXPECT_TRUE(*overflowed);
    EXPECT_EQ(counted, (std::vector<int64_t>{0, 1, 2}));
}

INSTANTIATE_TEST_SUITE_P(Servers, AsyncClientTest,
                         ::testing::Values(ServerKind{"svckit", "SVCKIT_BENCH_EXAMPLE"},
                                           ServerKind{"sdvarlink", "SVCKIT_REFERENCE_SERVER"}),
                         [](const ::testing::TestParamInfo<ServerKind>& info) { return info.param.name; });

// Against a raw peer on a socketpair: what no well-behaved server does.
class RawPeerTest : public ::testing::Test {
protected:
    void SetUp() override {
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        clientEnd_ = UniqueFd(pair[0]);
        peer_ = UniqueFd(pair[1]);
        auto loop = EventLoop::create();
        ASSERT_TRUE(loop);
        loop_.emplace(std::move(*loop));
    }
    // Sends `text` and its NUL from the peer, with `fd` as SCM_RIGHTS when it is >= 0.
    void peerSend(std::string_view text, int fd = -1) {
        std::string message(text);
        message.push_back('\0');
        iovec iov{.iov_base = message.data(), .iov_len = message.size()};
        msghdr header{};
        header.msg_iov = &iov;
        header.msg_iovlen = 1;
        alignas(cmsghdr) std::byte control[CMSG_SPACE(sizeof(int))];
        if (fd >= 0) {
            header.msg_control = control;
            header.msg_controllen = sizeof(control);
            cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
        }
        ASSERT_EQ(::sendmsg(peer_.get(), &header, MSG_NOSIGNAL), static_cast<ssize_t>(message.size()));
    }

    UniqueFd clientEnd_;
    UniqueFd peer_;
    std::optional<EventLoop> loop_;
};

// Whether the write end of a pipe still has a reader anywhere.
bool readerAlive(int writeEnd) {
    return ::write(writeEnd, "x", 1) == 1;
}

TEST_F(RawPeerTest, FdsFromTheServerAreClosedUnlessAskedFor) {
    ::signal(SIGPIPE, SIG_IGN); // the write that finds no reader fails with EPIPE instead
    for (bool accept : {false, true}) {
        SCOPED_TRACE(accept ? "acceptFds" : "default");
        SetUp();
        auto client =
            AsyncClient::adopt(*loop_, std::move(clientEnd_), AsyncClientOptions{.acceptFds = accept});
        ASSERT_TRUE(client);
        std::optional<Result<ReplyMessage>> reply;
        auto call =
            client->call("org.example.Get", "", [&](Result<ReplyMessage> r) { reply = std::move(r); });
        ASSERT_TRUE(call);
        int pipe[2];
        ASSERT_EQ(::pipe2(pipe, O_CLOEXEC | O_NONBLOCK), 0);
        UniqueFd readEnd(pipe[0]), writeEnd(pipe[1]);
        peerSend(R"({"parameters":{}})", readEnd.get());
        readEnd.reset(); // the client's copy is now the only reader
        ASSERT_TRUE(runUntil(*loop_, [&] { return reply.has_value(); }));
        ASSERT_TRUE(*reply);
        EXPECT_EQ((*reply)->fds.size(), accept ? 1u : 0u);
        // Closed with closeAsync(), on a background thread: a bounded wait for it.
        for (int i = 0; i < 1000 && !accept && readerAlive(writeEnd.get()); ++i)
            ::usleep(5000);
        EXPECT_EQ(readerAlive(writeEnd.get()), accept);
    }
}

TEST_F(RawPeerTest, GarbageOrAnUnaskedReplyFailsThePendingCalls) {
    auto client = AsyncClient::adopt(*loop_, std::move(clientEnd_));
    ASSERT_TRUE(client);
    std::optional<Result<ReplyMessage>> reply;
    auto call = client->call("org.example.Get", "", [&](Result<ReplyMessage> r) { reply = std::move(r); });
    ASSERT_TRUE(call);
    peerSend("{not json");
    ASSERT_TRUE(runUntil(*loop_, [&] { return reply.has_value(); }));
    ASSERT_FALSE(*reply);
    EXPECT_EQ(reply->error().code(), EBADMSG) << reply->error().message();
    EXPECT_FALSE(client->connected());
}

TEST_F(RawPeerTest, AReplyToNoCallIsAProtocolError) {
    auto client = AsyncClient::adopt(*loop_, std::move(clientEnd_));
    ASSERT_TRUE(client);
    peerSend(R"({"parameters":{}})");
    ASSERT_TRUE(runUntil(*loop_, [&] { return !client->connected(); }));
}

TEST_F(RawPeerTest, SendsFdsWithTheirCall) {
    auto client = AsyncClient::adopt(*loop_, std::move(clientEnd_));
    ASSERT_TRUE(client);
    int pipe[2];
    ASSERT_EQ(::pipe2(pipe, O_CLOEXEC), 0);
    UniqueFd readEnd(pipe[0]), writeEnd(pipe[1]);
    ASSERT_TRUE(client->oneway("org.example.First", ""));
    int fds[] = {writeEnd.get()};
    ASSERT_TRUE(client->oneway("org.example.Take", "", CallOptions{.fds = fds}));
    writeEnd.reset(); // the client holds its own copy until it is sent
    runFor(*loop_, 20ms);

    std::string received;
    std::vector<UniqueFd> passed;
    while (received.find(R"("org.example.Take")") == std::string::npos || received.back() != '\0') {
        char buffer[4096];
        iovec iov{.iov_base = buffer, .iov_len = sizeof(buffer)};
        alignas(cmsghdr) std::byte control[CMSG_SPACE(sizeof(int) * 4)];
        msghdr header{};
        header.msg_iov = &iov;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(peer_.get(), &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        ASSERT_GT(n, 0) << "the calls were not sent";
        std::string_view chunk(buffer, static_cast<size_t>(n));
        for (cmsghdr* c = CMSG_FIRSTHDR(&header); c; c = CMSG_NXTHDR(&header, c))
            if (c->cmsg_type == SCM_RIGHTS) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
                passed.emplace_back(fd);
                // The kernel hands fds out with the read that holds the first byte of what carried them.
                EXPECT_NE(chunk.find(R"({"method":"org.example.Take")"), std::string_view::npos)
                    << "the fds come with the first byte of their call";
            }
        received.append(chunk);
    }
    ASSERT_EQ(passed.size(), 1u);
    ASSERT_EQ(::write(passed[0].get(), "ok", 2), 2);
    char got[2];
    ASSERT_EQ(::read(readEnd.get(), got, 2), 2) << "the passed fd is the pipe's write end";
}

TEST_F(RawPeerTest, ACallbackMayDestroyTheClientAndExceptionsStayInside) {
    std::optional<AsyncClient> client;
    {
        auto adopted = AsyncClient::adopt(*loop_, std::move(clientEnd_));
        ASSERT_TRUE(adopted);
        client.emplace(std::move(*adopted));
    }
    int calls = 0;
    auto throwing = client->call("org.example.A", "", [&](Result<ReplyMessage>) {
        ++calls;
        throw std::runtime_error("thrown from a reply callback");
    });
    auto destroying = client->call("org.example.B", "", [&](Result<ReplyMessage>) {
        ++calls;
        client.reset();
    });
    auto never = client->call("org.example.C", "", [&](Result<ReplyMessage>) { ++calls; });
    ASSERT_TRUE(throwing && destroying && never);
    // All three replies in one read: the first callback throws, the second destroys the client.
    std::string replies;
    for (int i = 0; i < 3; ++i)
        replies += std::string(R"({"parameters":{}})") + '\0';
    ASSERT_EQ(::send(peer_.get(), replies.data(), replies.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(replies.size()));
    ASSERT_TRUE(runUntil(*loop_, [&] { return !client.has_value(); }));
    runFor(*loop_, 20ms);
    EXPECT_EQ(calls, 2)
        << "the exception was caught and the next reply delivered; none after the client went";
    EXPECT_FALSE(never->pending());
}

TEST(AsyncClient, ConnectingToNothingFails) {
    TempDir dir;
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop);
    auto client = AsyncClient::connect(*loop, dir.path() + "/nobody.sock");
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code(), ENOENT) << client.error().message();
    auto bad = AsyncClient::connect(*loop, "tcp:localhost:1");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL);
}

// The back service: Hold answers only when Release is called (from another client), so the test decides when
// the front service's handler gets its reply.
class BackService {
public:
    explicit BackService(std::string path)
        : path_(std::move(path)), server_([this](EventLoop&, Server& server) {
              auto added = server.addInterface(Interface{
                  .name = "org.example.back",
                  .description = "interface org.example.back\n",
                  .methods = {
                      Method{.name = "Hold",
                             .handler =
                                 [this](Call& call) {
                                     held_.push_back(
                                         {std::string(call.parameters()["text"].string().value_or("")),
                                          std::make_unique<DeferredCall>(call.defer())});
                                     ++heldCount;
                                 }},
                      Method{.name = "Release",
                             .handler =
                                 [this](Call& call) {
                                     for (auto& [text, deferred] : held_)
                                         (void)deferred->reply([&](JsonWriter& w) {
                                             w.field("text", std::format("{} from back", text));
                                         });
                                     held_.clear();
                                     (void)call.reply();
                                 }},
                  }});
              if (!added)
                  return added.error().message();
              return VarlinkServerThread::listenOn(server, path_);
          }) {}

    std::atomic<int> heldCount{0};

private:
    std::string path_;
    std::vector<std::pair<std::string, std::unique_ptr<DeferredCall>>> held_; // on the server's thread only
    VarlinkServerThread server_;
};

// The front service, as a Service would be: a varlink::Server and an AsyncClient to the back service on one
// EventLoop, in a thread. Relay defers its call, calls the back service and answers when the reply comes;
// Echo answers at once.
class FrontService {
public:
    FrontService(std::string path, std::string backPath)
        : path_(std::move(path)), backPath_(std::move(backPath)) {
        stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        std::promise<std::string> ready;
        auto started = ready.get_future();
        thread_ = std::thread([this, &ready] { run(ready); });
        std::string error = started.get();
        if (!error.empty()) {
            thread_.join();
            throw std::runtime_error(error);
        }
    }
    ~FrontService() {
        uint64_t one = 1;
        (void)!::write(stop_.get(), &one, sizeof(one));
        thread_.join();
    }
    FrontService(const FrontService&) = delete;
    FrontService& operator=(const FrontService&) = delete;

private:
    void run(std::promise<std::string>& ready) {
        auto loop = EventLoop::create();
        if (!loop)
            return ready.set_value(loop.error().message());
        auto server = Server::create(*loop);
        if (!server)
            return ready.set_value(server.error().message());
        auto back = AsyncClient::connect(*loop, backPath_);
        if (!back)
            return ready.set_value(back.error().message());
        auto relay = [&](Call& call) {
            auto deferred = std::make_shared<DeferredCall>(call.defer());
            std::string text(call.parameters()["text"].string().value_or(""));
            auto pending = back->call(
                "org.example.back.Hold", [&](JsonWriter& w) { w.field("text", text); },
                [deferred](Result<ReplyMessage> reply) {
                    if (!reply || reply->error()) {
                        (void)deferred->error("org.example.front.BackFailed");
                        return;
                    }
                    std::string got(reply->parameters()["text"].string().value_or(""));
                    (void)deferred->reply([&](JsonWriter& w) { w.field("text", got + " via front"); });
                });
            if (!pending) {
                (void)deferred->error("org.example.front.BackFailed");
                return;
            }
            pending->detach(); // the call lives on until its reply; the client ends it if it goes first
        };
        auto added = server->addInterface(Interface{
            .name = "org.example.front",
            .description = "interface org.example.front\n",
            .methods = {Method{.name = "Relay", .handler = relay},
                        Method{.name = "Echo", .handler = [](Call& call) {
                                   std::string text(call.parameters()["text"].string().value_or(""));
                                   (void)call.reply([&](JsonWriter& w) { w.field("text", text); });
                               }}}});
        if (!added)
            return ready.set_value(added.error().message());
        if (auto error = VarlinkServerThread::listenOn(*server, path_); !error.empty())
            return ready.set_value(error);
        auto stopSource = loop->addIo(stop_.get(), EPOLLIN, [&](uint32_t) { loop->exit(0); });
        if (!stopSource)
            return ready.set_value(stopSource.error().message());
        ready.set_value("");
        (void)loop->run();
    }

    std::string path_;
    std::string backPath_;
    UniqueFd stop_;
    std::thread thread_;
};

std::string replyText(const Result<ReplyMessage>& reply) {
    return textOf(reply);
}

TEST(AsyncClientInAService, ServesASecondClientWhileAHandlerWaitsForAnotherService) {
    TempDir dir;
    BackService back(dir.path() + "/back.sock");
    FrontService front(dir.path() + "/front.sock", dir.path() + "/back.sock");

    auto first = Client::connect(dir.path() + "/front.sock");
    ASSERT_TRUE(first);
    ASSERT_TRUE(first->send("org.example.front.Relay", R"({"text": "first"})"));
    // The front service's handler has called the back service, which holds the call.
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (back.heldCount.load() < 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    ASSERT_EQ(back.heldCount.load(), 1);

    // Meanwhile a second client is served.
    auto second = Client::connect(dir.path() + "/front.sock");
    ASSERT_TRUE(second);
    ASSERT_TRUE(second->send("org.example.front.Echo", R"({"text": "second"})"));
    auto answered = second->receive(5000ms);
    ASSERT_TRUE(answered) << answered.error().message();
    EXPECT_EQ(replyText(answered), "second");

    // ... while the first is still waiting for the back service.
    auto early = first->receive(0ms);
    ASSERT_FALSE(early) << "the first call was answered before the back service replied";
    EXPECT_EQ(early.error().code(), ETIMEDOUT);

    auto releaser = Client::connect(dir.path() + "/back.sock");
    ASSERT_TRUE(releaser);
    auto released = releaser->call("org.example.back.Release", "");
    ASSERT_TRUE(released && !released->error());

    auto late = first->receive(5000ms);
    ASSERT_TRUE(late) << late.error().message();
    EXPECT_EQ(replyText(late), "first from back via front");
}

// The bench interface served by generated bindings whose Add relays to another bench server (a process the
// test can pause) through the generated AsyncClient on the same loop, as docs/varlink-codegen.md shows; Echo
// and Count answer at once.
class RelayingBench : public bench::Server {
public:
    explicit RelayingBench(bench::AsyncClient& backend) : backend_(backend) {}

    Reply<bench::EchoOut> Echo(bench::EchoIn in, MethodContext<bench::EchoOut>&) override {
        return bench::EchoOut{.text = std::move(in.text)};
    }
    Reply<bench::AddOut> Add(bench::AddIn in, MethodContext<bench::AddOut>& ctx) override {
        auto later = std::make_shared<DeferredReply<bench::AddOut>>(ctx.defer());
        auto call = backend_.Add({.a = in.a, .b = in.b},
                                 [later](AsyncReply<bench::AddOut> sum) {
                                     if (!sum)
                                         (void)later->error(ErrorReply::system(sum.error().code()));
                                     else if (!*sum)
                                         (void)later->error(sum->error());
                                     else
                                         (void)later->reply({.sum = (*sum)->sum});
                                 },
                                 {.timeout = std::chrono::seconds(10)});
        if (!call)
            return ErrorReply::system(call.error().code());
        call->detach();
        return deferred;
    }
    Reply<bench::CountOut> Count(bench::CountIn in, MethodContext<bench::CountOut>&) override {
        return bench::CountOut{.i = in.n};
    }

private:
    bench::AsyncClient& backend_;
};

TEST_P(AsyncClientTest, TypedHandlerRelaysToAPausedServiceWhileServingOthers) {
    std::string frontPath = dir_.path() + "/front.sock";
    std::optional<AsyncClient> connection;
    std::optional<bench::AsyncClient> backend;
    std::optional<RelayingBench> relay;
    VarlinkServerThread front([&](EventLoop& loop, Server& server) -> std::string {
        auto connected = AsyncClient::connect(loop, path_);
        if (!connected)
            return connected.error().message();
        connection.emplace(std::move(*connected));
        backend.emplace(*connection);
        relay.emplace(*backend);
        if (auto added = server.addInterface(relay->interface()); !added)
            return added.error().message();
        return VarlinkServerThread::listenOn(server, frontPath);
    });

    server_->pause(); // the back service answers nothing for now
    auto first = Client::connect(frontPath);
    ASSERT_TRUE(first);
    ASSERT_TRUE(first->send("org.example.bench.Add", R"({"a": 40, "b": 2})"));
    auto second = Client::connect(frontPath);
    ASSERT_TRUE(second);
    auto echoed = second->call("org.example.bench.Echo", R"({"text": "meanwhile"})");
    ASSERT_TRUE(echoed) << echoed.error().message();
    EXPECT_EQ(textOf(echoed), "meanwhile");
    auto early = first->receive(100ms);
    ASSERT_FALSE(early) << "answered although the back service is stopped";
    EXPECT_EQ(early.error().code(), ETIMEDOUT);

    server_->resume();
    auto sum = first->receive(5000ms);
    ASSERT_TRUE(sum) << sum.error().message();
    EXPECT_EQ(sum->parameters()["sum"].int64(), 42);
    auto overflow = first->call("org.example.bench.Add", R"({"a": 9223372036854775807, "b": 1})");
    ASSERT_TRUE(overflow);
    EXPECT_EQ(overflow->error(), "org.example.bench.Overflow") << "the back service's error is passed on";
    front.stop(); // the loop's objects go on its thread's watch: stop it before they are destroyed
    relay.reset();
    backend.reset();
    connection.reset();
}

} // namespace
} // namespace svckit::varlink
