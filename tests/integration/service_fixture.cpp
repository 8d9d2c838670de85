// A small svckit service for the Service lifecycle tests: its spec and behaviour come from environment
// variables so one binary covers every case (tests/integration/service_lifecycle_test.cpp).
//   FIXTURE_SOCKET          the varlink socket's address (default /run/svckit-test-fixture.sock)
//   FIXTURE_PASS_FDS=1      the socket accepts fds (AcceptFileDescriptors=yes)
//   FIXTURE_ACCEPT=1        the socket is Accept=yes (the service gets one connection)
//   FIXTURE_EXIT_ON_IDLE_MS exit-on-idle
//   FIXTURE_WORKERS         worker processes
//   FIXTURE_FAIL_START=1    start() fails
//   FIXTURE_MISSPELT=1      the constructor guards a method that does not exist
// Interface io.svckit.test.Fixture: Pid() -> (pid) answers with the serving process's pid; Later(ms) answers
// after ms milliseconds from a timer (an in-flight call for graceful-stop tests).
#include <svckit/authorization.hpp>
#include <svckit/log.hpp>
#include <svckit/service.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>

namespace {

using namespace svckit;

std::string env(const char* name, std::string fallback = {}) {
    const char* value = std::getenv(name);
    return value ? std::string(value) : fallback;
}

ServiceSpec fixtureSpec() {
    return ServiceSpec{
        .name = "svckit-test-fixture",
        .description = "svckit Service test fixture",
        .version = "1.2.3",
        .sockets = {SocketSpec{.name = "varlink",
                               .address = env("FIXTURE_SOCKET", "/run/svckit-test-fixture.sock"),
                               .accept = env("FIXTURE_ACCEPT") == "1",
                               .passPidfd = true,
                               .acceptFileDescriptors = env("FIXTURE_PASS_FDS") == "1"}},
        .exitOnIdle = std::chrono::milliseconds(std::atoi(env("FIXTURE_EXIT_ON_IDLE_MS", "0").c_str())),
        .workers = static_cast<unsigned>(std::atoi(env("FIXTURE_WORKERS", "1").c_str())),
    };
}

constexpr std::string_view description = R"(interface io.svckit.test.Fixture

method Pid() -> (pid: int)

method Later(ms: int) -> ()
)";

class Fixture : public Service {
public:
    Fixture() : Service(fixtureSpec()) {
        varlink::Interface interface {
            .name = "io.svckit.test.Fixture", .description = std::string(description), .methods = {
                {.name = "Pid",
                 .handler =
                     [](varlink::Call& call) {
                         (void)call.reply([](varlink::JsonWriter& w) { w.field("pid", ::getpid()); });
                     }},
                {.name = "Later", .handler = [this](varlink::Call& call) { later(call); }}
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
        setStatus("fixture started");
        return {};
    }
    void stop() override { logInfo("fixture: stop() with {} call(s) pending", unanswered_); }

private:
    void later(varlink::Call& call) {
        auto ms = call.parameters()["ms"].int64().value_or(100);
        uint64_t id = next_++;
        auto deferred = std::make_shared<varlink::DeferredCall>(call.defer());
        ++unanswered_;
        // The timers stay in timers_ (a source must not be destroyed from its own callback).
        auto timer = loop().addTimer(std::chrono::milliseconds(ms), [this, deferred] {
            (void)deferred->reply();
            --unanswered_;
        });
        if (timer)
            timers_.emplace(id, std::move(*timer));
    }

    uint64_t next_ = 0;
    unsigned unanswered_ = 0;
    std::map<uint64_t, EventSource> timers_;
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Fixture>(argc, argv);
}
