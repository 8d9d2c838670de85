// bench/dbus/loadgen.cpp — a peer-to-peer D-Bus (and varlink) load generator for bench/dbus/run.
//
// N connections to one AF_UNIX path, M calls in flight on each (a reply is answered by a new call), single
// thread, epoll. The call is org.svckit.bench.Bench1.Ping("hello") at /org/svckit/bench/Bench1 (D-Bus), or
// org.example.bench.Echo {"text":"hello"} (--proto varlink, the same small call on varlink). Every reply is
// checked: a D-Bus method return whose body is the string "hello", or varlink's {"parameters":{"text":"hello"}}.
//
// The D-Bus client speaks the wire protocol itself, as bench/varlink/loadgen does for varlink: it sends what an
// sd-bus p2p client (sd_bus_set_bus_client(bus, 0)) sends — "\0AUTH EXTERNAL <uid>\r\nBEGIN\r\n" in one write,
// waits for the server's "OK <guid>", then sends its calls (no NEGOTIATE_UNIX_FD, no Hello: the raw sd-bus and
// plain sdbus-c++ servers do not answer Hello, so no server is sent one). Messages are little-endian, built once;
// only the serial changes. A hand-written client costs a fraction of sd-bus's per message, so at 64 connections
// the servers, not the load generator, stay the limit.
//
// --new-conn: each of the N slots makes one call per connection — connect, authenticate, call, read the reply,
// close — and starts again; calls/s is then connections/s, server CPU per call is per connection, and the
// latency is from connect() to the reply.
//
// After a warm-up it measures for D seconds (or until --max-calls replies): replies/s, latency p50/p99, the
// server's CPU time (utime+stime of --pid from /proc/PID/stat) per call and its voluntary context switches per
// call, and the fewest and most replies one connection (slot, with --new-conn) got. Output: one line of
// key=value pairs. Exit status 0 if every reply was the expected one.
//
//   loadgen --path SOCK --pid SERVER_PID [--proto dbus|varlink] [--conns 16] [--inflight 1] [--new-conn]
//           [--seconds 3] [--warmup 0.5] [--max-calls 100000000]
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <print>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace {

std::uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

// Log-linear histogram of nanoseconds: 64 sub-buckets per power of two, up to 2^40 ns.
class Histogram {
    static constexpr int sub_bits = 6, sub = 1 << sub_bits, exps = 40;
    std::array<std::uint64_t, std::size_t(exps) * sub> counts_{};
    std::uint64_t total_ = 0;

    static std::size_t index(std::uint64_t v) {
        if (v < sub) return std::size_t(v);
        int e = 63 - __builtin_clzll(v);
        int shift = e - sub_bits;
        std::size_t i = std::size_t(shift + 1) * sub + std::size_t((v >> shift) - sub);
        return std::min(i, std::size_t(exps) * sub - 1);
    }
    static double value(std::size_t i) {
        if (i < sub) return double(i);
        std::size_t shift = i / sub - 1, m = i % sub + sub;
        return (double(m) + 0.5) * double(std::uint64_t(1) << shift);
    }

public:
    void add(std::uint64_t v) { counts_[index(v)]++; total_++; }
    double quantile(double q) const {
        if (total_ == 0) return NAN;
        auto want = std::uint64_t(std::ceil(q * double(total_)));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); i++) {
            seen += counts_[i];
            if (seen >= want && counts_[i]) return value(i);
        }
        return value(counts_.size() - 1);
    }
};

// utime+stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
std::optional<std::uint64_t> cpu_ticks(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), {});
    auto rp = s.rfind(')');
    if (rp == std::string::npos) return std::nullopt;
    std::istringstream rest(s.substr(rp + 2));
    std::string field;
    std::uint64_t ut = 0, st = 0;
    for (int i = 3; i <= 15 && rest >> field; i++) {
        if (i == 14) ut = std::stoull(field);
        if (i == 15) st = std::stoull(field);
    }
    return ut + st;
}

std::optional<std::uint64_t> voluntary_switches(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.starts_with("voluntary_ctxt_switches:")) return std::stoull(line.substr(line.find(':') + 1));
    return std::nullopt;
}

// --- D-Bus marshalling of the one call (little-endian) ---

void pad(std::string& m, std::size_t align) {
    while (m.size() % align) m.push_back('\0');
}
void put_u32(std::string& m, std::uint32_t v) {
    pad(m, 4);
    m.append(reinterpret_cast<const char*>(&v), 4);  // x86_64: little-endian
}
void put_string(std::string& m, std::string_view s) {  // 's' and 'o'
    put_u32(m, std::uint32_t(s.size()));
    m.append(s);
    m.push_back('\0');
}
void put_signature(std::string& m, std::string_view s) {  // 'g'
    m.push_back(char(s.size()));
    m.append(s);
    m.push_back('\0');
}
void put_field(std::string& m, char code, char type, std::string_view value) {
    pad(m, 8);
    m.push_back(code);
    put_signature(m, std::string_view(&type, 1));
    if (type == 'g') put_signature(m, value);
    else put_string(m, value);
}

constexpr std::size_t serial_offset = 8;

std::string dbus_call() {
    std::string body;
    put_string(body, "hello");
    std::string m;
    m.append("l\x01\x00\x01", 4);  // little-endian, METHOD_CALL, no flags, protocol version 1
    put_u32(m, std::uint32_t(body.size()));
    put_u32(m, 1);  // serial, patched per call
    put_u32(m, 0);  // header fields' length, patched below
    put_field(m, 1, 'o', "/org/svckit/bench/Bench1");
    put_field(m, 2, 's', "org.svckit.bench.Bench1");
    put_field(m, 3, 's', "Ping");
    put_field(m, 8, 'g', "s");
    std::uint32_t fields = std::uint32_t(m.size() - 16);
    std::memcpy(m.data() + 12, &fields, 4);
    pad(m, 8);
    m.append(body);
    return m;
}

std::string hex(std::string_view s) {
    std::string h;
    for (unsigned char c : s) h += std::format("{:02x}", c);
    return h;
}

enum class Proto { DBus, Varlink };

struct Conn {
    int fd = -1;
    bool authenticated = false;           // D-Bus: the server's OK was read
    std::uint32_t serial = 0;
    std::uint64_t connected_at = 0;       // --new-conn: when connect() was called
    std::vector<std::uint64_t> sent_at;   // ring of send times of the calls in flight, oldest first
    std::size_t head = 0, in_flight = 0;
    std::string in;                       // bytes read, not yet parsed
    std::string out;                      // bytes not yet written (after a short write)
    bool want_out = false;
    std::uint64_t measured = 0;           // replies in the measured window (also over reconnections)
};

[[noreturn]] void usage() {
    std::println(stderr, "usage: loadgen --path SOCK --pid SERVER_PID [--proto dbus|varlink] [--conns N] [--inflight M] "
                         "[--new-conn] [--seconds D] [--warmup W] [--max-calls K]");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string path;
    long pid = 0;
    int conns = 16, inflight = 1;
    bool new_conn = false;
    Proto proto = Proto::DBus;
    double seconds = 3, warmup = 0.5;
    std::uint64_t max_calls = 100'000'000;
    for (int i = 1; i < argc; i++) {
        std::string_view a = argv[i];
        if (a == "--new-conn") {
            new_conn = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        std::string_view v = argv[++i];
        if (a == "--path") path = v;
        else if (a == "--pid") pid = std::atol(v.data());
        else if (a == "--proto" && (v == "dbus" || v == "varlink")) proto = v == "dbus" ? Proto::DBus : Proto::Varlink;
        else if (a == "--conns") conns = std::atoi(v.data());
        else if (a == "--inflight") inflight = std::atoi(v.data());
        else if (a == "--seconds") seconds = std::atof(v.data());
        else if (a == "--warmup") warmup = std::atof(v.data());
        else if (a == "--max-calls") max_calls = std::strtoull(v.data(), nullptr, 10);
        else usage();
    }
    if (path.empty() || pid <= 0 || conns < 1 || conns > 1024 || inflight < 1 || inflight > 4096 || !(seconds > 0) ||
        seconds > 600 || warmup < 0 || warmup > 60 || max_calls < 1 || (new_conn && inflight != 1))
        usage();

    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) usage();
    std::memcpy(sa.sun_path, path.data(), path.size());

    static constexpr char varlink_call[] = "{\"method\":\"org.example.bench.Echo\",\"parameters\":{\"text\":\"hello\"}}";
    const std::string call = proto == Proto::DBus ? dbus_call() : std::string(varlink_call, sizeof varlink_call);
    const std::string auth = std::string("\0AUTH EXTERNAL ", 15) + hex(std::to_string(getuid())) + "\r\nBEGIN\r\n";
    const std::string_view varlink_reply = "{\"parameters\":{\"text\":\"hello\"}}";
    const std::string_view dbus_reply_body("\x05\0\0\0hello\0", 10);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<std::unique_ptr<Conn>> cs;
    std::uint64_t errors = 0, calls = 0, meas_start = 0;
    bool measuring = false;
    Histogram hist;

    auto set_out = [&](Conn& c) {
        if (c.want_out != !c.out.empty()) {  // touch epoll only when the interest changes
            c.want_out = !c.out.empty();
            epoll_event ev{.events = EPOLLIN | (c.want_out ? unsigned(EPOLLOUT) : 0u), .data = {.ptr = &c}};
            epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
    };
    auto write_out = [&](Conn& c, std::string_view buf) -> bool {
        if (!c.out.empty()) {
            c.out.append(buf);
            buf = c.out;
        }
        ssize_t w = send(c.fd, buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
        if (w < 0) w = 0;
        std::string rest(buf.substr(std::size_t(w)));
        c.out = std::move(rest);
        set_out(c);
        return true;
    };
    std::string batch;
    auto send_calls = [&](Conn& c, int n, std::uint64_t t) -> bool {
        batch.clear();
        for (int k = 0; k < n; k++) {
            c.sent_at[(c.head + c.in_flight) % c.sent_at.size()] = t;
            c.in_flight++;
            batch.append(call);
            if (proto == Proto::DBus) {
                std::uint32_t serial = ++c.serial;
                if (serial == 0) serial = c.serial = 1;
                std::memcpy(batch.data() + batch.size() - call.size() + serial_offset, &serial, 4);
            }
        }
        return write_out(c, batch);
    };
    // Connects c (again); D-Bus starts the handshake, varlink sends its calls at once.
    const std::uint64_t start_ns = now_ns();
    auto open_conn = [&](Conn& c) -> bool {
        c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        c.connected_at = now_ns();
        int r;
        while ((r = connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa)) < 0 &&
               (errno == EAGAIN || errno == EINTR) && now_ns() - start_ns < 5'000'000'000u)
            usleep(1000);
        if (r < 0) {
            std::println(stderr, "loadgen: connect {}: {}", path, std::strerror(errno));
            return false;
        }
        c.authenticated = proto == Proto::Varlink;
        c.serial = 0;
        c.head = c.in_flight = 0;
        c.in.clear();
        c.out.clear();
        c.want_out = false;
        epoll_event ev{.events = EPOLLIN, .data = {.ptr = &c}};
        epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
        if (proto == Proto::DBus) return write_out(c, auth);
        return send_calls(c, inflight, c.connected_at);
    };
    auto fail = [&](std::string_view what) {
        std::println(stderr, "loadgen: {}: {}", what, std::strerror(errno));
        return 1;
    };

    for (int i = 0; i < conns; i++) {
        auto c = std::make_unique<Conn>();
        c->sent_at.assign(std::size_t(inflight), 0);
        if (!open_conn(*c)) return 1;
        cs.push_back(std::move(c));
    }

    const std::uint64_t t0 = now_ns();
    const auto warm_end = t0 + std::uint64_t(warmup * 1e9);
    const auto hard_end = warm_end + std::uint64_t(seconds * 1e9);
    std::uint64_t meas_end = 0;
    std::optional<std::uint64_t> cpu0, cpu1, sw0, sw1;
    std::vector<char> rbuf(1 << 16);
    std::array<epoll_event, 256> evs;

    // Parses what c has read; returns the replies completed, or -1 when the connection is to be dropped.
    auto parse = [&](Conn& c, std::uint64_t tr) -> int {
        std::size_t pos = 0;
        int got = 0;
        auto complete = [&](bool ok, std::string_view what) {
            if (!ok) {
                if (errors < 3) std::println(stderr, "loadgen: unexpected reply: {}", what.substr(0, 200));
                errors += measuring;
            }
            std::uint64_t ts = new_conn ? c.connected_at : c.sent_at[c.head];
            c.head = (c.head + 1) % c.sent_at.size();
            c.in_flight--;
            if (measuring && ts >= meas_start) hist.add(tr - ts);
            calls += measuring;
            c.measured += measuring;
            got++;
        };
        if (!c.authenticated) {
            auto nl = c.in.find("\r\n");
            if (nl == std::string::npos) return 0;
            if (!c.in.starts_with("OK ")) {
                std::println(stderr, "loadgen: authentication refused: {}", c.in.substr(0, nl));
                return -1;
            }
            c.authenticated = true;
            pos = nl + 2;
            if (!send_calls(c, inflight, now_ns())) return -1;
        }
        while (pos < c.in.size()) {
            std::string_view rest(c.in.data() + pos, c.in.size() - pos);
            if (proto == Proto::Varlink) {
                auto z = rest.find('\0');
                if (z == std::string_view::npos) break;
                complete(rest.substr(0, z) == varlink_reply, rest.substr(0, z));
                pos += z + 1;
                continue;
            }
            if (rest.size() < 16) break;
            if (rest[0] != 'l') {
                std::println(stderr, "loadgen: a big-endian or garbled message");
                return -1;
            }
            std::uint32_t body = 0, fields = 0;
            std::memcpy(&body, rest.data() + 4, 4);
            std::memcpy(&fields, rest.data() + 12, 4);
            std::size_t total = 16 + ((std::size_t(fields) + 7) & ~std::size_t(7)) + body;
            if (rest.size() < total) break;
            std::string_view b = rest.substr(total - body, body);
            std::uint8_t type = std::uint8_t(rest[1]);
            if (type == 2 || type == 3)
                complete(type == 2 && b == dbus_reply_body, type == 3 ? "an error reply" : "a wrong reply body");
            else if (errors < 3) std::println(stderr, "loadgen: ignored a message of type {}", type);  // a signal
            pos += total;
        }
        c.in.erase(0, pos);
        return got;
    };

    for (;;) {
        std::uint64_t t = now_ns();
        if (!measuring && t >= warm_end) {
            measuring = true;
            meas_start = t;
            cpu0 = cpu_ticks(pid);
            sw0 = voluntary_switches(pid);
            if (!cpu0) {
                std::println(stderr, "loadgen: cannot read /proc/{}/stat", pid);
                return 1;
            }
        }
        if (measuring && (t >= hard_end || calls >= max_calls)) {
            meas_end = t;
            cpu1 = cpu_ticks(pid);
            sw1 = voluntary_switches(pid);
            break;
        }
        int timeout_ms = int(((measuring ? hard_end : warm_end) - t) / 1'000'000u) + 1;
        int n = epoll_wait(ep, evs.data(), int(evs.size()), std::min(timeout_ms, 100));
        if (n < 0 && errno != EINTR) return fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
            if ((evs[i].events & EPOLLOUT) && !write_out(c, {})) return fail("send");
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t r = recv(c.fd, rbuf.data(), rbuf.size(), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                std::println(stderr, "loadgen: server closed a connection ({})", r == 0 ? "EOF" : std::strerror(errno));
                return 1;
            }
            if (r < 0) continue;
            std::uint64_t tr = now_ns();
            c.in.append(rbuf.data(), std::size_t(r));
            int got = parse(c, tr);
            if (got < 0) return 1;
            if (got == 0) continue;
            if (new_conn) {
                close(c.fd);  // also leaves the epoll set
                if (!open_conn(c)) return 1;
            } else if (!send_calls(c, got, tr)) {
                return fail("send");
            }
        }
    }

    // Fairness: the replies of the connection served least and most (a server that keeps serving one ready
    // connection while others wait shows a low min and a p99 far above p50).
    std::uint64_t conn_min = UINT64_MAX, conn_max = 0;
    for (auto& c : cs) {
        conn_min = std::min(conn_min, c->measured);
        conn_max = std::max(conn_max, c->measured);
    }
    double secs = double(meas_end - meas_start) / 1e9;
    double cpu_us = cpu1 && cpu0 ? double(*cpu1 - *cpu0) * 1e6 / double(sysconf(_SC_CLK_TCK)) : NAN;
    std::println("conns={} inflight={} new_conn={} seconds={:.3f} calls={} errors={} calls_per_s={:.0f} p50_us={:.1f} "
                 "p99_us={:.1f} server_cpu_s={:.3f} server_cpu_us_per_call={:.2f} server_cpu_util={:.2f} "
                 "server_sleeps_per_call={:.3f} conn_calls_min={} conn_calls_max={}",
                 conns, inflight, int(new_conn), secs, calls, errors, double(calls) / secs, hist.quantile(0.50) / 1e3,
                 hist.quantile(0.99) / 1e3, cpu_us / 1e6, calls ? cpu_us / double(calls) : NAN, cpu_us / 1e6 / secs,
                 sw0 && sw1 && calls ? double(*sw1 - *sw0) / double(calls) : NAN, conn_min, conn_max);
    for (auto& c : cs) close(c->fd);
    return errors ? 1 : 0;
}
