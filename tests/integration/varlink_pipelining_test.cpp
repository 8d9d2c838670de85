// Calls pipelined behind an unanswered one: the server reads at most ServerOptions::maxQueuedCalls of them
// (calls read and not answered yet, on one connection) and then stops reading from that peer until some are
// answered, so a client cannot make it hold calls without bound; replies still go out in call order however
// the deferred calls are answered.
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

constexpr int pipelined = 100000;
constexpr int64_t defaultQueue = 1024; // ServerOptions::maxQueuedCalls

// "Hold" defers its call and keeps it unanswered until "Release" answers every held call, last one first.
struct Held {
    std::vector<DeferredCall> calls; // the loop thread's

    Extras extras() {
        return Extras{.methods =
                          [this](Server&, EventLoop&) {
                              return std::vector<Method>{
                                  Method{.name = "Hold",
                                         .handler = [this](Call& call) { calls.push_back(call.defer()); }},
                                  Method{.name = "Release", .handler = [this](Call& call) {
                                             auto n = static_cast<int64_t>(calls.size());
                                             for (auto it = calls.rbegin(); it != calls.rend(); ++it)
                                                 (void)it->reply();
                                             calls.clear();
                                             (void)call.reply([&](JsonWriter& w) { w.field("released", n); });
                                         }}};
                          },
                      .setup = {},
                      .teardown = [this] { calls.clear(); }};
    }
};

constexpr std::string_view hold = R"({"method":"org.example.test.Hold"})";

// Sends `count` copies of `call` behind one held call from a thread (the server may stop reading them), and
// returns how many calls the server has read once that number has settled.
int64_t callsReadBehindAHeldOne(TestServer& server, std::string_view call) {
    Client observer(server.path());
    int64_t before = serverState(observer).calls; // the State call itself counts as one
    Client pipeliner(server.path());
    std::thread sender([&] {
        std::string batch = std::string(hold) + '\0';
        for (int i = 0; i < pipelined; ++i)
            batch.append(call).push_back('\0');
        (void)pipeliner.sendRaw(batch); // ends when the test shuts the socket down
    });
    int64_t read = 0;
    int64_t states = 0; // State calls made since `before` (each counts as a call)
    // Settled: the count has not moved for 300 ms (all read, or reading stopped).
    (void)waitFor(
        [&] {
            int64_t first = serverState(observer).calls;
            std::this_thread::sleep_for(300ms);
            int64_t second = serverState(observer).calls;
            states += 2;
            read = second - before - states;
            return first + 1 == second;
        },
        30'000ms);
    ::shutdown(pipeliner.fd(), SHUT_RDWR);
    sender.join();
    return read;
}

TEST(VarlinkPipelining, StopsReadingDeferredCallsPipelinedBehindAnUnansweredOne) {
    Held held;
    TestServer server({}, false, held.extras());
    int64_t read = callsReadBehindAHeldOne(server, hold);
    EXPECT_LE(read, defaultQueue) << "the server read " << read << " of " << pipelined + 1
                                  << " calls behind an unanswered one";
    EXPECT_GT(read, 0);
}

TEST(VarlinkPipelining, StopsReadingCallsPipelinedBehindAnUnansweredOne) {
    Held held;
    TestServer server({}, false, held.extras());
    int64_t read = callsReadBehindAHeldOne(server, echo("queued"));
    EXPECT_LE(read, defaultQueue) << "the server read " << read << " of " << pipelined + 1
                                  << " calls behind an unanswered one";
    EXPECT_GT(read, 0);
}

TEST(VarlinkPipelining, ResumesReadingWhenTheQueuedCallsAreAnswered) {
    Held held;
    TestServer server({}, false, held.extras());
    Client client(server.path());
    // 1500 held calls: the server reads at most 1024, and reads on once Release has answered those.
    constexpr int total = 1500;
    std::string calls;
    for (int i = 0; i < total; ++i)
        calls.append(hold).push_back('\0');
    std::thread sender([&] { ASSERT_TRUE(client.sendRaw(calls)); });
    Client releaser(server.path());
    int64_t released = 0;
    for (int round = 0; round < 10 && released < total; ++round) {
        ASSERT_TRUE(waitFor([&] { return serverState(releaser).inFlight > 0; }, 10'000ms));
        EXPECT_LE(serverState(releaser).inFlight, defaultQueue);
        ASSERT_TRUE(releaser.call(R"({"method":"org.example.test.Release"})"));
        released += parse(releaser.receive(10'000ms)).root()["parameters"]["released"].int64().value_or(0);
    }
    sender.join();
    EXPECT_EQ(released, total);
    int answered = 0;
    while (answered < total && client.receive(10'000ms))
        ++answered;
    EXPECT_EQ(answered, total);
}

TEST(VarlinkPipelining, AnswersInCallOrderWhenDeferredCallsAreAnsweredLastFirst) {
    Held held;
    TestServer server({}, false, held.extras());
    Client client(server.path());
    std::string calls;
    for (int i = 0; i < 500; ++i)
        calls.append(hold).append(1, '\0').append(echo(std::to_string(i))).push_back('\0');
    ASSERT_TRUE(client.sendRaw(calls));
    Client releaser(server.path());
    ASSERT_TRUE(waitFor([&] { return serverState(releaser).inFlight == 500; }, 10'000ms));
    ASSERT_TRUE(releaser.call(R"({"method":"org.example.test.Release"})"));
    for (int i = 0; i < 500; ++i) {
        auto first = client.receive(10'000ms);
        ASSERT_TRUE(first) << "call " << 2 * i;
        EXPECT_EQ(*first, "{}") << "call " << 2 * i;
        EXPECT_EQ(parse(client.receive(10'000ms)).text(), std::to_string(i));
    }
}

} // namespace
} // namespace svckit::varlink
