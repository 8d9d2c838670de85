// tests/integration/varlink_test_support.hpp — a varlink Server on a real AF_UNIX socket with its EventLoop
// in a thread of its own (the test interface org.example.test, plus methods a test adds), and a blocking raw
// client that writes frames and reads NUL-terminated replies. Shared by the varlink integration tests.
#pragma once

#include <svckit/varlink.hpp>

#include <svckit/event_loop.hpp>

#include "../unit/activation_test_support.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <format>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace svckit::varlink::harness {

using namespace std::chrono_literals;

constexpr std::string_view testDescription = "# A test interface.\ninterface org.example.test\n\n"
                                             "method Echo(text: string) -> (text: string)\n";

struct Snapshot {
    uint64_t connectionsAccepted = 0;
    uint64_t connectionsRefused = 0;
    uint64_t connectionsClosed = 0;
    uint64_t calls = 0;
    uint64_t protocolErrors = 0;
    uint64_t handlerFailures = 0;
    uint64_t overflowCloses = 0;
    uint64_t connectionsUpgraded = 0;
    uint64_t fdLimitCloses = 0;
};

// What a test adds to the server, run on the loop's thread: methods of its own for org.example.test (made
// once the server exists, so they can use it), a step before the loop runs, and one after it stopped (to free
// event sources of its own while the loop still exists).
struct Extras {
    std::function<std::vector<Method>(Server&, EventLoop&)> methods = {};
    std::function<void(Server&, EventLoop&)> setup = {};
    std::function<void()> teardown = {};
};

// The test interface, served by a Server on a listening socket in a temporary directory.
class TestServer {
public:
    explicit TestServer(ServerOptions options = {}, bool socketAcceptsFds = false, Extras extras = {})
        : socketAcceptsFds_(socketAcceptsFds), extras_(std::move(extras)) {
        char pattern[] = "/tmp/svckit-varlink-XXXXXX";
        dir_ = ::mkdtemp(pattern);
        path_ = dir_ + "/varlink.sock";
        stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        std::promise<std::string> ready;
        auto started = ready.get_future();
        thread_ = std::thread(
            [this, options = std::move(options), &ready]() mutable { run(std::move(options), ready); });
        std::string error = started.get();
        if (!error.empty()) {
            thread_.join();
            throw std::runtime_error(error);
        }
    }
    ~TestServer() {
        stop();
        std::filesystem::remove_all(dir_);
    }

    // Stops the loop; counters are read after this.
    Snapshot stop() {
        if (thread_.joinable()) {
            uint64_t one = 1;
            (void)::write(stop_.get(), &one, sizeof(one));
            thread_.join();
        }
        return snapshot_;
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    std::atomic<int> onewayCalls{0};

private:
    void run(ServerOptions options, std::promise<std::string>& ready) {
        auto loop = EventLoop::create();
        if (!loop)
            return ready.set_value(loop.error().message());
        options.info =
            ServerInfo{.vendor = "svckit", .product = "test", .version = "1", .url = "https://example.org"};
        auto server = Server::create(*loop, std::move(options));
        if (!server)
            return ready.set_value(server.error().message());
        std::vector<EventSource> timers;
        std::vector<Method> extraMethods;
        if (extras_.methods)
            extraMethods = extras_.methods(*server, *loop);
        std::vector<Method> methods{
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
            // Answers after `ms` milliseconds, from a timer.
            Method{.name = "Later",
                   .handler =
                       [&](Call& call) {
                           std::string text(call.parameters()["text"].string().value_or(""));
                           auto ms = call.parameters()["ms"].int64().value_or(50);
                           auto deferred = std::make_shared<DeferredCall>(call.defer());
                           auto timer = loop->addTimer(std::chrono::milliseconds(ms), [deferred, text] {
                               (void)deferred->reply([&](JsonWriter& w) { w.field("text", text); });
                           });
                           if (timer)
                               timers.push_back(std::move(*timer));
                       }},
            Method{.name = "Count",
                   .handler =
                       [](Call& call) {
                           auto n = call.parameters()["n"].int64().value_or(0);
                           for (int64_t i = 0; i < n; ++i)
                               (void)call.replyContinues([&](JsonWriter& w) { w.field("i", i); });
                           (void)call.reply([&](JsonWriter& w) { w.field("i", n); });
                       },
                   .requiresMore = true},
            Method{.name = "Throw", .handler = [](Call&) { throw std::runtime_error("handler failed"); }},
            Method{.name = "Notify", .handler = [this](Call&) { ++onewayCalls; }},
            // Writes "hi" to every fd passed with the call.
            Method{.name = "WriteToFds",
                   .handler =
                       [](Call& call) {
                           for (UniqueFd& fd : call.fds())
                               (void)!::write(fd.get(), "hi", 2);
                           (void)call.reply([&](JsonWriter& w) { w.field("count", call.fds().size()); });
                       },
                   .acceptsFds = true},
            Method{.name = "CountFds",
                   .handler =
                       [](Call& call) {
                           (void)call.reply([&](JsonWriter& w) { w.field("count", call.fds().size()); });
                       }},
            Method{.name = "Big",
                   .handler =
                       [](Call& call) {
                           std::string blob(
                               static_cast<size_t>(call.parameters()["size"].int64().value_or(0)), 'x');
                           (void)call.reply([&](JsonWriter& w) { w.field("blob", blob); });
                       }},
            // Where the server stands, for tests that wait for it to have seen something (a close, a call).
            Method{.name = "State",
                   .handler =
                       [&server](Call& call) {
                           (void)call.reply([&](JsonWriter& w) {
                               w.field("connections", server->connectionCount());
                               w.field("inFlight", server->callsInFlight());
                               w.field("calls", server->counters().calls);
                           });
                       }},
        };
        for (Method& method : extraMethods)
            methods.push_back(std::move(method));
        auto added = server->addInterface(Interface{.name = "org.example.test",
                                                    .description = std::string(testDescription),
                                                    .methods = std::move(methods)});
        if (!added)
            return ready.set_value(added.error().message());

        UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0 ||
            ::listen(listener.get(), 128) < 0)
            return ready.set_value(std::format("bind/listen: {}", std::strerror(errno)));
        SocketSpec spec;
        spec.name = "varlink";
        spec.address = path_;
        spec.passPidfd = false;
        spec.acceptFileDescriptors = socketAcceptsFds_;
        if (auto r = server->listen(std::move(listener), spec); !r)
            return ready.set_value(r.error().message());

        auto stopSource = loop->addIo(stop_.get(), EPOLLIN, [&](uint32_t) { loop->exit(0); });
        if (!stopSource)
            return ready.set_value(stopSource.error().message());
        if (extras_.setup)
            extras_.setup(*server, *loop);
        ready.set_value("");
        (void)loop->run();
        const ServerCounters& c = server->counters();
        snapshot_ = Snapshot{.connectionsAccepted = c.connectionsAccepted,
                             .connectionsRefused = c.connectionsRefused,
                             .connectionsClosed = c.connectionsClosed,
                             .calls = c.calls,
                             .protocolErrors = c.protocolErrors,
                             .handlerFailures = c.handlerFailures,
                             .overflowCloses = c.overflowCloses,
                             .connectionsUpgraded = c.connectionsUpgraded,
                             .fdLimitCloses = c.fdLimitCloses};
        timers.clear();
        if (extras_.teardown)
            extras_.teardown();
    }

    bool socketAcceptsFds_;
    Extras extras_;
    std::string dir_;
    std::string path_;
    UniqueFd stop_;
    std::thread thread_;
    Snapshot snapshot_;
};

// A blocking client that writes raw bytes and reads NUL-terminated messages.
class Client {
public:
    explicit Client(const std::string& path) {
        fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
        if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0)
            throw std::runtime_error(std::format("connect: {}", std::strerror(errno)));
    }
    // A client on an already-connected socket (e.g. one end of a socketpair).
    explicit Client(UniqueFd fd) : fd_(std::move(fd)) {}

    // Writes the bytes as they are (include the NULs).
    bool sendRaw(std::string_view bytes) {
        while (!bytes.empty()) {
            ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            bytes.remove_prefix(static_cast<size_t>(n));
        }
        return true;
    }
    bool call(std::string_view json) { return sendRaw(std::string(json) + '\0'); }

    // The next message, or nullopt on end of stream or timeout.
    std::optional<std::string> receive(std::chrono::milliseconds timeout = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto nul = buffer_.find('\0'); nul != std::string::npos) {
                std::string message = buffer_.substr(0, nul);
                buffer_.erase(0, nul + 1);
                return message;
            }
            if (!readMore(deadline))
                return std::nullopt;
        }
    }
    // The next `size` bytes as they come (no framing: for what follows an upgrade), or nullopt.
    std::optional<std::string> receiveRaw(size_t size, std::chrono::milliseconds timeout = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (buffer_.size() < size)
            if (!readMore(deadline))
                return std::nullopt;
        std::string bytes = buffer_.substr(0, size);
        buffer_.erase(0, size);
        return bytes;
    }
    // Whether the server closed the connection (without sending anything more) within the timeout.
    bool closedByServer(std::chrono::milliseconds timeout = 5000ms) {
        auto message = receive(timeout);
        return !message && eof_;
    }
    // Reads and drops whatever arrives until the server closes the connection; whether it did in time.
    bool drainUntilClosed(std::chrono::milliseconds timeout = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (readMore(deadline))
            buffer_.clear();
        return eof_;
    }
    // Whether the server closed the connection: a read saw end of stream (not a timeout).
    [[nodiscard]] bool endOfStream() const { return eof_; }
    [[nodiscard]] int fd() const { return fd_.get(); }

private:
    bool readMore(std::chrono::steady_clock::time_point deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left <= 0ms)
            return false;
        pollfd p{.fd = fd_.get(), .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char chunk[65536];
        ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        buffer_.append(chunk, static_cast<size_t>(n));
        return true;
    }

    UniqueFd fd_;
    std::string buffer_;
    bool eof_ = false;
};

// The reply parsed, for assertions.
struct Reply {
    JsonDocument doc;
    JsonView root() const { return doc.root(); }
    std::string error() const { return std::string(root()["error"].string().value_or("")); }
    std::string text() const { return std::string(root()["parameters"]["text"].string().value_or("<none>")); }
};

inline Reply parse(const std::optional<std::string>& message) {
    if (!message)
        throw std::runtime_error("no reply");
    auto doc = JsonDocument::parse(*message);
    if (!doc)
        throw std::runtime_error(doc.error().message() + ": " + *message);
    return Reply{std::move(*doc)};
}

// Polls `condition` every 10 ms until it holds or `timeout` has passed; returns whether it held.
template <typename Condition>
bool waitFor(Condition&& condition, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// What the test server's State method reports; -1 in each field when the call failed.
struct ServerState {
    int64_t connections = -1;
    int64_t inFlight = -1;
    int64_t calls = -1;
};

inline ServerState serverState(Client& client) {
    if (!client.call(R"({"method":"org.example.test.State"})"))
        return {};
    auto message = client.receive();
    if (!message)
        return {};
    Reply reply = parse(message);
    JsonView p = reply.root()["parameters"];
    return ServerState{.connections = p["connections"].int64().value_or(-1),
                       .inFlight = p["inFlight"].int64().value_or(-1),
                       .calls = p["calls"].int64().value_or(-1)};
}

inline std::string echo(std::string_view text) {
    return std::format(R"({{"method":"org.example.test.Echo","parameters":{{"text":"{}"}}}})", text);
}

} // namespace svckit::varlink::harness
