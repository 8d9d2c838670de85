#include <svckit/varlink.hpp>

#include <svckit/log.hpp>
#include <svckit/message.hpp>

#include <svckit/internal/linux_socket.hpp>
#include "varlink/framing.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yyjson.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <exception>
#include <initializer_list>
#include <optional>
#include <system_error>
#include <unordered_map>

namespace svckit::varlink {
namespace {

constexpr size_t readChunk = 64 * 1024;
// Reads per wake-up before other connections get their turn (level-triggered: the rest is read next time).
constexpr int readsPerWakeup = 16;
constexpr int acceptsPerWakeup = 64;
// Containers nested deeper than this close the connection: sd-json's limit (the message object is level 1).
constexpr size_t maxJsonDepth = 2048;
// Ready connections taken from the server's epoll per dispatch (the rest stay ready for the next one).
constexpr int readyPerWakeup = 64;

constexpr std::string_view serviceInterfaceName = "org.varlink.service";
constexpr std::string_view serviceInterfaceDescription =
    R"(# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()

# Method is expected to be called with 'upgrade' set to true, but wasn't
error ExpectedUpgrade ()
)";

// sd-varlink serves io.systemd on every server, for its errors; svckit sends io.systemd.System too.
constexpr std::string_view systemdInterfaceName = "io.systemd";
constexpr std::string_view systemdInterfaceDescription =
    R"(# Errors of systemd's varlink implementation, which svckit's engine sends too.
interface io.systemd

# The connection is gone (reported locally by clients; never sent).
error Disconnected()

# A method call timed out (reported locally by clients; never sent).
error TimedOut()

# The peer broke the protocol (reported locally by clients; never sent).
error Protocol()

# A Linux system error: the origin ("linux"), the errno name (ENOENT, ...) and number.
error System(origin: ?string, errnoName: ?string, errno: ?int)
)";

bool isValidInterfaceName(std::string_view name) {
    // Reverse-domain: at least two dot-separated labels of [A-Za-z0-9-], the first starting with a letter.
    if (name.empty() || name.size() > 255 || name.find('.') == std::string_view::npos)
        return false;
    bool labelStart = true;
    for (char c : name) {
        if (c == '.') {
            if (labelStart)
                return false;
            labelStart = true;
            continue;
        }
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool ok = alpha || (c >= '0' && c <= '9') || c == '-';
        if (!ok || (labelStart && c == '-'))
            return false;
        labelStart = false;
    }
    return !labelStart && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'));
}

bool isValidMethodName(std::string_view name) {
    if (name.empty() || name[0] < 'A' || name[0] > 'Z')
        return false;
    return std::ranges::all_of(name, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    });
}

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

// The errno a failed handler is reported with.
int errnoOfException(std::exception_ptr exception) noexcept {
    try {
        std::rethrow_exception(exception);
    } catch (const std::system_error& e) {
        if (e.code().category() == std::generic_category() || e.code().category() == std::system_category())
            return e.code().value() > 0 ? e.code().value() : EIO;
    } catch (...) {
    }
    return EIO;
}

void writeSystemError(JsonWriter& w, int code) {
    w.field("origin", "linux");
    w.field("errno", code);
    if (const char* name = ::strerrorname_np(code))
        w.field("errnoName", name);
}

// Whether the JSON text escapes a NUL in a string (backslash, "u0000"): sd-json refuses NUL in strings, so
// the message is a protocol error. A backslash escapes the next character when it ends an odd run of
// backslashes.
bool hasEscapedNul(const char* data, size_t size) noexcept {
    const char* end = data + size;
    const char* p = data;
    while ((p = static_cast<const char*>(std::memchr(p, '\\', static_cast<size_t>(end - p))))) {
        const char* run = p;
        while (p < end && *p == '\\')
            ++p;
        if (((p - run) & 1) && end - p >= 5 && std::memcmp(p, "u0000", 5) == 0)
            return true;
    }
    return false;
}

// Whether containers nest deeper than `limit` (a walk over yyjson's flat value array, in document order).
bool nestsDeeperThan(yyjson_doc* doc, size_t limit) {
    size_t count = yyjson_doc_get_val_count(doc);
    if (count <= limit)
        return false; // each level needs a value of its own
    yyjson_val* value = yyjson_doc_get_root(doc);
    yyjson_val* end = value + count;
    std::vector<yyjson_val*> open; // where each open container ends
    for (; value < end; ++value) {
        while (!open.empty() && value >= open.back())
            open.pop_back();
        if (yyjson_is_ctn(value)) {
            open.push_back(unsafe_yyjson_get_next(value));
            if (open.size() > limit)
                return true;
        }
    }
    return false;
}

// The first member of `parameters` that is not one of `known`: the built-in methods check their parameters as
// sd-varlink checks every call against its interface, where an unknown field is InvalidParameter.
std::optional<std::string_view> unknownParameter(JsonView parameters,
                                                 std::initializer_list<std::string_view> known) {
    std::optional<std::string_view> unknown;
    parameters.forEachMember([&](std::string_view key, JsonView) {
        if (!unknown && std::ranges::find(known, key) == known.end())
            unknown = key;
    });
    return unknown;
}

} // namespace

namespace detail {

// One client connection: its input buffer, its output buffer, and the queue that keeps replies in call order.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(ServerImpl& server, UniqueFd fd, bool acceptFds, bool plainReads, PeerIdentity peer)
        : server_(server), fd_(std::move(fd)), acceptFds_(acceptFds), plainReads_(plainReads),
          peer_(std::move(peer)) {}

    Result<void> start();
    void onIo(uint32_t revents);
    // Flushes output, resumes input held back by the output limit, updates the epoll events.
    void service();
    void close();

    Result<void> emit(uint64_t id, const CallFlags& flags, ReplyKind kind, std::string_view name,
                      WriteFn write, void* context);
    Result<void> emitUpgrade(uint64_t id, const CallFlags& flags, WriteFn write, void* context,
                             UpgradeHandler then);
    // A call was deferred (pins its place in the reply order), and a deferred call got its final reply.
    void deferred(uint64_t id, const CallFlags& flags);
    void deferredDone() noexcept;
    void abandon(uint64_t id, const CallFlags& flags) noexcept;

    [[nodiscard]] bool closed() const noexcept { return closed_; }
    [[nodiscard]] uid_t uid() const noexcept { return peer_.uid; }
    // Room for more replies: the unsent output is within the soft limit (the point where input is held back).
    [[nodiscard]] bool writable() const noexcept;
    // Calls `then` once, from the loop, when the connection is writable(); dropped uncalled if it closes
    // first.
    void whenWritable(std::function<void()> then);
    // Every reply written, none awaited, no hand-over pending.
    [[nodiscard]] bool drained() const noexcept {
        return outBegin_ == out_.size() && slots_.empty() && deferredCount_ == 0 && !upgradeHandler_;
    }
    bool dirty = false;

private:
    struct Slot {
        uint64_t id;
        std::string buffered; // replies written before this call reached the head of the queue
        bool finished = false;
    };

    void readInput();
    void processInput();
    void handleMessage(const char* data, size_t size);
    void dispatch(std::string_view method, JsonView parameters, CallFlags flags);
    void flush();
    void protocolError(std::string_view what);
    void handOver();
    void advanceQueue();
    [[nodiscard]] size_t pendingOutput() const noexcept { return out_.size() - outBegin_ + slotBytes_; }
    void markDirty();
    void notifyWritable();
    Result<void> watch(uint32_t events);

    ServerImpl& server_;
    UniqueFd fd_;
    bool acceptFds_;
    // A stream that takes no fds and carries no per-message identity (SO_PASSCRED and SO_PASSPIDFD are off):
    // read with plain recv(), without a control buffer. fds a peer sends anyway are dropped by the kernel
    // before they reach this process (and where SO_PASSRIGHTS is off, the peer's sendmsg() already fails).
    bool plainReads_;
    PeerIdentity peer_;
    uint32_t events_ = 0; // what the server's epoll waits for on fd_ (0: not registered)
    bool inIo_ = false;   // onIo() is running and will service() at its end

    std::vector<char> in_;
    size_t inBegin_ = 0;   // start of the first unprocessed message
    size_t inScanned_ = 0; // no NUL before this offset
    size_t inEnd_ = 0;
    bool eof_ = false;    // nothing more is read: the peer shut down its side, or it broke the protocol
    bool failed_ = false; // the peer broke the protocol: replies to its earlier calls go out, then it closes
    bool heldBack_ = false; // input processing stopped (output soft limit, or an upgrade call in progress)

    std::string out_;
    size_t outBegin_ = 0;
    std::deque<Slot> slots_; // calls answered out of order wait here; empty in the common case
    size_t slotBytes_ = 0;
    std::vector<UniqueFd> fds_; // received, not yet given to a call
    std::vector<UniqueFd> callFds_;
    uint64_t nextId_ = 1;
    uint64_t upgradeId_ = 0;        // a call with `upgrade` to a method that supports it, not answered yet
    UpgradeHandler upgradeHandler_; // set by upgrade(): the connection is handed over once its output is out
    size_t deferredCount_ = 0;      // deferred calls without their final reply
    std::vector<std::function<void()>> whenWritable_; // streaming handlers waiting for room (whenWritable)
    bool closed_ = false;
};

} // namespace detail

class ServerImpl {
public:
    ServerImpl(EventLoop& loop, ServerOptions options) : loop_(loop), options_(std::move(options)) {}
    ~ServerImpl() {
        // Connections first: their sources go before the loop-facing state they point into.
        connections_.clear();
        graveyard_.clear();
        if (allocator_)
            yyjson_alc_dyn_free(allocator_);
    }

    Result<void> init();
    Result<void> addInterface(Interface interface);
    Result<void> listen(UniqueFd fd, SocketSpec spec);
    Result<void> addConnection(UniqueFd fd, const SocketSpec& spec);
    void onAccept(size_t listenerIndex);
    void onReady();
    void serviceDirty();
    void wake();
    void closed(detail::Connection& connection);
    void stopAccepting() noexcept;
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
    // "iface.Method" to its registered method, or nullptr.
    [[nodiscard]] const Method* findMethod(std::string_view name);
    void getInfo(Call& call);
    void getInterfaceDescription(Call& call);

    EventLoop& loop_;
    ServerOptions options_;
    ServerCounters counters_;
    yyjson_alc* allocator_ = nullptr;
    StringMap<InterfaceEntry> interfaces_;
    std::vector<std::string> interfaceNames_; // sorted, as GetInfo lists them (sd-varlink sorts them too)
    struct Listener {
        UniqueFd fd;
        SocketSpec spec;
        EventSource source;
    };
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::unordered_map<detail::Connection*, std::shared_ptr<detail::Connection>> connections_;
    std::unordered_map<uid_t, unsigned> perUid_;
    // The method found last, by its full name: a client mostly calls the same method again, and comparing the
    // name costs less than hashing it twice (interface, then method).
    std::string lastMethodName_;
    const Method* lastMethod_ = nullptr;
    std::vector<std::shared_ptr<detail::Connection>> dirty_;
    std::vector<std::shared_ptr<detail::Connection>> graveyard_;
    size_t callsInFlight_ = 0; // deferred calls without their final reply, on open connections

    EventSource idleTimer_;
    std::chrono::microseconds idleAfter_{};
    std::function<void()> onIdle_;
    std::function<void()> onDrained_;
    // The connections wait on the server's own epoll instance, which the loop watches as one source: a
    // wake-up serves every ready connection in one dispatch (sd-event would dispatch one source per
    // iteration, each iteration with its own epoll_wait).
    UniqueFd poll_;
    EventSource pollSource_;
    bool inReady_ = false;
    // Work left by callbacks other than onReady (replies of deferred calls, closed connections): done in the
    // next iteration.
    EventSource wake_;
};

namespace detail {

Result<void> Connection::start() {
    return watch(EPOLLIN);
}

// Registers, changes or removes fd_ in the server's epoll. Without any event it is removed, not left with an
// empty mask: epoll reports EPOLLHUP and EPOLLERR even then, and would report a hung-up peer forever.
Result<void> Connection::watch(uint32_t events) {
    if (events == events_)
        return {};
    int op = events == 0 ? EPOLL_CTL_DEL : events_ == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    epoll_event event{.events = events, .data = {.ptr = this}};
    if (::epoll_ctl(server_.poll_.get(), op, fd_.get(), &event) < 0)
        return failErrno("Failed to watch a varlink connection");
    events_ = events;
    return {};
}

void Connection::onIo(uint32_t revents) {
    if (closed_)
        return;
    inIo_ = true;
    if (revents & EPOLLOUT)
        flush();
    if (!closed_ && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        readInput();
    // A full hang-up: nobody can read the replies any more (and epoll would report it forever).
    if (!closed_ && eof_ && (revents & EPOLLHUP))
        close();
    inIo_ = false;
    if (!closed_)
        service();
}

void Connection::readInput() {
    for (int round = 0; round < readsPerWakeup && !closed_ && !eof_ && !heldBack_; ++round) {
        makeRoom(in_, inBegin_, inScanned_, inEnd_, readChunk);
        size_t space = in_.size() - inEnd_;
        size_t size = 0;
        if (plainReads_) {
            // recv() costs measurably less than recvmsg() with its message header (~0.3 µs here).
            ssize_t n;
            do
                n = ::recv(fd_.get(), in_.data() + inEnd_, space, MSG_DONTWAIT);
            while (n < 0 && errno == EINTR);
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                logDebug("varlink: failed to receive: {}", std::strerror(errno));
                close();
                return;
            }
            if (n == 0) {
                eof_ = true;
                break;
            }
            size = static_cast<size_t>(n);
        } else {
            auto received =
                receiveMessage(fd_.get(), std::as_writable_bytes(std::span(in_.data() + inEnd_, space)),
                               ReceiveOptions{.acceptFds = acceptFds_, .maxFds = 16, .nonblocking = true},
                               &server_.counters_.sockets);
            if (!received) {
                if (received.error().code() == EAGAIN)
                    break;
                logDebug("varlink: {}", received.error().message());
                close();
                return;
            }
            if (received->eof) {
                eof_ = true;
                break;
            }
            size = received->size;
            for (UniqueFd& fd : received->fds)
                fds_.push_back(std::move(fd));
        }
        inEnd_ += size;
        processInput();
        // A short read drained the socket: skip the read that would only say EAGAIN.
        if (size < space)
            break;
    }
    if (!closed_ && eof_) {
        // Replies to what was read are still sent (the peer may have only shut down its writing side).
        flush();
        if (!closed_ && pendingOutput() == 0 && slots_.empty())
            close();
    }
}

void Connection::processInput() {
    while (!closed_ && !failed_ && inScanned_ < inEnd_) {
        if (upgradeId_ != 0 || upgradeHandler_ || pendingOutput() > server_.options_.outputSoftLimit) {
            heldBack_ = true;
            return;
        }
        auto* end = static_cast<char*>(std::memchr(in_.data() + inScanned_, 0, inEnd_ - inScanned_));
        if (!end) {
            inScanned_ = inEnd_;
            if (inEnd_ - inBegin_ >= server_.options_.maxMessageSize)
                protocolError("message over the size limit");
            break;
        }
        size_t size = static_cast<size_t>(end - (in_.data() + inBegin_));
        size_t next = static_cast<size_t>(end - in_.data()) + 1;
        if (size >= server_.options_.maxMessageSize) {
            protocolError("message over the size limit");
            return;
        }
        handleMessage(in_.data() + inBegin_, size);
        if (closed_ || failed_)
            return;
        inBegin_ = inScanned_ = next;
        // Behind a call that may upgrade the connection the bytes may not be varlink: stop until it is
        // answered.
        if (upgradeId_ != 0 || upgradeHandler_)
            heldBack_ = true;
    }
    if (inBegin_ == inEnd_)
        inBegin_ = inScanned_ = inEnd_ = 0;
}

void Connection::handleMessage(const char* data, size_t size) {
    if (hasEscapedNul(data, size)) {
        protocolError("NUL escaped in a string");
        return;
    }
    yyjson_read_err error{};
    // Numbers beyond int64/uint64/double are kept as raw text (not numbers to a handler) rather than refused,
    // as sd-json reads them.
    yyjson_doc* doc = yyjson_read_opts(const_cast<char*>(data), size, YYJSON_READ_BIGNUM_AS_RAW,
                                       server_.allocator_, &error);
    if (!doc) {
        protocolError(error.msg ? error.msg : "malformed JSON");
        return;
    }
    struct DocGuard {
        yyjson_doc* doc;
        ~DocGuard() { yyjson_doc_free(doc); }
    } guard{doc};

    yyjson_val* root = yyjson_doc_get_root(doc);
    if (!yyjson_is_obj(root)) {
        protocolError("message is not an object");
        return;
    }
    if (nestsDeeperThan(doc, maxJsonDepth)) {
        protocolError("JSON nested too deeply");
        return;
    }
    // The members in document order, checked as sd-varlink checks them: each of method and parameters at most
    // once, no other keys; a flag member (even false) after a flag that is true is an error, so at most one
    // flag is set.
    std::optional<std::string_view> method;
    JsonView parameters;
    bool sawParameters = false;
    CallFlags flags;
    yyjson_obj_iter members = yyjson_obj_iter_with(root);
    while (yyjson_val* key = yyjson_obj_iter_next(&members)) {
        yyjson_val* value = yyjson_obj_iter_get_val(key);
        std::string_view name(yyjson_get_str(key), yyjson_get_len(key));
        const char* bad = nullptr;
        if (name == "method") {
            if (method || !yyjson_is_str(value))
                bad = "method is repeated or not a string";
            else
                method = std::string_view(yyjson_get_str(value), yyjson_get_len(value));
        } else if (name == "parameters") {
            if (sawParameters || !(yyjson_is_obj(value) || yyjson_is_null(value)))
                bad = "parameters is repeated or not an object";
            sawParameters = true;
            if (yyjson_is_obj(value))
                parameters = JsonView(reinterpret_cast<const JsonNode*>(value)); // a JsonNode is a yyjson_val
        } else if (name == "oneway" || name == "more" || name == "upgrade") {
            if (flags.oneway || flags.more || flags.upgrade || !yyjson_is_bool(value))
                bad = "invalid call flags";
            else if (yyjson_get_bool(value))
                (name == "oneway" ? flags.oneway : name == "more" ? flags.more : flags.upgrade) = true;
        } else {
            bad = "unknown key in a call";
        }
        if (bad) {
            protocolError(bad);
            return;
        }
    }
    if (!method) {
        protocolError("message has no method");
        return;
    }
    dispatch(*method, parameters, flags);
}

void Connection::dispatch(std::string_view method, JsonView parameters, CallFlags flags) {
    ++server_.counters_.calls;
    uint64_t id = nextId_++;
    // Behind a call that is still unanswered, this one's replies wait in its own slot.
    if (!slots_.empty() && !flags.oneway)
        slots_.push_back(Slot{.id = id, .buffered = {}, .finished = false});

    const Method* target = server_.findMethod(method);

    if (target && target->acceptsFds)
        callFds_.swap(fds_);
    if (!fds_.empty()) {
        server_.counters_.sockets.unwantedFdsClosed += fds_.size();
        fds_.clear();
    }

    Call call(this, id, method, parameters, flags, &peer_, callFds_);
    if (!target) {
        (void)call.error(errorMethodNotFound, [&](JsonWriter& w) { w.field("method", method); });
    } else if (target->requiresMore && !flags.more) {
        (void)call.error(errorExpectedMore);
    } else if (target->requiresUpgrade && !flags.upgrade) {
        (void)call.error(errorExpectedUpgrade);
    } else {
        if (target->supportsUpgrade && flags.upgrade)
            upgradeId_ = id; // until it is answered, nothing after it is read as varlink
        std::exception_ptr failure;
        try {
            target->handler(call);
        } catch (...) {
            failure = std::current_exception();
        }
        if (!closed_ && (failure || (!call.answered() && !call.deferred_ && !flags.oneway))) {
            ++server_.counters_.handlerFailures;
            int code = failure ? errnoOfException(failure) : EIO;
            logDebug("varlink: handler of {} {}", method, failure ? "threw" : "returned without replying");
            if (!call.answered() && !call.deferred_)
                (void)call.error(errorSystem, [&](JsonWriter& w) { writeSystemError(w, code); });
        }
    }
    callFds_.clear();
}

Result<void> Connection::emit(uint64_t id, const CallFlags& flags, ReplyKind kind, std::string_view name,
                              WriteFn write, void* context) {
    if (closed_)
        return fail(ENOTCONN, "The connection has been closed");
    if (kind != ReplyKind::Continues && id == upgradeId_) {
        upgradeId_ = 0; // answered without an upgrade: varlink goes on
        markDirty();
    }
    if (flags.oneway)
        return {}; // no reply is sent to a oneway call
    Slot* slot = nullptr;
    std::string* sink = &out_;
    if (!slots_.empty()) {
        auto it = std::ranges::find(slots_, id, &Slot::id);
        if (it != slots_.end()) {
            slot = &*it;
            if (it != slots_.begin())
                sink = &slot->buffered;
        }
    }
    size_t before = sink->size();
    JsonWriter w(*sink);
    try {
        sink->push_back('{');
        if (kind == ReplyKind::Error) {
            sink->append("\"error\":");
            w.value(name);
        }
        if (write) {
            // "parameters" only when the writer writes a member: sd-varlink leaves out empty parameters.
            size_t start = sink->size();
            sink->append(kind == ReplyKind::Error ? ",\"parameters\":{" : "\"parameters\":{");
            size_t inside = sink->size();
            w.resetInsideContainer();
            write(context, w);
            if (sink->size() == inside)
                sink->resize(start);
            else
                sink->push_back('}');
        }
        if (kind == ReplyKind::Continues)
            sink->append(sink->back() == '{' ? "\"continues\":true}" : ",\"continues\":true}");
        else
            sink->push_back('}');
        sink->push_back('\0');
    } catch (...) {
        sink->resize(before); // a writer that threw leaves no half reply behind
        throw;
    }
    if (sink != &out_)
        slotBytes_ += sink->size() - before;
    if (kind != ReplyKind::Continues && slot) {
        slot->finished = true;
        advanceQueue();
    }
    markDirty();
    return {};
}

Result<void> Connection::emitUpgrade(uint64_t id, const CallFlags& flags, WriteFn write, void* context,
                                     UpgradeHandler then) {
    if (closed_)
        return fail(ENOTCONN, "The connection has been closed");
    if (id != upgradeId_)
        return fail(EBADRQC, "The call was not made with 'upgrade' to a method that supports it");
    if (auto r = emit(id, flags, ReplyKind::Final, {}, write, context); !r)
        return r;
    upgradeHandler_ = std::move(then);
    heldBack_ = true;
    return {};
}

void Connection::advanceQueue() {
    while (!slots_.empty() && slots_.front().finished) {
        slots_.pop_front();
        if (!slots_.empty()) {
            Slot& head = slots_.front();
            slotBytes_ -= head.buffered.size();
            out_.append(head.buffered);
            std::string().swap(head.buffered);
        }
    }
}

void Connection::deferred(uint64_t id, const CallFlags& flags) {
    ++deferredCount_;
    ++server_.callsInFlight_;
    // Only a call dispatched with an empty queue has no slot yet, and then it is the head.
    if (!flags.oneway && slots_.empty())
        slots_.push_back(Slot{.id = id, .buffered = {}, .finished = false});
}

void Connection::deferredDone() noexcept {
    if (closed_ || deferredCount_ == 0)
        return;
    --deferredCount_;
    --server_.callsInFlight_;
}

void Connection::abandon(uint64_t id, const CallFlags& flags) noexcept {
    try {
        auto write = [](JsonWriter& w) { writeSystemError(w, ECANCELED); };
        (void)emit(id, flags, ReplyKind::Error, errorSystem, &invokeWriter<decltype(write)&>, &write);
    } catch (...) {
        close();
    }
    deferredDone();
}

void Connection::markDirty() {
    // Replies written while this connection's own onIo() runs are sent by the service() at its end.
    if (!dirty && !inIo_) {
        dirty = true;
        server_.dirty_.push_back(shared_from_this());
        server_.wake();
    }
}

void Connection::flush() {
    if (closed_ || outBegin_ == out_.size())
        return;
    ssize_t n;
    do
        n = ::send(fd_.get(), out_.data() + outBegin_, out_.size() - outBegin_, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN)
            return;
        logDebug("varlink: failed to send: {}", std::strerror(errno));
        close();
        return;
    }
    outBegin_ += static_cast<size_t>(n);
    if (outBegin_ == out_.size()) {
        out_.clear(); // keeps its capacity: no allocation for the next replies
        outBegin_ = 0;
    } else if (outBegin_ > out_.size() / 2) {
        out_.erase(0, outBegin_);
        outBegin_ = 0;
    }
}

void Connection::service() {
    dirty = false;
    for (int round = 0; round < 4 && !closed_; ++round) {
        flush();
        if (closed_)
            return;
        if (upgradeHandler_ && outBegin_ == out_.size() && slots_.empty()) {
            handOver();
            return;
        }
        if (!heldBack_ || upgradeId_ != 0 || upgradeHandler_ ||
            pendingOutput() > server_.options_.outputSoftLimit)
            break;
        heldBack_ = false;
        processInput();
    }
    notifyWritable(); // nothing waits on a closed connection: close() drops the waiters
    if (closed_)
        return;
    if (pendingOutput() > server_.options_.outputHardLimit) {
        ++server_.counters_.overflowCloses;
        logDebug("varlink: closing a connection whose peer does not read its replies");
        close();
        return;
    }
    if (eof_ && outBegin_ == out_.size() && slots_.empty()) {
        close();
        return;
    }
    uint32_t events = 0;
    if (!eof_ && !heldBack_)
        events |= EPOLLIN;
    if (outBegin_ != out_.size())
        events |= EPOLLOUT;
    if (auto r = watch(events); !r) {
        logDebug("varlink: {}", r.error().message());
        close();
    }
}

bool Connection::writable() const noexcept {
    return !closed_ && pendingOutput() <= server_.options_.outputSoftLimit;
}

void Connection::whenWritable(std::function<void()> then) {
    if (closed_ || !then)
        return;
    whenWritable_.push_back(std::move(then));
    markDirty(); // service() calls it, at once if there is room already
}

void Connection::notifyWritable() {
    if (whenWritable_.empty() || !writable())
        return;
    // Each waiter runs once; one that finds no room again registers anew. What they send goes out with the
    // flush below (and, if the connection was marked dirty again, in another service()).
    auto waiting = std::exchange(whenWritable_, {});
    for (auto& then : waiting) {
        if (closed_)
            break;
        try {
            then();
        } catch (const std::exception& e) {
            logDebug("varlink: a whenWritable callback threw: {}", e.what());
        } catch (...) {
            logDebug("varlink: a whenWritable callback threw");
        }
    }
    flush();
}

void Connection::protocolError(std::string_view what) {
    ++server_.counters_.protocolErrors;
    logDebug("varlink: protocol error from pid {}: {}; closing the connection", peer_.pid, what);
    // As sd-varlink: the calls before the bad message are still answered, nothing after it is read, and the
    // connection closes once those replies are out.
    failed_ = true;
    eof_ = true;
    inBegin_ = inScanned_ = inEnd_ = 0;
    fds_.clear();
    if (outBegin_ == out_.size() && slots_.empty())
        close();
    else
        markDirty();
}

void Connection::handOver() {
    UpgradeHandler then = std::exchange(upgradeHandler_, nullptr);
    // Out of the server's epoll while the fd is still ours to name: close() cannot remove it once it is moved
    // out, and epoll would go on reporting the handed-over socket for this (soon freed) connection.
    (void)watch(0);
    UpgradedConnection upgraded{
        .fd = std::move(fd_), .pending = std::string(in_.data() + inBegin_, inEnd_ - inBegin_), .peer = {}};
    ++server_.counters_.connectionsUpgraded;
    close(); // the socket has been taken out: it stays open
    upgraded.peer = std::move(peer_);
    try {
        then(std::move(upgraded));
    } catch (const std::exception& e) {
        logDebug("varlink: the upgrade handler threw: {}", e.what());
    } catch (...) {
        logDebug("varlink: the upgrade handler threw");
    }
}

void Connection::close() {
    if (closed_)
        return;
    closed_ = true;
    // This connection may be the one being served right now: it is freed later, by
    // ServerImpl::serviceDirty(). It leaves the server's epoll first (with fd_ still set: see handOver()).
    (void)watch(0);
    fds_.clear();
    slots_.clear();
    slotBytes_ = 0;
    upgradeHandler_ = nullptr;
    fd_.reset();
    server_.callsInFlight_ -= deferredCount_;
    deferredCount_ = 0;
    // Waiters are dropped uncalled: what they own (a DeferredCall) is released, its replies go nowhere.
    auto waiting = std::exchange(whenWritable_, {});
    server_.closed(*this);
    waiting.clear();
}

} // namespace detail

Result<void> Call::send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write, void* context) {
    if (deferred_)
        return fail(EBUSY, "The call to {} was deferred", method_);
    if (finished_)
        return fail(EALREADY, "The call to {} has already been answered", method_);
    if (kind == detail::ReplyKind::Continues && !flags_.more)
        return fail(EBADRQC, "The call to {} was made without 'more'", method_);
    auto r = connection_->emit(id_, flags_, kind, name, write, context);
    if (kind != detail::ReplyKind::Continues)
        finished_ = true;
    return r;
}

Result<void> Call::sendUpgrade(detail::WriteFn write, void* context, UpgradeHandler then) {
    if (deferred_)
        return fail(EBUSY, "The call to {} was deferred", method_);
    if (finished_)
        return fail(EALREADY, "The call to {} has already been answered", method_);
    auto r = connection_->emitUpgrade(id_, flags_, write, context, std::move(then));
    if (r)
        finished_ = true;
    return r;
}

bool Call::writable() const noexcept {
    return connection_->writable();
}

DeferredCall Call::defer() {
    if (finished_ || deferred_)
        return DeferredCall();
    deferred_ = true;
    connection_->deferred(id_, flags_);
    DeferredCall deferred(connection_->weak_from_this(), id_, flags_);
    deferred.finished_ = false;
    return deferred;
}

DeferredCall::DeferredCall(DeferredCall&& other) noexcept
    : connection_(std::move(other.connection_)), id_(other.id_), flags_(other.flags_),
      finished_(std::exchange(other.finished_, true)) {}

DeferredCall& DeferredCall::operator=(DeferredCall&& other) noexcept {
    if (this != &other) {
        abandon();
        connection_ = std::move(other.connection_);
        id_ = other.id_;
        flags_ = other.flags_;
        finished_ = std::exchange(other.finished_, true);
    }
    return *this;
}

DeferredCall::~DeferredCall() {
    abandon();
}

bool DeferredCall::connected() const noexcept {
    auto connection = connection_.lock();
    return connection && !connection->closed();
}

bool DeferredCall::writable() const noexcept {
    auto connection = connection_.lock();
    return connection && connection->writable();
}

void DeferredCall::whenWritable(std::function<void()> then) {
    if (auto connection = connection_.lock(); connection && !finished_)
        connection->whenWritable(std::move(then));
}

void DeferredCall::abandon() noexcept {
    if (finished_)
        return;
    finished_ = true;
    if (auto connection = connection_.lock())
        connection->abandon(id_, flags_);
}

Result<void> DeferredCall::send(detail::ReplyKind kind, std::string_view name, detail::WriteFn write,
                                void* context) {
    if (finished_)
        return fail(EALREADY, "The call has already been answered");
    if (kind == detail::ReplyKind::Continues && !flags_.more)
        return fail(EBADRQC, "The call was made without 'more'");
    auto connection = connection_.lock();
    if (kind != detail::ReplyKind::Continues)
        finished_ = true;
    if (!connection)
        return fail(ENOTCONN, "The connection has been closed");
    if (kind == detail::ReplyKind::Continues)
        return connection->emit(id_, flags_, kind, name, write, context);
    struct Done {
        detail::Connection& connection;
        ~Done() { connection.deferredDone(); }
    } done{*connection};
    return connection->emit(id_, flags_, kind, name, write, context);
}

Result<void> DeferredCall::sendUpgrade(detail::WriteFn write, void* context, UpgradeHandler then) {
    if (finished_)
        return fail(EALREADY, "The call has already been answered");
    auto connection = connection_.lock();
    if (!connection) {
        finished_ = true;
        return fail(ENOTCONN, "The connection has been closed");
    }
    auto r = connection->emitUpgrade(id_, flags_, write, context, std::move(then));
    if (r || r.error().code() == ENOTCONN) {
        finished_ = true;
        connection->deferredDone();
    }
    return r;
}

Result<void> ServerImpl::init() {
    allocator_ = yyjson_alc_dyn_new();
    if (!allocator_)
        return fail(ENOMEM, "Failed to create the JSON allocator");
    poll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!poll_)
        return failErrno("Failed to create the varlink server's epoll instance");
    auto pollSource = loop_.addIo(poll_.get(), EPOLLIN, [this](uint32_t) { onReady(); });
    if (!pollSource)
        return std::unexpected(pollSource.error());
    pollSource_ = std::move(*pollSource);
    auto wake = loop_.addDefer([this] { serviceDirty(); });
    if (!wake)
        return std::unexpected(wake.error());
    wake_ = std::move(*wake);

    Interface service{
        .name = std::string(serviceInterfaceName),
        .description = std::string(serviceInterfaceDescription),
        .methods = {},
    };
    service.methods.push_back(Method{.name = "GetInfo", .handler = [this](Call& call) { getInfo(call); }});
    service.methods.push_back(Method{.name = "GetInterfaceDescription",
                                     .handler = [this](Call& call) { getInterfaceDescription(call); }});
    if (auto r = addInterface(std::move(service)); !r)
        return r;
    return addInterface(Interface{.name = std::string(systemdInterfaceName),
                                  .description = std::string(systemdInterfaceDescription),
                                  .methods = {}});
}

const Method* ServerImpl::findMethod(std::string_view name) {
    if (lastMethod_ && name == lastMethodName_)
        return lastMethod_;
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos)
        return nullptr;
    const InterfaceEntry* interface = findInterface(name.substr(0, dot));
    if (!interface)
        return nullptr;
    auto it = interface->methods.find(name.substr(dot + 1));
    if (it == interface->methods.end())
        return nullptr;
    // Methods live in map nodes: the pointer stays valid while interfaces are added.
    lastMethodName_.assign(name);
    lastMethod_ = &it->second;
    return lastMethod_;
}

Result<void> ServerImpl::addInterface(Interface interface) {
    if (!isValidInterfaceName(interface.name))
        return fail(EINVAL, "Invalid varlink interface name '{}'", interface.name);
    if (interfaces_.contains(interface.name))
        return fail(EEXIST, "Interface '{}' is already registered", interface.name);
    InterfaceEntry entry{
        .name = interface.name, .description = std::move(interface.description), .methods = {}};
    for (Method& method : interface.methods) {
        if (!isValidMethodName(method.name))
            return fail(EINVAL, "Invalid varlink method name '{}.{}'", interface.name, method.name);
        if (!method.handler)
            return fail(EINVAL, "Method '{}.{}' has no handler", interface.name, method.name);
        std::string name = method.name;
        if (!entry.methods.emplace(std::move(name), std::move(method)).second)
            return fail(EEXIST, "Method '{}' is listed twice in '{}'", name, interface.name);
    }
    interfaceNames_.insert(std::ranges::upper_bound(interfaceNames_, interface.name), interface.name);
    interfaces_.emplace(std::move(interface.name), std::move(entry));
    return {};
}

Result<void> ServerImpl::listen(UniqueFd fd, SocketSpec spec) {
    auto listener =
        std::make_unique<Listener>(Listener{.fd = std::move(fd), .spec = std::move(spec), .source = {}});
    size_t index = listeners_.size();
    auto source = loop_.addIo(listener->fd.get(), EPOLLIN, [this, index](uint32_t) { onAccept(index); });
    if (!source)
        return std::unexpected(source.error());
    listener->source = std::move(*source);
    listeners_.push_back(std::move(listener));
    return {};
}

void ServerImpl::onAccept(size_t listenerIndex) {
    Listener& listener = *listeners_[listenerIndex];
    for (int i = 0; i < acceptsPerWakeup; ++i) {
        auto fd =
            acceptConnection(listener.fd.get(), listener.spec, options_.acceptedPolicy, &counters_.sockets);
        if (!fd) {
            int code = fd.error().code();
            if (code == EAGAIN)
                return;
            ++counters_.connectionsRefused;
            logDebug("varlink: {}", fd.error().message());
            if (code == EPROTO || code == ECONNABORTED || code == EPERM)
                continue; // this connection was refused; others may be waiting
            return;       // EMFILE and friends: try again on the next wake-up
        }
        auto added = addConnection(std::move(*fd), listener.spec);
        if (!added)
            logDebug("varlink: {}", added.error().message());
    }
}

Result<void> ServerImpl::addConnection(UniqueFd fd, const SocketSpec& spec) {
    if (connections_.size() >= options_.maxConnections) {
        ++counters_.connectionsRefused;
        return fail(EBUSY, "Refusing a connection: {} connections already", connections_.size());
    }
    auto peer = identityOfPeer(fd.get());
    if (!peer) {
        ++counters_.connectionsRefused;
        return std::unexpected(peer.error().withContext("Refusing a connection"));
    }
    if (spec.type == SocketType::Stream) {
        // Varlink's caller is the connection's peer, taken above once (as sd-varlink does). Per-message
        // SCM_CREDENTIALS and SCM_PIDFD would only make the kernel build a pidfd on every read for us to
        // close: about a third of the server's CPU per call when each wake-up carries one call. The listener
        // keeps its options (they are what its unit promised, and what the next connection inherits).
        static constexpr int off = 0;
        (void)::setsockopt(fd.get(), SOL_SOCKET, SO_PASSPIDFD, &off, sizeof off);
        (void)::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
    }
    uid_t uid = peer->uid;
    if (options_.maxConnectionsPerUid != 0 && perUid_[uid] >= options_.maxConnectionsPerUid) {
        ++counters_.connectionsRefused;
        return fail(EBUSY, "Refusing a connection: UID {} has {} connections already", uid, perUid_[uid]);
    }
    bool plainReads = spec.type == SocketType::Stream && !spec.acceptFileDescriptors;
    auto connection = std::make_shared<detail::Connection>(*this, std::move(fd), spec.acceptFileDescriptors,
                                                           plainReads, std::move(*peer));
    if (auto r = connection->start(); !r)
        return r;
    ++perUid_[uid];
    ++counters_.connectionsAccepted;
    connections_.emplace(connection.get(), std::move(connection));
    if (idleTimer_)
        (void)idleTimer_.setEnabled(false); // not idle any more
    return {};
}

void ServerImpl::closed(detail::Connection& connection) {
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return;
    ++counters_.connectionsClosed;
    if (auto u = perUid_.find(connection.uid()); u != perUid_.end() && --u->second == 0)
        perUid_.erase(u);
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
    if (connections_.empty())
        armIdleTimer();
    wake();
}

void ServerImpl::onReady() {
    epoll_event events[readyPerWakeup];
    int n = ::epoll_wait(poll_.get(), events, readyPerWakeup, 0);
    inReady_ = true;
    // A connection closed while serving an earlier one stays alive (in graveyard_) until serviceDirty().
    for (int i = 0; i < n; ++i)
        static_cast<detail::Connection*>(events[i].data.ptr)->onIo(events[i].events);
    inReady_ = false;
    serviceDirty();
}

void ServerImpl::wake() {
    // Within onReady() the serviceDirty() at its end does the work.
    if (!inReady_)
        (void)wake_.enableOnce();
}

void ServerImpl::serviceDirty() {
    // Replies sent from callbacks other than the connection's own I/O handler: one send per connection.
    for (size_t i = 0; i < dirty_.size(); ++i) {
        auto connection = dirty_[i]; // a copy: service() may run handlers that append to dirty_
        if (connection->dirty && !connection->closed())
            connection->service();
    }
    dirty_.clear();
    graveyard_.clear();
    if (onDrained_)
        checkDrained();
}

void ServerImpl::stopAccepting() noexcept {
    listeners_.clear(); // each source leaves the loop, each fd is closed
}

Result<void> ServerImpl::setIdleCallback(std::chrono::microseconds after, std::function<void()> onIdle) {
    if (!onIdle) {
        onIdle_ = nullptr;
        idleTimer_.reset();
        return {};
    }
    if (!idleTimer_) {
        auto timer = loop_.addTimer(after, [this] { onIdleTimer(); });
        if (!timer)
            return std::unexpected(timer.error());
        idleTimer_ = std::move(*timer);
    }
    idleAfter_ = after;
    onIdle_ = std::move(onIdle);
    if (connections_.empty())
        armIdleTimer();
    else
        (void)idleTimer_.setEnabled(false);
    return {};
}

void ServerImpl::armIdleTimer() {
    if (!idleTimer_)
        return;
    if (auto r = idleTimer_.rearmTimer(idleAfter_); !r)
        logDebug("varlink: {}", r.error().message());
}

void ServerImpl::onIdleTimer() {
    if (!connections_.empty() || !onIdle_)
        return;
    // A client waiting in a listening socket's queue is about to be accepted: not idle.
    for (const auto& listener : listeners_) {
        pollfd p{.fd = listener->fd.get(), .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 0) > 0) {
            armIdleTimer();
            return;
        }
    }
    auto onIdle = onIdle_; // a copy: the callback may replace itself
    onIdle();
}

void ServerImpl::whenDrained(std::function<void()> onDrained) {
    onDrained_ = std::move(onDrained);
    if (onDrained_)
        checkDrained();
}

bool ServerImpl::drained() const {
    if (callsInFlight_ != 0)
        return false;
    return std::ranges::all_of(connections_, [](const auto& entry) { return entry.second->drained(); });
}

void ServerImpl::checkDrained() {
    if (!drained())
        return;
    auto onDrained = std::exchange(onDrained_, nullptr);
    onDrained();
}

void ServerImpl::getInfo(Call& call) {
    if (auto unknown = unknownParameter(call.parameters(), {})) {
        (void)call.invalidParameter(*unknown);
        return;
    }
    (void)call.reply([&](JsonWriter& w) {
        w.field("vendor", options_.info.vendor);
        w.field("product", options_.info.product);
        w.field("version", options_.info.version);
        w.field("url", options_.info.url);
        w.key("interfaces");
        w.beginArray();
        for (const std::string& name : interfaceNames_)
            w.value(name);
        w.endArray();
    });
}

void ServerImpl::getInterfaceDescription(Call& call) {
    auto name = call.parameters()["interface"].string();
    if (!name) {
        (void)call.invalidParameter("interface");
        return;
    }
    if (auto unknown = unknownParameter(call.parameters(), {"interface"})) {
        (void)call.invalidParameter(*unknown);
        return;
    }
    const InterfaceEntry* interface = findInterface(*name);
    if (!interface) {
        (void)call.error(errorInterfaceNotFound, [&](JsonWriter& w) { w.field("interface", *name); });
        return;
    }
    (void)call.reply([&](JsonWriter& w) { w.field("description", interface->description); });
}

Result<Server> Server::create(EventLoop& loop, ServerOptions options) {
    auto impl = std::make_unique<ServerImpl>(loop, std::move(options));
    if (auto r = impl->init(); !r)
        return std::unexpected(r.error());
    return Server(std::move(impl));
}

Server::Server(std::unique_ptr<ServerImpl> impl) noexcept : impl_(std::move(impl)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

Result<void> Server::addInterface(Interface interface) {
    return impl_->addInterface(std::move(interface));
}

Result<void> Server::listen(UniqueFd listeningFd, SocketSpec spec) {
    int flags = ::fcntl(listeningFd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(listeningFd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make listening socket '{}' non-blocking", spec.name);
    return impl_->listen(std::move(listeningFd), std::move(spec));
}

Result<void> Server::serveConnection(UniqueFd connectedFd, SocketSpec spec) {
    int flags = ::fcntl(connectedFd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(connectedFd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        return failErrno("Failed to make connection of '{}' non-blocking", spec.name);
    if (auto r = checkAcceptedSocket(connectedFd.get(), spec, impl_->options_.acceptedPolicy,
                                     &impl_->counters_.sockets);
        !r)
        return r;
    return impl_->addConnection(std::move(connectedFd), spec);
}

void Server::stopAccepting() noexcept {
    impl_->stopAccepting();
}

Result<void> Server::setIdleCallback(std::chrono::microseconds after, std::function<void()> onIdle) {
    return impl_->setIdleCallback(after, std::move(onIdle));
}

void Server::whenDrained(std::function<void()> onDrained) {
    impl_->whenDrained(std::move(onDrained));
}

const ServerCounters& Server::counters() const noexcept {
    return impl_->counters_;
}

size_t Server::connectionCount() const noexcept {
    return impl_->connections_.size();
}
size_t Server::callsInFlight() const noexcept {
    return impl_->callsInFlight_;
}

} // namespace svckit::varlink
