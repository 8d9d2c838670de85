// bench/varlink/loadgen.cpp — a varlink load generator for bench/varlink/run.
//
// N connections to one AF_UNIX path, M Echo calls {"text":"hello"} in flight on each (pipelined: every reply
// received is answered by a new call, written in one batch per wake-up), single-threaded on epoll. After a
// warm-up it measures for D seconds (or until --max-calls replies, whichever is first): replies/s, per-call
// latency p50/p99 (send to reply, from a log-linear histogram, ~1.5% resolution), and the server's CPU time
// (utime+stime of --pid from /proc/PID/stat, all its threads) divided by the calls completed, and the server's
// voluntary context switches per call (its sleeps in epoll_wait: 1 means one call per wake-up).
//
// Output: one line of key=value pairs (see print at the end). Exit status 0 if every reply was a success.
//
//   loadgen --path SOCK --pid SERVER_PID [--conns 16] [--inflight 1] [--seconds 3] [--warmup 0.5]
//           [--max-calls 100000000]
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
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

constexpr char call_text[] = "{\"method\":\"org.example.bench.Echo\",\"parameters\":{\"text\":\"hello\"}}";
constexpr std::string_view call_msg{call_text, sizeof call_text};  // with its NUL terminator
static_assert(call_msg.back() == '\0');

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
        int e = 63 - __builtin_clzll(v);  // e >= sub_bits
        int shift = e - sub_bits;
        std::size_t i = std::size_t(shift + 1) * sub + std::size_t((v >> shift) - sub);
        return std::min(i, std::size_t(exps) * sub - 1);
    }
    static double value(std::size_t i) {  // midpoint of bucket i
        if (i < sub) return double(i);
        std::size_t shift = i / sub - 1, m = i % sub + sub;
        return (double(m) + 0.5) * double(std::uint64_t(1) << shift);
    }

public:
    void add(std::uint64_t v, std::uint64_t n = 1) { counts_[index(v)] += n; total_ += n; }
    std::uint64_t total() const { return total_; }
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

struct Conn {
    int fd = -1;
    std::vector<std::uint64_t> sent_at;  // ring of send times of the calls in flight, oldest first
    std::size_t head = 0, in_flight = 0;
    std::string in;                       // partial reply carried over between reads
    std::string out;                      // calls not yet written (after a short write)
    bool want_out = false;                // EPOLLOUT registered
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
    for (int i = 3; i <= 15 && rest >> field; i++) {  // field 3 is the state
        if (i == 14) ut = std::stoull(field);
        if (i == 15) st = std::stoull(field);
    }
    return ut + st;
}

// Voluntary context switches of a process's main thread (/proc/PID/status): each is a sleep in epoll_wait for a
// single-threaded server, so per call they say how many calls one wake-up carries.
std::optional<std::uint64_t> voluntary_switches(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.starts_with("voluntary_ctxt_switches:")) return std::stoull(line.substr(line.find(':') + 1));
    return std::nullopt;
}

[[noreturn]] void usage() {
    std::println(stderr, "usage: loadgen --path SOCK --pid SERVER_PID [--conns N] [--inflight M] [--seconds D] "
                         "[--warmup W] [--max-calls K]");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string path;
    long pid = 0;
    int conns = 16, inflight = 1;
    double seconds = 3, warmup = 0.5;
    std::uint64_t max_calls = 100'000'000;
    for (int i = 1; i < argc; i++) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "--path") path = v;
        else if (a == "--pid") pid = std::atol(v);
        else if (a == "--conns") conns = std::atoi(v);
        else if (a == "--inflight") inflight = std::atoi(v);
        else if (a == "--seconds") seconds = std::atof(v);
        else if (a == "--warmup") warmup = std::atof(v);
        else if (a == "--max-calls") max_calls = std::strtoull(v, nullptr, 10);
        else usage();
    }
    // Bounds: a benchmark, not a stress tool.
    if (path.empty() || pid <= 0 || conns < 1 || conns > 1024 || inflight < 1 || inflight > 4096 || !(seconds > 0) ||
        seconds > 600 || warmup < 0 || warmup > 60 || max_calls < 1)
        usage();

    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) usage();
    std::memcpy(sa.sun_path, path.data(), path.size());

    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<std::unique_ptr<Conn>> cs;
    std::string batch;
    for (int i = 0; i < inflight; i++) batch.append(call_msg);
    const std::uint64_t start_ns = now_ns();
    for (int i = 0; i < conns; i++) {
        auto c = std::make_unique<Conn>();
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int r;
        while ((r = connect(c->fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa)) < 0 && (errno == EAGAIN || errno == EINTR) &&
               now_ns() - start_ns < 5'000'000'000u)
            usleep(1000);
        if (r < 0) {
            std::println(stderr, "loadgen: connect {}: {}", path, std::strerror(errno));
            return 1;
        }
        c->sent_at.assign(std::size_t(inflight), 0);
        epoll_event ev{.events = EPOLLIN, .data = {.ptr = c.get()}};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        cs.push_back(std::move(c));
    }

    auto send_calls = [&](Conn& c, int n, std::uint64_t t) -> bool {
        for (int k = 0; k < n; k++) {
            c.sent_at[(c.head + c.in_flight) % c.sent_at.size()] = t;
            c.in_flight++;
        }
        std::string_view buf(batch.data(), std::size_t(n) * call_msg.size());
        if (!c.out.empty()) {
            c.out.append(buf);
            buf = c.out;
        }
        ssize_t w = send(c.fd, buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
        if (w < 0) w = 0;
        std::string rest(buf.substr(std::size_t(w)));
        c.out = std::move(rest);
        if (c.want_out != !c.out.empty()) {  // touch epoll only when the interest changes
            c.want_out = !c.out.empty();
            epoll_event ev{.events = EPOLLIN | (c.want_out ? unsigned(EPOLLOUT) : 0u), .data = {.ptr = &c}};
            epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
        return true;
    };

    std::uint64_t t0 = now_ns();
    for (auto& c : cs)
        if (!send_calls(*c, inflight, t0)) {
            std::println(stderr, "loadgen: send: {}", std::strerror(errno));
            return 1;
        }

    const auto warm_end = t0 + std::uint64_t(warmup * 1e9);
    const auto hard_end = warm_end + std::uint64_t(seconds * 1e9);
    bool measuring = false;
    std::uint64_t meas_start = 0, meas_end = 0, calls = 0, errors = 0;
    std::optional<std::uint64_t> cpu0, cpu1, sw0, sw1;
    Histogram hist;
    std::vector<char> rbuf(1 << 16);
    std::array<epoll_event, 256> evs;
    const std::string_view ok_reply = "{\"parameters\":{\"text\":\"hello\"}}";

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
        if (n < 0 && errno != EINTR) {
            std::println(stderr, "loadgen: epoll_wait: {}", std::strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
            if (evs[i].events & EPOLLOUT) send_calls(c, 0, 0);
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t r = recv(c.fd, rbuf.data(), rbuf.size(), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                std::println(stderr, "loadgen: server closed a connection ({})", r == 0 ? "EOF" : std::strerror(errno));
                return 1;
            }
            if (r < 0) continue;
            std::uint64_t tr = now_ns();
            int got = 0;
            std::string_view data(rbuf.data(), std::size_t(r));
            while (!data.empty()) {
                auto z = data.find('\0');
                if (z == std::string_view::npos) {
                    c.in.append(data);
                    break;
                }
                std::string_view msg = data.substr(0, z);
                if (!c.in.empty()) {
                    c.in.append(msg);
                    msg = c.in;
                }
                if (msg != ok_reply) {
                    if (errors < 3) std::println(stderr, "loadgen: unexpected reply: {}", msg.substr(0, 200));
                    errors += measuring;
                }
                std::uint64_t ts = c.sent_at[c.head];
                c.head = (c.head + 1) % c.sent_at.size();
                c.in_flight--;
                if (measuring && ts >= meas_start) hist.add(tr - ts);  // calls sent during warm-up are not timed
                calls += measuring;
                got++;
                c.in.clear();
                data.remove_prefix(z + 1);
            }
            if (got && !send_calls(c, got, tr)) {
                std::println(stderr, "loadgen: send: {}", std::strerror(errno));
                return 1;
            }
        }
    }

    double secs = double(meas_end - meas_start) / 1e9;
    double cpu_us = cpu1 && cpu0 ? double(*cpu1 - *cpu0) * 1e6 / double(sysconf(_SC_CLK_TCK)) : NAN;
    std::println("conns={} inflight={} seconds={:.3f} calls={} errors={} calls_per_s={:.0f} p50_us={:.1f} p99_us={:.1f} "
                 "server_cpu_s={:.3f} server_cpu_us_per_call={:.2f} server_cpu_util={:.2f} server_sleeps_per_call={:.3f}",
                 conns, inflight, secs, calls, errors, double(calls) / secs, hist.quantile(0.50) / 1e3,
                 hist.quantile(0.99) / 1e3, cpu_us / 1e6, calls ? cpu_us / double(calls) : NAN, cpu_us / 1e6 / secs,
                 sw0 && sw1 && calls ? double(*sw1 - *sw0) / double(calls) : NAN);
    for (auto& c : cs) close(c->fd);
    return errors ? 1 : 0;
}
