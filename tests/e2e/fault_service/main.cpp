// svckit-e2e-faults — a small test-only service for tests/e2e/varlink_faults.sh: calls that are genuinely in
// flight when systemd stops or kills the service, and a short exit-on-idle to race new connections against.
// Not installed: its units (--print-units=DIR) name the binary where it was built (ExecStart= is the path it
// runs from), so the container's systemd activates it from the build directory, as it would an installed one.
//
// Interface io.svckit.test.Faults:
//   Sleep(ms) -> (pid)  answered after ms milliseconds from a timer on the loop (Call::defer()); STATUS= says
//                       how many are pending ("N call(s) pending"), the journal when each is answered
//   Pid() -> (pid)      answered at once
//   Block(ms) -> (pid)  blocks the loop for ms milliseconds (STATUS=blocking the loop), then answers
// exitOnIdle is 200 ms; start() logs "faults: pid P serving", stop() "faults: pid P stop() with N call(s)
// pending", and the process logs "faults: pid P answered N call(s), left M unanswered" as it exits.
#include <svckit/log.hpp>
#include <svckit/service.hpp>

#include <chrono>
#include <filesystem>
#include <format>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

using namespace svckit;

constexpr std::string_view description = R"(interface io.svckit.test.Faults

# Answers after ms milliseconds with the serving process's pid.
method Sleep(ms: int) -> (pid: int)

# Answers at once with the serving process's pid.
method Pid() -> (pid: int)

# Blocks the service's loop for ms milliseconds (STATUS=blocking the loop), then answers.
method Block(ms: int) -> (pid: int)
)";

ServiceSpec faultsSpec() {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return {
        .name = "svckit-e2e-faults",
        .description = "svckit fault test service (tests/e2e/varlink_faults.sh)",
        .version = "1.0",
        .executable = ec ? std::string() : self.string(),
        .sockets = {SocketSpec{
            .name = "varlink", .address = "/run/svckit-e2e-faults.sock", .passPidfd = true}},
        .exitOnIdle = std::chrono::milliseconds(200),
    };
}

class Faults : public Service {
public:
    Faults() : Service(faultsSpec()) {
        addVarlink(varlink::Interface{
            .name = "io.svckit.test.Faults",
            .description = std::string(description),
            .methods = {
                {.name = "Sleep", .handler = [this](varlink::Call& call) { sleep(call); }},
                {.name = "Block", .handler = [this](varlink::Call& call) { block(call); }},
                {.name = "Pid",
                 .handler =
                     [this](varlink::Call& call) {
                         ++answered_;
                         (void)call.reply([](varlink::JsonWriter& w) { w.field("pid", ::getpid()); });
                     }},
            }});
    }
    ~Faults() override {
        logInfo("faults: pid {} answered {} call(s), left {} unanswered", ::getpid(), answered_,
                pending_.size());
    }

protected:
    Result<void> start() override {
        logInfo("faults: pid {} serving", ::getpid());
        return {};
    }
    void stop() override {
        logInfo("faults: pid {} stop() with {} call(s) pending", ::getpid(), pending_.size());
    }

private:
    void sleep(varlink::Call& call) {
        auto ms = call.parameters()["ms"].int64().value_or(0);
        if (ms < 0 || ms > 600'000) {
            (void)call.invalidParameter("ms");
            return;
        }
        uint64_t id = next_++;
        pending_.emplace(id, std::make_shared<varlink::DeferredCall>(call.defer()));
        setStatus(std::format("{} call(s) pending", pending_.size()));
        // A timer is kept until the next one is added or the service ends (a source is not destroyed from its
        // own callback).
        auto timer = loop().addTimer(std::chrono::milliseconds(ms), [this, id] { answer(id); });
        if (timer)
            timers_.emplace(id, std::move(*timer));
        else
            answer(id);
    }

    // On purpose: callers connect and the stop signal arrives while the loop is not looking.
    void block(varlink::Call& call) {
        auto ms = call.parameters()["ms"].int64().value_or(0);
        if (ms < 0 || ms > 60'000) {
            (void)call.invalidParameter("ms");
            return;
        }
        setStatus("blocking the loop");
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        setStatus(std::format("{} call(s) pending", pending_.size()));
        ++answered_;
        (void)call.reply([](varlink::JsonWriter& w) { w.field("pid", ::getpid()); });
    }

    void answer(uint64_t id) {
        auto it = pending_.find(id);
        if (it == pending_.end())
            return;
        auto sent = it->second->reply([](varlink::JsonWriter& w) { w.field("pid", ::getpid()); });
        if (sent)
            ++answered_;
        else
            logInfo("faults: a reply was not sent: {}", sent.error().message());
        pending_.erase(it);
        std::erase_if(timers_,
                      [this, id](const auto& t) { return t.first != id && !pending_.contains(t.first); });
        setStatus(std::format("{} call(s) pending", pending_.size()));
    }

    uint64_t next_ = 0;
    uint64_t answered_ = 0;
    std::map<uint64_t, std::shared_ptr<varlink::DeferredCall>> pending_;
    std::map<uint64_t, EventSource> timers_;
};

} // namespace

int main(int argc, char** argv) {
    return svckit::run<Faults>(argc, argv);
}
