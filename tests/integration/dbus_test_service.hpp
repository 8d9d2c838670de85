// tests/integration/dbus_test_service.hpp — the service the D-Bus endpoint tests run, and their clients.
//
// ProbeService serves one object, org.svckit.test.Probe1 at /org/svckit/test/Probe1 (its adaptor generated
// from dbus/org.svckit.test.Probe1.xml by sdbus-c++-xml2cpp at build time), on one socket of Protocol::DBus,
// "dbus". It runs in a forked child through svckit::run<ProbeService>() with --listen=PATH; `probeConfig`,
// set by the test before the fork, shapes its spec. The tests are its clients: sdbus-c++ proxies on a direct
// connection, raw sockets speaking the handshake by hand, busctl.
#pragma once

#include <svckit/authorization.hpp>
#include <svckit/dbus.hpp>
#include <svckit/identity.hpp>
#include <svckit/service.hpp>
#include <svckit/socket_options.hpp>
#include <svckit/unique_fd.hpp>

#include "../unit/activation_test_support.hpp"
#include "child_process.hpp"

#include "org.svckit.test.Probe1.adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <format>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace svckit::test {

using namespace std::chrono_literals;

inline constexpr const char* probePath = "/org/svckit/test/Probe1";
inline constexpr const char* probeInterface = "org.svckit.test.Probe1";
inline constexpr const char* probeName = "org.svckit.test"; // ServiceSpec::dbus.name: the signals' sender
inline constexpr uid_t allowedUid = 12345;                  // the only uid the guarded members allow

struct ProbeConfig {
    std::string address;
    bool acceptFds = false;
    std::chrono::milliseconds authenticationTimeout{10000};
    unsigned maxConnections = 64;
    bool accept = false; // Accept=yes: the service is handed one connection
    std::chrono::milliseconds exitOnIdle{0};
    unsigned maxConnectionsPerUid = 1024;
};
inline ProbeConfig probeConfig;

class ProbeService;

class ProbeObject final : public dbus::Object<org::svckit::test::Probe1_adaptor> {
public:
    ProbeObject(dbus::Binding binding, ProbeService* service)
        : Object(std::move(binding)), service_(service) {}

private:
    std::tuple<uint32_t, int32_t, bool, int32_t> Whoami() override {
        const PeerIdentity& who = caller();
        int32_t pidfdPid = -1;
        if (who.pidfd)
            if (auto pid = pidOfPidfd(who.pidfd.get()))
                pidfdPid = *pid;
        return {who.uid, who.pid, who.pinned(), pidfdPid};
    }
    std::string Echo(const std::string& text) override { return text; }
    void FailDBus(const std::string& text) override {
        throw sdbus::Error(sdbus::Error::Name{"org.svckit.test.Error.Custom"}, text);
    }
    void FailStd(const std::string& text) override { throw std::runtime_error(text); }
    std::string Restricted() override { return "restricted"; }
    uint64_t SizeOf(const sdbus::UnixFd& file) override {
        struct stat st {};
        if (::fstat(file.get(), &st) < 0)
            throw std::runtime_error("fstat failed");
        return static_cast<uint64_t>(st.st_size);
    }
    void Sleep(const uint32_t& ms) override {
        std::fprintf(stderr, "probe: sleeping %u ms\n", ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    // The pending result is kept by the instance, so it never outlives its connection (an sdbus::Result
    // refers to its sdbus-c++ connection): when the peer leaves first, it is dropped unanswered with the
    // instance.
    void Later(sdbus::Result<uint32_t>&& result, uint32_t ms) override;
    void LaterBlob(sdbus::Result<std::string>&& result, uint32_t bytes) override;
    void Broadcast(const std::string& text, const uint32_t& count) override;
    uint32_t Instances() override;
    uint32_t Count() override { return count_; }
    void Count(const uint32_t& value) override {
        count_ = value;
        object().emitPropertiesChangedSignal(sdbus::InterfaceName{INTERFACE_NAME},
                                             {sdbus::PropertyName{"Count"}});
    }
    std::string Secret() override { return "hidden"; }

    ProbeService* service_;
    uint32_t count_ = 0;
    std::vector<std::shared_ptr<sdbus::Result<uint32_t>>> pending_;
    std::vector<std::shared_ptr<sdbus::Result<std::string>>> pending_blobs_;
    std::vector<EventSource> timers_; // destroyed before the results they would answer
};

class ProbeService final : public Service {
public:
    ProbeService() : Service(spec()) {
        addDBus<ProbeObject>(probePath,
                             {.policy = Policy::anyone(),
                              .methods = {{"Restricted", Policy::uids({allowedUid})},
                                          {"org.svckit.test.Probe1.Secret", Policy::uids({allowedUid})}}},
                             this);
    }

private:
    static ServiceSpec spec() {
        ServiceSpec spec{
            .name = "svckit-test-dbus",
            .description = "svckit D-Bus endpoint test",
            .version = "1",
            .sockets = {SocketSpec{.name = "dbus",
                                   .address = probeConfig.address,
                                   .protocol = Protocol::DBus,
                                   .accept = probeConfig.accept,
                                   .passPidfd = true,
                                   .acceptFileDescriptors = probeConfig.acceptFds,
                                   .limits = {.maxConnections = probeConfig.maxConnections}}},
            .exitOnIdle = probeConfig.exitOnIdle,
        };
        spec.dbus = {.name = probeName,
                     .authenticationTimeout = probeConfig.authenticationTimeout,
                     .maxConnectionsPerUid = probeConfig.maxConnectionsPerUid};
        return spec;
    }
};

inline void ProbeObject::Later(sdbus::Result<uint32_t>&& result, uint32_t ms) {
    auto pending = std::make_shared<sdbus::Result<uint32_t>>(std::move(result));
    pending_.push_back(pending);
    auto timer = service_->loop().addTimer(std::chrono::milliseconds(ms), [pending, ms] {
        try {
            pending->returnResults(ms);
        } catch (const sdbus::Error& e) {
            std::fprintf(stderr, "probe: the reply of Later failed: %s\n", e.what());
        }
    });
    if (timer)
        timers_.push_back(std::move(*timer));
}

inline void ProbeObject::LaterBlob(sdbus::Result<std::string>&& result, uint32_t bytes) {
    auto pending = std::make_shared<sdbus::Result<std::string>>(std::move(result));
    pending_blobs_.push_back(pending);
    auto timer = service_->loop().addTimer(std::chrono::milliseconds(1), [this, pending, bytes] {
        try {
            pending->returnResults(std::string(bytes, 'x'));
            flush(); // answered outside a handler: the rest of a reply the socket could not take goes out
        } catch (const sdbus::Error& e) {
            std::fprintf(stderr, "probe: the reply of LaterBlob failed: %s\n", e.what());
        }
    });
    if (timer)
        timers_.push_back(std::move(*timer));
}

inline void ProbeObject::Broadcast(const std::string& text, const uint32_t& count) {
    for (uint32_t i = 0; i < count; ++i)
        service_->forEachDBus<ProbeObject>(probePath, [&](ProbeObject& object) { object.emitPing(text); });
}

inline uint32_t ProbeObject::Instances() {
    uint32_t count = 0;
    service_->forEachDBus<ProbeObject>(probePath, [&](ProbeObject&) { ++count; });
    return count;
}

// The service in a child process: run<ProbeService>(--listen=PATH), stderr to a file; or, with `passFds`,
// run<ProbeService>() with them on 3.. as systemd passes them (named "dbus").
class ProbeChild : public ChildProcess {
public:
    explicit ProbeChild(const std::string& dir, std::vector<UniqueFd> passFds = {}) {
        err_ = dir + "/stderr";
        pid_ = ::fork();
        if (pid_ != 0)
            return;
        int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ::dup2(err, 2);
        bool activated = !passFds.empty();
        std::string names;
        for (size_t i = 0; i < passFds.size(); ++i)
            names += i == 0 ? "dbus" : ":dbus";
        size_t n = becomeActivated(std::move(passFds), names);
        // As after exec: the test's own fds (its clients' ends) are not the service's.
        ::close_range(3 + static_cast<unsigned>(n), ~0U, 0);
        std::vector<std::string> args{"svckit-test-dbus"};
        if (!activated)
            args.push_back(std::format("--listen={}", probeConfig.address));
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        ::setenv("SVCKIT_LOG_LEVEL", "debug", 1);
        int code = run<ProbeService>(static_cast<int>(args.size()), argv.data());
        std::fflush(nullptr);
        ::_exit(code);
    }
    [[nodiscard]] std::string err() const { return readFile(err_); }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    // The fds the service holds now.
    [[nodiscard]] size_t openFds() const {
        size_t n = 0;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(std::format("/proc/{}/fd", pid_), ec)) {
            (void)entry;
            ++n;
        }
        return n;
    }

private:
    std::string err_;
};

// Polls `condition` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 30000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return condition();
}

// A client: an sdbus-c++ direct connection to the socket and a proxy of the probe object on it. The
// connection authenticates in its constructor (blocking, against a service in another process).
struct ProbeClient {
    explicit ProbeClient(const std::string& socketPath)
        : connection(sdbus::createDirectBusConnection(std::format("unix:path={}", socketPath))),
          proxy(
              sdbus::createProxy(*connection, sdbus::ServiceName{probeName}, sdbus::ObjectPath{probePath})) {}

    std::string echo(const std::string& text) {
        std::string out;
        proxy->callMethod("Echo").onInterface(probeInterface).withArguments(text).storeResultsTo(out);
        return out;
    }
    uint32_t instances() {
        uint32_t count = 0;
        proxy->callMethod("Instances").onInterface(probeInterface).storeResultsTo(count);
        return count;
    }
    // Processes what arrived (signals) until `condition` holds or the timeout passes.
    bool processUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 30000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!condition() && std::chrono::steady_clock::now() < deadline) {
            try {
                // One message at a time: the service may close the connection right after what is awaited.
                if (connection->processPendingEvent())
                    continue;
            } catch (const sdbus::Error&) {
                return condition(); // disconnected
            }
            auto poll = connection->getEventLoopPollData();
            pollfd p{.fd = poll.fd, .events = static_cast<short>(poll.events), .revents = 0};
            (void)::poll(&p, 1, 20);
        }
        return condition();
    }

    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<sdbus::IProxy> proxy;
};

// Connects a plain AF_UNIX stream socket (for clients that speak the handshake by hand).
inline UniqueFd connectRaw(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0)
        return UniqueFd();
    return fd;
}

inline bool sendAll(int fd, std::string_view data) {
    return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// The authentication a client sends: EXTERNAL with its uid (hex-encoded decimal), then BEGIN.
inline std::string authExternal() {
    std::string uid = std::to_string(::getuid());
    std::string hex;
    for (char c : uid)
        hex += std::format("{:02x}", static_cast<unsigned char>(c));
    return std::format("AUTH EXTERNAL {}\r\n", hex);
}

// Whether the service closed the connection (EOF or reset, after reading what it sent) within the timeout
// (0: whether it has closed it by now).
inline bool closedByService(int fd, std::chrono::milliseconds timeout = 30000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, timeout.count() == 0 ? 0 : 50) <= 0)
            continue;
        char buffer[4096];
        ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
}

// Runs a command (through sh), returns its exit status and output (stdout and stderr).
inline std::pair<int, std::string> runCommand(const std::string& command) {
    std::string output;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe)
        return {-1, ""};
    char buffer[4096];
    while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe))
        output.append(buffer, n);
    int status = ::pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

} // namespace svckit::test
