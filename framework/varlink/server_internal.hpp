// framework/varlink/server_internal.hpp — the varlink server's own state (ServerImpl), shared by its source
// files: server.cpp (registry, accept, limits, life cycle, the public glue), connection.cpp (each client
// connection) and builtin.cpp (org.varlink.service). Private to the library.
#pragma once

#include "base/private.hpp"

#include <svckit/event_loop.hpp>
#include <svckit/varlink.hpp>

#include <svckit/internal/accept_pause.hpp>
#include <svckit/internal/io_batch.hpp>
#include <svckit/internal/varlink_protocol.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace svckit::varlink {

namespace detail {
class Connection;
}

// Bytes read from a connection at once: the size of the server's read buffer.
inline constexpr size_t readChunk = 64 * 1024;
// A message (or a buffer) at least this large is a "large input": once it is done with, the memory it took is
// given back (the parser's, the C library's), which is not done per call.
inline constexpr size_t largeInput = 1024 * 1024;

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct InterfaceEntry {
    std::string name;
    std::string description;
    StringMap<Method> methods;
};

class ServerImpl {
public:
    ServerImpl(EventLoop& loop, ServerOptions options)
        : loop_(loop), options_(std::move(options)),
          acceptPause_(loop, "varlink", [this](bool on) { setAccepting(on); }) {}
    ~ServerImpl();

    Result<void> init();
    Result<void> addInterface(Interface interface);
    Result<void> listen(UniqueFd fd, SocketSpec spec);
    Result<void> addConnection(UniqueFd fd, const SocketSpec& spec);
    void onAccept(size_t listenerIndex);
    void closed(detail::Connection& connection);
    // UpgradedConnection::hold: counts as a connection until it is destroyed (on the loop's thread).
    std::shared_ptr<void> holdUpgraded();
    [[nodiscard]] bool idle() const noexcept { return connections_.empty() && upgradedHeld_ == 0; }
    void stopAccepting() noexcept;
    void setAccepting(bool on);
    [[nodiscard]] bool connectionWaiting() const noexcept;
    Result<void> setIdleCallback(std::chrono::microseconds after, std::function<void()> onIdle);
    void onIdleTimer();
    void armIdleTimer();
    void whenDrained(std::function<void()> onDrained);
    [[nodiscard]] bool drained() const;
    void checkDrained();

    [[nodiscard]] const InterfaceEntry* findInterface(std::string_view name) const {
        auto it = interfaces_.find(name);
        return it == interfaces_.end() ? nullptr : &it->second;
    }
    // Memory (docs/varlink-engine.md, "Memory"). Each read goes into readBuffer_, shared by the connections:
    // the messages it completes are parsed in place, and a connection keeps only what remains of an
    // incomplete one (counted in counters_.inputBytesHeld, within options_.maxInputBytesTotal).
    // Allocated on the first read and not zeroed: the kernel maps its pages as reads reach them (a small
    // first call touches one page of the 16, which counts at start-up: bench/activation).
    [[nodiscard]] std::span<char> readBuffer() {
        if (!readBuffer_) [[unlikely]]
            readBuffer_ = std::make_unique_for_overwrite<char[]>(readChunk);
        return {readBuffer_.get(), readChunk};
    }
    // Incomplete input on all connections passed the budget: closes the connections holding the most until it
    // fits again.
    void enforceInputBudget();
    // After a large input (a message, a buffer of one): the parser's memory goes back, and at the end of the
    // pass the C library's (malloc_trim: glibc keeps freed memory below its dynamic thresholds).
    void releaseParserMemory() noexcept;
    void trimAfterPass() noexcept { trimPending_ = true; }

    // "iface.Method" to its registered method, or nullptr. The method found last is remembered: a client
    // mostly calls the same method again, and comparing the name costs less than hashing it twice.
    [[nodiscard]] const Method* findMethod(std::string_view name) {
        if (lastMethod_ && name == lastMethodName_)
            return lastMethod_;
        return findMethodSlow(name);
    }

    EventLoop& loop_;
    ServerOptions options_;
    ServerCounters counters_;
    protocol::JsonAllocator allocator_;
    StringMap<InterfaceEntry> interfaces_;
    std::vector<std::string> interfaceNames_; // sorted, as GetInfo lists them (sd-varlink sorts them too)
    struct Listener {
        UniqueFd fd;
        SocketSpec spec;
        EventSource source;
    };
    std::vector<std::unique_ptr<Listener>> listeners_;
    // Out of fds: the listeners are off until a connection closes or its timer runs out.
    AcceptPause acceptPause_;
    std::unordered_map<detail::Connection*, std::shared_ptr<detail::Connection>> connections_;
    std::unordered_map<uid_t, unsigned> perUid_;
    size_t callsInFlight_ = 0; // deferred calls without their final reply, on open connections
    size_t upgradedHeld_ = 0;  // connections handed over by an upgrade whose hold lives
    // What a hold reaches the server through; reset first when the server goes, so a hold that outlives it
    // does nothing.
    std::shared_ptr<ServerImpl*> self_ = std::make_shared<ServerImpl*>(this);
    // The connections' sockets: one loop source, one epoll_wait per wake-up for every ready connection, the
    // dirty ones serviced once at the end of the pass, closed ones kept alive until then.
    std::unique_ptr<IoBatch> batch_;

    EventSource idleTimer_;
    std::chrono::microseconds idleAfter_{};
    std::function<void()> onIdle_;
    std::function<void()> onDrained_;

private:
    const Method* findMethodSlow(std::string_view name);
    void afterPass();

    std::unique_ptr<char[]> readBuffer_;
    bool trimPending_ = false;

    std::string lastMethodName_;
    const Method* lastMethod_ = nullptr;
};

} // namespace svckit::varlink
