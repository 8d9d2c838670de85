// The calc example (examples/calc) over peer-to-peer D-Bus, run as its own process serving both its varlink
// and its D-Bus socket (--listen=NAME=PATH), called with the proxy sdbus-c++-xml2cpp generates from
// org.svckit.example.Calc1.xml (svckit_dbus_gen): one Service, both protocols, the same Calculator behind
// them.
#include <svckit/varlink_client.hpp>

#include "../unit/activation_test_support.hpp"
#include "org.svckit.example.Calc1_proxy.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using svckit::test::TempDir;

constexpr const char* calcName = "org.svckit.example.Calc1"; // a destination busctl-style clients need
constexpr const char* calcPath = "/org/svckit/example/Calc1";

// svckit-example-calc --listen=dbus=PATH --listen=varlink=PATH in a child process; ended (and reaped) by the
// destructor.
class CalcProcess {
public:
    CalcProcess(const std::string& dbusPath, const std::string& varlinkPath) {
        const char* binary = std::getenv("SVCKIT_CALC_EXAMPLE");
        if (!binary)
            return;
        std::string dbus = "--listen=dbus=" + dbusPath;
        std::string varlink = "--listen=varlink=" + varlinkPath;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl(binary, binary, dbus.c_str(), varlink.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~CalcProcess() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    CalcProcess(const CalcProcess&) = delete;
    CalcProcess& operator=(const CalcProcess&) = delete;

    [[nodiscard]] bool started() const noexcept { return pid_ > 0; }

private:
    pid_t pid_ = -1;
};

// A client of the generated proxy on its own direct connection; signals and PropertiesChanged are recorded
// (from the connection's event loop thread).
class Calc1Client final
    : public sdbus::ProxyInterfaces<org::svckit::example::Calc1_proxy, sdbus::Properties_proxy> {
public:
    // Takes the connection and runs its event loop in a thread of its own.
    explicit Calc1Client(std::unique_ptr<sdbus::IConnection> connection)
        : ProxyInterfaces(std::move(connection), sdbus::ServiceName(calcName), sdbus::ObjectPath(calcPath)) {
        registerProxy();
    }
    ~Calc1Client() { unregisterProxy(); }

    std::vector<std::pair<std::string, int64_t>> computed() {
        std::lock_guard lock(mutex_);
        return computed_;
    }
    std::vector<uint64_t> callsAnnounced() {
        std::lock_guard lock(mutex_);
        return callsAnnounced_;
    }

private:
    void onComputed(const std::string& operation, const int64_t& result) override {
        std::lock_guard lock(mutex_);
        computed_.emplace_back(operation, result);
    }
    void onPropertiesChanged(const sdbus::InterfaceName& interfaceName,
                             const std::map<sdbus::PropertyName, sdbus::Variant>& changed,
                             const std::vector<sdbus::PropertyName>&) override {
        if (interfaceName != org::svckit::example::Calc1_proxy::INTERFACE_NAME)
            return;
        std::lock_guard lock(mutex_);
        if (auto it = changed.find(sdbus::PropertyName("Calls")); it != changed.end())
            callsAnnounced_.push_back(it->second.get<uint64_t>());
    }

    std::mutex mutex_;
    std::vector<std::pair<std::string, int64_t>> computed_;
    std::vector<uint64_t> callsAnnounced_;
};

// Connects once the service accepts connections. (A connection sdbus-c++ fails to make leaks its sd_bus, so
// the socket is probed with a plain connect() first.)
std::unique_ptr<Calc1Client> connectWithin(const std::string& path, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        svckit::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof address.sun_path - 1);
        if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0)
            break;
        if (std::chrono::steady_clock::now() >= deadline)
            return nullptr;
        std::this_thread::sleep_for(10ms);
    }
    try {
        return std::make_unique<Calc1Client>(sdbus::createDirectBusConnection("unix:path=" + path));
    } catch (const sdbus::Error&) {
        return nullptr;
    }
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::seconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

class CalcDBus : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(calc_.started()) << "SVCKIT_CALC_EXAMPLE is not set";
        client_ = connectWithin(dbusPath_, 20s);
        ASSERT_TRUE(client_) << "no D-Bus connection to " << dbusPath_;
    }

    // The name of the D-Bus error a call fails with.
    template <class Call>
    static std::string errorOf(Call call) {
        try {
            call();
        } catch (const sdbus::Error& error) {
            return error.getName();
        }
        return "(no error)";
    }

    TempDir dir_;
    std::string dbusPath_ = dir_.path() + "/dbus.sock";
    std::string varlinkPath_ = dir_.path() + "/varlink.sock";
    CalcProcess calc_{dbusPath_, varlinkPath_};
    std::unique_ptr<Calc1Client> client_;
};

TEST_F(CalcDBus, AppliesEachOperation) {
    EXPECT_EQ(client_->Apply("add", 40, 2), 42);
    EXPECT_EQ(client_->Apply("subtract", 44, 2), 42);
    EXPECT_EQ(client_->Apply("multiply", 21, 2), 42);
    EXPECT_EQ(client_->Apply("divide", -9, 2), -4);
}

TEST_F(CalcDBus, ErrorsAreTheInterfacesNamedErrors) {
    EXPECT_EQ(errorOf([&] { (void)client_->Apply("divide", 1, 0); }),
              "org.svckit.example.Calc1.Error.DivisionByZero");
    EXPECT_EQ(errorOf([&] { (void)client_->Apply("multiply", INT64_MAX, 2); }),
              "org.svckit.example.Calc1.Error.Overflow");
    EXPECT_EQ(errorOf([&] {
                  (void)client_->Sum({INT64_MAX, 1});
              }),
              "org.svckit.example.Calc1.Error.Overflow");
    EXPECT_EQ(errorOf([&] { (void)client_->Apply("power", 1, 2); }),
              "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_EQ(errorOf([&] { (void)client_->Fibonacci(93); }), "org.freedesktop.DBus.Error.InvalidArgs");
    // and the service still answers
    EXPECT_EQ(client_->Apply("add", 1, 2), 3);
}

TEST_F(CalcDBus, SumsAndReturnsFibonacciAsOneArray) {
    EXPECT_EQ(client_->Sum({1, 2, 3, 36}), std::make_tuple(int64_t{42}, int64_t{4}));
    EXPECT_EQ(client_->Fibonacci(6), (std::vector<int64_t>{0, 1, 1, 2, 3, 5}));
    auto all = client_->Fibonacci(92);
    ASSERT_EQ(all.size(), 92u);
    EXPECT_EQ(all.back(), INT64_C(4660046610375530309)); // F(91)
}

TEST_F(CalcDBus, CallerIsThisProcessPinnedByItsPidfd) {
    auto [uid, gid, pid, cgroup, pinned] = client_->Caller();
    EXPECT_EQ(uid, ::geteuid());
    EXPECT_EQ(gid, ::getegid());
    EXPECT_EQ(pid, static_cast<uint32_t>(::getpid()));
    EXPECT_TRUE(pinned);
}

TEST_F(CalcDBus, SumFileReadsARegularFilePassedWithTheCall) {
    std::string path = dir_.path() + "/numbers";
    {
        svckit::UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        ASSERT_TRUE(out);
        ASSERT_EQ(::write(out.get(), "1\n2\n\n39\n", 8), 8);
    }
    svckit::UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(in);
    EXPECT_EQ(client_->SumFile(sdbus::UnixFd(in.get())), std::make_tuple(int64_t{42}, int64_t{3}));
}

TEST_F(CalcDBus, SumFileReadsAPipeAsItsDataArrives) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    svckit::UniqueFd readEnd(fds[0]);
    svckit::UniqueFd writeEnd(fds[1]);
    // The writer writes after the call has gone out and closes: the answer comes when the pipe ends.
    std::thread writer([&] {
        std::this_thread::sleep_for(100ms);
        (void)!::write(writeEnd.get(), "40\n", 3);
        (void)!::write(writeEnd.get(), "2\n", 2);
        writeEnd.reset();
    });
    auto result = client_->SumFile(sdbus::UnixFd(readEnd.get()));
    readEnd.reset();
    writer.join();
    EXPECT_EQ(result, std::make_tuple(int64_t{42}, int64_t{2}));
}

TEST_F(CalcDBus, SumFileWhoseCallerLeftBeforeThePipeEndedIsDroppedAndTheServiceServesOn) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    svckit::UniqueFd readEnd(fds[0]);
    svckit::UniqueFd writeEnd(fds[1]);
    uint64_t before = client_->Calls();
    {
        auto connection = sdbus::createDirectBusConnection("unix:path=" + dbusPath_);
        auto proxy = sdbus::createProxy(std::move(connection), sdbus::ServiceName(calcName),
                                        sdbus::ObjectPath(calcPath), sdbus::dont_run_event_loop_thread);
        auto call =
            proxy->createMethodCall(sdbus::InterfaceName(org::svckit::example::Calc1_proxy::INTERFACE_NAME),
                                    sdbus::MethodName("SumFile"));
        call << sdbus::UnixFd(readEnd.get());
        proxy->callMethodAsync(call, [](sdbus::MethodReply, std::optional<sdbus::Error>) {});
        // Replies come in call order: once this one is back, SumFile is waiting for its pipe.
        int64_t sum = 0;
        proxy->callMethod("Apply")
            .onInterface(org::svckit::example::Calc1_proxy::INTERFACE_NAME)
            .withArguments(std::string("add"), int64_t{1}, int64_t{1})
            .storeResultsTo(sum);
        EXPECT_EQ(sum, 2);
    } // the caller leaves, its SumFile unanswered
    readEnd.reset();
    ASSERT_EQ(::write(writeEnd.get(), "42\n", 3), 3);
    writeEnd.reset();
    // The sum is done (counted) with no one to answer; the service lives on and serves.
    EXPECT_TRUE(eventually([&] { return client_->Calls() == before + 2; }))
        << "Calls is " << client_->Calls();
    EXPECT_EQ(client_->Apply("add", 40, 2), 42);
}

TEST_F(CalcDBus, ComputedSignalReachesEveryConnectedPeer) {
    auto other = connectWithin(dbusPath_, 20s);
    ASSERT_TRUE(other);
    // Both are connected (a call on each has been answered) before the signal is emitted.
    EXPECT_EQ(other->Apply("add", 0, 0), 0);
    EXPECT_EQ(client_->Apply("add", 40, 2), 42);
    auto sawIt = [](Calc1Client& c) {
        for (const auto& [op, result] : c.computed())
            if (op == "add" && result == 42)
                return true;
        return false;
    };
    EXPECT_TRUE(eventually([&] { return sawIt(*client_); })) << "the caller got no Computed(add, 42)";
    EXPECT_TRUE(eventually([&] { return sawIt(*other); })) << "the other peer got no Computed(add, 42)";
}

TEST_F(CalcDBus, CallsCountsBothProtocolsAndAnnouncesEveryChange) {
    uint64_t before = client_->Calls();
    EXPECT_EQ(client_->Apply("add", 1, 1), 2);
    EXPECT_EQ(client_->Calls(), before + 1);
    EXPECT_TRUE(eventually([&] {
        auto seen = client_->callsAnnounced();
        return !seen.empty() && seen.back() == before + 1;
    })) << "no PropertiesChanged with Calls = "
        << before + 1;

    // A varlink call to the same service counts on the same Calculator, and is announced on D-Bus.
    auto varlink = svckit::varlink::Client::connect(varlinkPath_);
    ASSERT_TRUE(varlink) << varlink.error().message();
    auto reply = varlink->call("io.svckit.example.Calc.Sum", R"({"values":[1,2]})");
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ(reply->parameters()["sum"].int64(), 3);
    EXPECT_EQ(client_->Calls(), before + 2);
    EXPECT_TRUE(eventually([&] {
        auto seen = client_->callsAnnounced();
        return !seen.empty() && seen.back() == before + 2;
    })) << "no PropertiesChanged with Calls = "
        << before + 2 << " after the varlink call";
}

TEST_F(CalcDBus, ResetIsRootOnly) {
    EXPECT_EQ(client_->Apply("add", 1, 1), 2);
    if (::geteuid() != 0) {
        EXPECT_EQ(errorOf([&] { client_->Reset(); }), "org.freedesktop.DBus.Error.AccessDenied");
        EXPECT_GT(client_->Calls(), 0u);
        return;
    }
    // As root: Reset works here; a child that drops to another uid is refused.
    client_->Reset();
    EXPECT_EQ(client_->Calls(), 0u);
    EXPECT_EQ(client_->Apply("add", 1, 1), 2);
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0); // the socket (0666) must be reachable for uid 65534
    pid_t child = ::fork();
    if (child == 0) {
        if (::setgid(65534) < 0 || ::setuid(65534) < 0)
            ::_exit(3);
        try {
            auto connection = sdbus::createDirectBusConnection("unix:path=" + dbusPath_);
            auto proxy = sdbus::createProxy(std::move(connection), sdbus::ServiceName(calcName),
                                            sdbus::ObjectPath(calcPath), sdbus::dont_run_event_loop_thread);
            proxy->callMethod("Reset").onInterface(org::svckit::example::Calc1_proxy::INTERFACE_NAME);
            ::_exit(1); // not refused
        } catch (const sdbus::Error& error) {
            ::_exit(error.getName() == "org.freedesktop.DBus.Error.AccessDenied" ? 0 : 2);
        }
    }
    ASSERT_GT(child, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0)
        << "1: Reset was not refused; 2: another error; 3: could not drop to uid 65534";
    EXPECT_EQ(client_->Calls(), 1u) << "a refused Reset must leave the counter alone";
}

} // namespace
