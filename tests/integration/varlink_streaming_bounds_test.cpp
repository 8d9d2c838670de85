// A handler that sends replies in a loop without asking for room cannot make the server buffer past
// ServerOptions::outputHardLimit: the reply that would go past it is refused (ENOBUFS, "no room"), the
// connection closes as an overflow (counted), and every reply after that is refused too (ENOTCONN). Deferred
// calls are held to the same limit.
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

constexpr size_t hardLimit = 1024 * 1024;
constexpr int64_t replies = 200000; // about 8 MB of replies, eight times the hard limit

// What the flooding handler saw: how many replies were taken, and the errno of the first one refused.
struct Outcome {
    std::atomic<int64_t> accepted{0};
    std::atomic<int> firstError{0};
    std::atomic<int> laterError{0};
    std::atomic<bool> done{false};
};

template <typename Replier>
void flood(Replier& call, Outcome& outcome) {
    for (int64_t i = 0; i < replies; ++i) {
        auto r = call.replyContinues([&](JsonWriter& w) { w.field("i", i); });
        if (r) {
            ++outcome.accepted;
        } else if (outcome.firstError == 0) {
            outcome.firstError = r.error().code();
        } else {
            outcome.laterError = r.error().code();
        }
    }
    (void)call.reply([&](JsonWriter& w) { w.field("i", replies); });
    outcome.done = true;
}

Extras floodingMethods(Outcome& outcome, std::vector<EventSource>& timers) {
    return Extras{.methods =
                      [&outcome, &timers](Server&, EventLoop& loop) {
                          return std::vector<Method>{
                              Method{.name = "Flood",
                                     .handler = [&outcome](Call& call) { flood(call, outcome); },
                                     .requiresMore = true},
                              // The same, from a timer after the handler returned.
                              Method{.name = "FloodLater",
                                     .handler =
                                         [&outcome, &timers, &loop](Call& call) {
                                             auto deferred = std::make_shared<DeferredCall>(call.defer());
                                             auto timer = loop.addTimer(
                                                 1ms, [deferred, &outcome] { flood(*deferred, outcome); });
                                             if (timer)
                                                 timers.push_back(std::move(*timer));
                                         },
                                     .requiresMore = true}};
                      },
                  .setup = {},
                  .teardown = [&timers] { timers.clear(); }};
}

void expectRefusedAtTheHardLimit(const char* method) {
    Outcome outcome;
    std::vector<EventSource> timers;
    ServerOptions options;
    options.outputSoftLimit = 64 * 1024;
    options.outputHardLimit = hardLimit;
    TestServer server(options, false, floodingMethods(outcome, timers));
    Client caller(server.path());
    ASSERT_TRUE(caller.call(std::format(R"({{"method":"org.example.test.{}","more":true}})", method)));
    // The caller reads nothing while the handler runs.
    ASSERT_TRUE(waitFor([&] { return outcome.done.load(); }, 30'000ms));
    // Each reply is about 40 bytes: no more than the hard limit's worth was taken.
    EXPECT_LT(outcome.accepted.load(), static_cast<int64_t>(hardLimit / 30))
        << "the server buffered " << outcome.accepted.load() << " replies (about "
        << outcome.accepted.load() * 40 / 1024 << " KiB) over a hard limit of " << hardLimit / 1024 << " KiB";
    EXPECT_EQ(outcome.firstError.load(), ENOBUFS);
    EXPECT_EQ(outcome.laterError.load(), ENOTCONN);
    EXPECT_TRUE(caller.drainUntilClosed(10'000ms)) << "the overflowing connection was not closed";
    // The server goes on serving others.
    Client other(server.path());
    ASSERT_TRUE(other.call(echo("still here")));
    EXPECT_EQ(parse(other.receive(10'000ms)).text(), "still here");
    EXPECT_EQ(server.stop().overflowCloses, 1u);
}

TEST(VarlinkStreamingBounds, RefusesRepliesPastTheHardLimitWhileAHandlerRuns) {
    expectRefusedAtTheHardLimit("Flood");
}

TEST(VarlinkStreamingBounds, RefusesDeferredRepliesPastTheHardLimit) {
    expectRefusedAtTheHardLimit("FloodLater");
}

} // namespace
} // namespace svckit::varlink
