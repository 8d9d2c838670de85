// A small svckit service for the Service lifecycle tests: its spec and behaviour come from environment
// variables so one binary covers every case (tests/integration/service_lifecycle_test.cpp).
//   FIXTURE_SOCKET          the varlink socket's address (default /run/svckit-test-fixture.sock)
//   FIXTURE_SECOND_SOCKET   the spec has a second varlink socket, "second", at this address
//   FIXTURE_PASS_FDS=1      the socket accepts fds (AcceptFileDescriptors=yes)
//   FIXTURE_ACCEPT=1        the socket is Accept=yes (the service gets one connection)
//   FIXTURE_EXIT_ON_IDLE_MS exit-on-idle
//   FIXTURE_WORKERS         worker processes
//   FIXTURE_MAX_CONNECTIONS the varlink server's maxConnections; FIXTURE_MAX_PER_UID its maxConnectionsPerUid
//   FIXTURE_FAIL_START=1    start() fails
//   FIXTURE_MISSPELT=1      the constructor guards a method that does not exist
//   FIXTURE_ALIVE_AFTER_MS  logs "fixture: pid P alive after N ms" from a timer armed in the loop's first
//                           iteration (so after the exit-on-idle timer): proof that the loop still ran then
//   FIXTURE_HOLD_LOOP_UNTIL PATH: once the exit-on-idle timeout has passed with no connection, the loop stops
//                           in a callback (STATUS=holding the loop) until PATH exists; the idle timer is due
//                           by then, and runs before anything that arrived meanwhile (sd-event dispatches a
//                           defer source due since the first iteration before a timer due since a later one)
// Its own command-line options (svckit::run<T>() with T::Options): --greeting=TEXT (-g TEXT; empty is
// refused), which start() logs as "fixture: greeting 'TEXT'", and the flag --loud, which upper-cases it.
// Interface io.svckit.test.Fixture: Pid() -> (pid) answers with the serving process's pid; Later(ms) answers
// after ms milliseconds from a timer, or at SIGUSR1 (an in-flight call for graceful-stop tests; STATUS= says
// how many are pending); Forget() returns without answering; Hold(path) stops the serving process's loop
// until path exists (logging "fixture: pid P holds its loop"), then answers.
#include <svckit/authorization.hpp>
#include <svckit/log.hpp>
#include <svckit/service.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <format>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <cctype>
#include <vector>

namespace {

using namespace svckit;
using namespace std::chrono_literals;

std::string env(const char* name, std::string fallback = {}) {
    const char* value = std::getenv(name);
    return value ? std::string(value) : fallback;
}

std::chrono::milliseconds envMs(const char* name) {
    return std::chrono::milliseconds(std::atoi(env(name, "0").c_str()));
}

ServiceSpec fixtureSpec() {
    ServiceSpec spec{
        .name = "svckit-test-fixture",
        .description = "svckit Service test fixture",
        .version = "1.2.3",
        .sockets = {SocketSpec{.name = "varlink",
                               .address = env("FIXTURE_SOCKET", "/run/svckit-test-fixture.sock"),
                               .accept = env("FIXTURE_ACCEPT") == "1",
                               .passPidfd = true,
                               .acceptFileDescriptors = env("FIXTURE_PASS_FDS") == "1"}},
        .exitOnIdle = envMs("FIXTURE_EXIT_ON_IDLE_MS"),
        .workers = static_cast<unsigned>(std::atoi(env("FIXTURE_WORKERS", "1").c_str())),
    };
    if (std::string max = env("FIXTURE_MAX_CONNECTIONS"); !max.empty())
        spec.varlink.maxConnections = static_cast<unsigned>(std::atoi(max.c_str()));
    if (std::string max = env("FIXTURE_MAX_PER_UID"); !max.empty())
        spec.varlink.maxConnectionsPerUid = static_cast<unsigned>(std::atoi(max.c_str()));
    if (std::string second = env("FIXTURE_SECOND_SOCKET"); !second.empty())
        spec.sockets.push_back(SocketSpec{.name = "second", .address = second});
    return spec;
}

// Waits (bounded) until `path` exists: the test's signal to let a held loop go on.
void holdUntil(const std::string& path) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
}

constexpr std::string_view description = R"(interface io.svckit.test.Fixture

method Pid() -> (pid: int)

method Later(ms: int) -> ()

method Forget() -> ()

method Hold(path: string) -> ()
)";

class Fixture : public Service {
public:
    struct Options {
        std::string greeting = "hello";
        bool loud = false;
    };
    static CommandLine commandLine(Options& values) {
        return {.options = {
                    {.name = "greeting",
                     .shortName = 'g',
                     .argument = "TEXT",
                     .help = "What start() logs (fixture option)",
                     .set = [&values](std::string_view text) -> Result<void> {
                         if (text.empty())
                             return fail(EINVAL, "the greeting must not be empty");
                         values.greeting = text;
                         return {};
                     }},
                    {.name = "loud",
                     .help = "Upper-case the greeting",
                     .set = [&values](std::string_view) -> Result<void> {
                         values.loud = true;
                         return {};
                     }},
                }};
    }

    explicit Fixture(const Options& options) : Service(fixtureSpec()), greeting_(options.greeting) {
        if (options.loud)
            for (char& c : greeting_)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        varlink::Interface interface {
            .name = "io.svckit.test.Fixture", .description = std::string(description), .methods = {
                {.name = "Pid",
                 .handler =
                     [](varlink::Call& call) {
                         (void)call.reply([](varlink::JsonWriter& w) { w.field("pid", ::getpid()); });
                     }},
                {.name = "Later", .handler = [this](varlink::Call& call) { later(call); }},
                {.name = "Forget", .handler = [](varlink::Call&) {}},
                {.name = "Hold",
                 .handler =
                     [](varlink::Call& call) {
                         std::string path(call.parameters()["path"].string().value_or(""));
                         logInfo("fixture: pid {} holds its loop", ::getpid());
                         holdUntil(path);
                         (void)call.reply();
                     }},
            }
        };
        if (env("FIXTURE_MISSPELT") == "1")
            addVarlink(varlink::restrict(std::move(interface), "Pdi", Policy::rootOnly()));
        else
            addVarlink(std::move(interface));
    }

protected:
    Result<void> start() override {
        if (env("FIXTURE_FAIL_START") == "1")
            return fail(EIO, "start() refused as asked");
        auto usr1 = loop().addSignal(SIGUSR1, [this](const signalfd_siginfo&) {
            while (!pending_.empty())
                answer(pending_.begin()->first);
        });
        if (!usr1)
            return std::unexpected(usr1.error());
        sources_.push_back(std::move(*usr1));
        // Runs in the loop's first iteration: after run() armed the exit-on-idle timer.
        auto first = loop().addDefer([this] { firstIteration(); });
        if (!first)
            return std::unexpected(first.error());
        if (auto once = first->enableOnce(); !once)
            return std::unexpected(once.error());
        first_ = std::move(*first);
        logInfo("fixture: greeting '{}'", greeting_);
        setStatus("fixture started");
        return {};
    }
    void stop() override { logInfo("fixture: stop() with {} call(s) pending", pending_.size()); }

private:
    void firstIteration() {
        if (auto alive = envMs("FIXTURE_ALIVE_AFTER_MS"); alive > 0ms && !aliveTimer_) {
            auto timer = loop().addTimer(
                alive, [alive] { logInfo("fixture: pid {} alive after {} ms", ::getpid(), alive.count()); });
            if (timer)
                aliveTimer_ = std::move(*timer);
        }
        std::string holdPath = env("FIXTURE_HOLD_LOOP_UNTIL");
        if (holdPath.empty())
            return;
        int phase = holdPhase_++;
        if (phase < 2) {
            // sd-event dispatches one source per iteration: let the endpoint's "no connection" callback (its
            // zero-delay timer, pending since the first iteration too) arm the service's idle timer first.
            (void)first_.enableOnce();
            return;
        }
        if (phase == 2) {
            // The idle timer was armed before this iteration: once its timeout has passed it is due. Come
            // back in the next iteration, where sd-event marks it pending behind this (older) defer source.
            auto idle = spec().exitOnIdle;
            auto until = std::chrono::steady_clock::now() + idle + 50ms;
            while (std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(until - std::chrono::steady_clock::now());
            (void)first_.enableOnce();
            return;
        }
        setStatus("holding the loop");
        holdUntil(holdPath);
        logInfo("fixture: pid {} lets its loop go on", ::getpid());
    }

    void later(varlink::Call& call) {
        auto ms = call.parameters()["ms"].int64().value_or(100);
        uint64_t id = next_++;
        pending_.emplace(id, std::make_shared<varlink::DeferredCall>(call.defer()));
        setStatus(std::format("{} call(s) pending", pending_.size()));
        // The timers stay in timers_ (a source must not be destroyed from its own callback).
        auto timer = loop().addTimer(std::chrono::milliseconds(ms), [this, id] { answer(id); });
        if (timer)
            timers_.emplace(id, std::move(*timer));
    }

    void answer(uint64_t id) {
        auto it = pending_.find(id);
        if (it == pending_.end())
            return;
        (void)it->second->reply();
        pending_.erase(it);
        setStatus(std::format("{} call(s) pending", pending_.size()));
    }

    std::string greeting_;
    uint64_t next_ = 0;
    std::map<uint64_t, std::shared_ptr<varlink::DeferredCall>> pending_;
    std::map<uint64_t, EventSource> timers_;
    std::vector<EventSource> sources_;
    EventSource first_;
    EventSource aliveTimer_;
    int holdPhase_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Fixture>(argc, argv);
}
