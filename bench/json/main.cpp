// bench/json — JSON libraries on varlink-sized messages. See docs/json-choice.md for how to run it.
//
// For every library adapter (lib_*.cpp) it first checks correctness (valid calls decode to the expected
// structs, also into a dirty reused struct; replies are byte-exact; every bad input is rejected with the
// right class of error and field; absurd nesting neither crashes nor hangs), then times each case:
// calibrated batches of ~1 ms, a discarded warm-up batch, RUNS batches interleaved across libraries,
// steady_clock; ns/op is the median batch (the fastest batch is reported too). Then it counts heap allocations per op (malloc hook).
#include "common.hpp"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {
extern std::uint64_t g_allocations;
std::string simdjson_implementation();
} // namespace bench

using namespace bench;
using namespace std::string_view_literals;

namespace {

// ---------------------------------------------------------------------------------------------------
// Inputs: each in its own buffer, NUL-terminated and padded (as an engine's receive buffer would be).

struct Owned {
    std::vector<char> buf;
    std::size_t size = 0;
    explicit Owned(std::string_view s) : buf(s.size() + 1 + kPadding, '\0'), size(s.size()) {
        std::memcpy(buf.data(), s.data(), s.size());
    }
    Message msg() const { return {buf.data(), size}; }
};

constexpr std::string_view kEcho = R"({"method":"org.example.bench.Echo","parameters":{"text":"hello"}})";
constexpr std::string_view kAdd =
    R"({"method":"org.example.bench.Add","parameters":{"a":1234567890123,"b":-9876543210}})";
constexpr std::string_view kSubmit =
    R"JSON({"method":"org.example.bench.Submit","parameters":{"id":"req-7f3a9c2e-1b4d-4e8f-9a6b-0c5d2e7f1a3b",)JSON"
    R"JSON("user":{"name":"Zo\u00eb \"zed\" O'Brien","uid":1000,"groups":[4,24,27,30,46,100,1000],)JSON"
    R"JSON("labels":{"team":"platform\/infra","tier":"gold","path":"C:\\Users\\zoe","note":"line1\nline2\ttab"}},)JSON"
    R"JSON("items":[{"name":"alpha","size":1024,"tags":["a","b","c"],"enabled":true,"ratio":0.5},)JSON"
    R"JSON({"name":"beta \u00e9\u4e2d\u6587","size":-42,"tags":[],"enabled":false,"ratio":-2.75},)JSON"
    R"JSON({"name":"gamma","size":9007199254740993,"tags":["x\"y","z"],"enabled":true,"ratio":150},)JSON"
    R"JSON({"name":"delta","size":0,"tags":["one","two","three","four"],"enabled":false,"ratio":0.25},)JSON"
    R"JSON({"name":"epsilon \ud83d\ude00","size":7,"tags":["emoji"],"enabled":true,"ratio":1e2}],)JSON"
    R"JSON("comment":"The quick brown fox \"jumps\" over the lazy dog.\nSnowman: \u2603, tab:\t, backslash: \\, )JSON"
    R"JSON(slash: \/. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt )JSON"
    R"JSON(ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.",)JSON"
    R"JSON("note":null,"x-trace":{"span":"a1b2c3d4e5f6","sampled":true,"hops":[1,2,3,{"via":"gateway-01"}]}},)JSON"
    R"JSON("more":false})JSON";

SubmitParams expected_submit() {
    SubmitParams p;
    p.id = "req-7f3a9c2e-1b4d-4e8f-9a6b-0c5d2e7f1a3b";
    p.user.name = "Zo\xc3\xab \"zed\" O'Brien";
    p.user.uid = 1000;
    p.user.groups = {4, 24, 27, 30, 46, 100, 1000};
    p.user.labels = {{"team", "platform/infra"}, {"tier", "gold"}, {"path", "C:\\Users\\zoe"},
                     {"note", "line1\nline2\ttab"}};
    p.items = {
        {"alpha", 1024, {"a", "b", "c"}, true, 0.5},
        {"beta \xc3\xa9\xe4\xb8\xad\xe6\x96\x87", -42, {}, false, -2.75},
        {"gamma", 9007199254740993, {"x\"y", "z"}, true, 150.0},
        {"delta", 0, {"one", "two", "three", "four"}, false, 0.25},
        {"epsilon \xf0\x9f\x98\x80", 7, {"emoji"}, true, 100.0},
    };
    p.comment = "The quick brown fox \"jumps\" over the lazy dog.\nSnowman: \xe2\x98\x83, tab:\t, backslash: \\, "
                "slash: /. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
                "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.";
    return p;
}

constexpr std::string_view kEchoReply = "{\"parameters\":{\"text\":\"hello\"}}\0"sv;
constexpr std::string_view kErrorReply =
    "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"text\"}}\0"sv;

struct Expect {
    std::string_view what;
    std::string_view json;
    Status status;
    std::string_view parameter = {};
    Status alt = Status::ok; // a second acceptable answer, where JSON leaves room (ok = none)
};

// (e) bad input. Every one must be rejected, with this class of error (and field).
const std::vector<Expect> kBad = {
    {"empty", "", Status::bad_json},
    {"truncated", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello"})", Status::bad_json},
    {"unterminated string", R"({"method":"org.example.bench.Echo","parameters":{"text":"hel)", Status::bad_json},
    {"trailing garbage", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello"}}x)", Status::bad_json},
    {"second value", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello"}} {})", Status::bad_json},
    {"trailing comma", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello",}})", Status::bad_json},
    {"bad literal in unknown key", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello","x":tru}})",
     Status::bad_json},
    {"bad bracket in unknown key", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello","x":[1,2}}})",
     Status::bad_json},
    {"bad number in unknown key", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello","x":01}})",
     Status::bad_json},
    {"raw control char", "{\"method\":\"org.example.bench.Echo\",\"parameters\":{\"text\":\"he\x01llo\"}}",
     Status::bad_json},
    {"invalid UTF-8", "{\"method\":\"org.example.bench.Echo\",\"parameters\":{\"text\":\"bad \xff\"}}", Status::bad_json},
    {"invalid UTF-8 in unknown key", "{\"method\":\"org.example.bench.Echo\",\"parameters\":{\"text\":\"ok\",\"x\":\"\xc3\x28\"}}",
     Status::bad_json},
    {"bad escape", R"({"method":"org.example.bench.Echo","parameters":{"text":"a\qb"}})", Status::bad_json},
    {"not an object", R"(["org.example.bench.Echo"])", Status::bad_call},
    {"method not a string", R"({"method":42,"parameters":{"text":"hello"}})", Status::bad_call},
    {"no method", R"({"parameters":{"text":"hello"}})", Status::bad_call},
    {"parameters an array", R"({"method":"org.example.bench.Echo","parameters":["hello"]})", Status::bad_call},
    {"oneway not a bool", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello"},"oneway":"yes"})",
     Status::bad_call},
    {"unknown method", R"({"method":"org.example.bench.Nope","parameters":{}})", Status::unknown_method},
    {"text a number", R"({"method":"org.example.bench.Echo","parameters":{"text":5}})", Status::invalid_parameter,
     "text"},
    {"text missing", R"({"method":"org.example.bench.Echo","parameters":{"txt":"hello"}})", Status::invalid_parameter,
     "text"},
    {"text null", R"({"method":"org.example.bench.Echo","parameters":{"text":null}})", Status::invalid_parameter, "text"},
    {"parameters null", R"({"method":"org.example.bench.Echo","parameters":null})", Status::invalid_parameter, "text"},
    {"parameters absent", R"({"method":"org.example.bench.Echo"})", Status::invalid_parameter, "text"},
    {"b a string", R"({"method":"org.example.bench.Add","parameters":{"a":1,"b":"2"}})", Status::invalid_parameter, "b"},
    {"a > INT64_MAX", R"({"method":"org.example.bench.Add","parameters":{"a":9223372036854775808,"b":1}})",
     Status::invalid_parameter, "a"},
    {"b < INT64_MIN", R"({"method":"org.example.bench.Add","parameters":{"a":1,"b":-9223372036854775809}})",
     Status::invalid_parameter, "b"},
    {"a fractional", R"({"method":"org.example.bench.Add","parameters":{"a":1.5,"b":1}})", Status::invalid_parameter, "a"},
    {"a a bool", R"({"method":"org.example.bench.Add","parameters":{"a":true,"b":1}})", Status::invalid_parameter, "a"},
    {"a 1e400", R"({"method":"org.example.bench.Add","parameters":{"a":1e400,"b":1}})", Status::invalid_parameter, "a",
     Status::bad_json},
    {"b missing", R"({"method":"org.example.bench.Add","parameters":{"a":1}})", Status::invalid_parameter, "b"},
    {"nested: items[1].size a string",
     R"({"method":"org.example.bench.Submit","parameters":{"id":"x","user":{"name":"n","uid":1,"groups":[],"labels":{}},"items":[{"name":"a","size":1,"tags":[],"enabled":true,"ratio":1},{"name":"b","size":"2","tags":[],"enabled":true,"ratio":1}],"comment":""}})",
     Status::invalid_parameter, "items"},
    {"nested: user.groups has 1.5",
     R"({"method":"org.example.bench.Submit","parameters":{"id":"x","user":{"name":"n","uid":1,"groups":[1,1.5],"labels":{}},"items":[],"comment":""}})",
     Status::invalid_parameter, "user"},
    {"nested: user.labels value a number",
     R"({"method":"org.example.bench.Submit","parameters":{"id":"x","user":{"name":"n","uid":1,"groups":[],"labels":{"k":1}},"items":[],"comment":""}})",
     Status::invalid_parameter, "user"},
    {"nested: user.uid missing",
     R"({"method":"org.example.bench.Submit","parameters":{"id":"x","user":{"name":"n","groups":[],"labels":{}},"items":[],"comment":""}})",
     Status::invalid_parameter, "user"},
    {"note a number",
     R"({"method":"org.example.bench.Submit","parameters":{"id":"x","user":{"name":"n","uid":1,"groups":[],"labels":{}},"items":[],"comment":"","note":3}})",
     Status::invalid_parameter, "note"},
};

// Valid but unusual calls: must decode.
struct Good {
    std::string_view what;
    std::string_view json;
    std::function<bool(const Call&)> check;
};
const std::vector<Good> kGood = {
    {"parameters before method", R"({"parameters":{"text":"hello"},"method":"org.example.bench.Echo"})",
     [](const Call& c) { return c.which == Method::echo && c.echo.text == "hello"; }},
    {"escapes in value, more:true", R"({"method":"org.example.bench.Echo","parameters":{"text":"h\u00e9 \"q\" \\"},"more":true})",
     [](const Call& c) { return c.which == Method::echo && c.echo.text == "h\xc3\xa9 \"q\" \\" && c.more && !c.oneway; }},
    {"NUL in string (\\u0000)", R"({"method":"org.example.bench.Echo","parameters":{"text":"a\u0000b"}})",
     [](const Call& c) { return c.which == Method::echo && c.echo.text == std::string_view("a\0b", 3); }},
    {"int64 extremes, unknown nested key",
     R"({"method":"org.example.bench.Add","parameters":{"b":-9223372036854775808,"x":[{"y":[]},null],"a":9223372036854775807}})",
     [](const Call& c) { return c.which == Method::add && c.add.a == INT64_MAX && c.add.b == INT64_MIN; }},
    {"whitespace everywhere", " \n{ \"method\" : \"org.example.bench.Echo\" ,\t\"parameters\" : { \"text\" : \"hello\" } }\r\n",
     [](const Call& c) { return c.which == Method::echo && c.echo.text == "hello"; }},
    {"oneway:true", R"({"method":"org.example.bench.Echo","parameters":{"text":"hello"},"oneway":true})",
     [](const Call& c) { return c.which == Method::echo && c.oneway; }},
    {"escaped key (\\u006dethod)", R"({"\u006dethod":"org.example.bench.Echo","parameters":{"text":"hello"}})",
     [](const Call& c) { return c.which == Method::echo && c.echo.text == "hello"; }},
};

const char* status_name(Status s) {
    switch (s) {
    case Status::ok: return "ok";
    case Status::bad_json: return "bad_json";
    case Status::bad_call: return "bad_call";
    case Status::unknown_method: return "unknown_method";
    case Status::invalid_parameter: return "invalid_parameter";
    }
    return "?";
}

std::string describe(Result r) {
    std::string s = status_name(r.status);
    if (r.status == Status::invalid_parameter) s += "(" + std::string(r.parameter) + ")";
    return s;
}

// ---------------------------------------------------------------------------------------------------

template <class T>
inline void do_not_optimize(T const& v) {
    asm volatile("" : : "r,m"(v) : "memory");
}

enum class Kind { echo, add, submit, reply, error, bad };
struct CaseInfo {
    Kind kind;
    const char* name;
    const char* what;
};
const CaseInfo kCases[] = {
    {Kind::echo, "a_echo", "(a) decode Echo call (68 B)"},
    {Kind::add, "b_add", "(b) decode Add call, two int64 (82 B)"},
    {Kind::submit, "c_submit", "(c) decode ~1 KiB Submit call"},
    {Kind::reply, "d_reply", "(d) write Echo reply"},
    {Kind::error, "d_error", "(d) write InvalidParameter error"},
    {Kind::bad, "e_bad", "(e) reject bad input (mean over the bad set)"},
};

struct Inputs {
    Owned echo{kEcho}, add{kAdd}, submit{kSubmit};
    std::vector<Owned> bad;
    Inputs() {
        for (const auto& b : kBad) bad.emplace_back(b.json);
    }
};

std::uint64_t g_failures = 0; // ops in timed loops that did not give the expected status

// One op of a case; returns something that depends on the result.
inline std::uint64_t op(Kind k, Codec& c, Call& call, const Inputs& in, std::size_t i) {
    switch (k) {
    case Kind::echo: {
        auto r = c.decode(in.echo.msg(), call);
        g_failures += r.status != Status::ok;
        return call.echo.text.size() + call.method.size();
    }
    case Kind::add: {
        auto r = c.decode(in.add.msg(), call);
        g_failures += r.status != Status::ok;
        return std::uint64_t(call.add.a + call.add.b);
    }
    case Kind::submit: {
        auto r = c.decode(in.submit.msg(), call);
        g_failures += r.status != Status::ok;
        return call.submit.items.size() + call.submit.comment.size() + call.submit.user.labels.size();
    }
    case Kind::reply: {
        static const EchoParams p{"hello"};
        auto v = c.write_echo_reply(p);
        return v.size() + std::uint8_t(v[v.size() / 2]);
    }
    case Kind::error: {
        auto v = c.write_invalid_parameter(field::text);
        return v.size() + std::uint8_t(v[v.size() / 2]);
    }
    case Kind::bad: {
        const auto& m = in.bad[i % in.bad.size()];
        auto r = c.decode(m.msg(), call); // (which ones a library gets wrong is in the CHECK lines)
        return std::uint64_t(r.status) + r.parameter.size();
    }
    }
    return 0;
}

double batch_ns(Kind k, Codec& c, Call& call, const Inputs& in, std::size_t iters) {
    std::uint64_t acc = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < iters; ++i) {
        acc += op(k, c, call, in, i);
        do_not_optimize(acc);
    }
    auto t1 = std::chrono::steady_clock::now();
    do_not_optimize(acc);
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / double(iters);
}

// ---------------------------------------------------------------------------------------------------

struct Checker {
    int failures = 0;
    std::vector<std::string> notes;
    void fail(const Codec& c, const std::string& what) {
        ++failures;
        notes.push_back(std::string(c.name()) + ": " + what);
    }
};

void check_codec(Codec& c, const Inputs& in, Checker& ck, std::vector<std::string>& matrix) {
    Call call;
    // (a), (b), (c)
    if (auto r = c.decode(in.echo.msg(), call); r.status != Status::ok || call.which != Method::echo ||
                                                call.method != "org.example.bench.Echo" || call.echo.text != "hello")
        ck.fail(c, "Echo call: " + describe(r));
    if (auto r = c.decode(in.add.msg(), call);
        r.status != Status::ok || call.which != Method::add || call.add.a != 1234567890123 || call.add.b != -9876543210)
        ck.fail(c, "Add call: " + describe(r));
    const SubmitParams want = expected_submit();
    if (auto r = c.decode(in.submit.msg(), call); r.status != Status::ok || call.which != Method::submit ||
                                                  !(call.submit == want) || !(!call.more && !call.oneway))
        ck.fail(c, "Submit call: " + describe(r));
    // The same into a dirty, reused struct (more items, stale labels, a stale note): the result must not
    // depend on what was there before.
    {
        Call dirty;
        dirty.submit = want;
        dirty.submit.items.resize(9, Item{"junk", 1, {"j", "k"}, true, 9});
        dirty.submit.user.labels["zzz"] = "stale";
        dirty.submit.user.groups.push_back(99);
        dirty.submit.note = "stale";
        dirty.submit.items[0].tags.resize(7, "stale");
        dirty.oneway = true;
        if (auto r = c.decode(in.submit.msg(), dirty); r.status != Status::ok || !(dirty.submit == want) || dirty.oneway) {
            std::string diff;
            if (dirty.submit.items.size() != want.items.size()) diff += " items.size";
            if (dirty.submit.user.labels != want.user.labels) diff += " labels";
            if (dirty.submit.user.groups != want.user.groups) diff += " groups";
            if (dirty.submit.note != want.note) diff += " note";
            if (!dirty.submit.items.empty() && dirty.submit.items[0].tags != want.items[0].tags) diff += " tags";
            if (dirty.oneway) diff += " oneway";
            ck.fail(c, "Submit into a dirty struct: " + describe(r) + ", stale:" + diff);
        }
    }
    // (d)
    if (auto v = c.write_echo_reply(EchoParams{"hello"}); v != kEchoReply)
        ck.fail(c, "Echo reply bytes: " + std::string(v));
    if (auto v = c.write_invalid_parameter("text"); v != kErrorReply)
        ck.fail(c, "error reply bytes: " + std::string(v));
    {
        constexpr std::string_view want_escaped = "{\"parameters\":{\"text\":\"say \\\"hi\\\"\\\\ \\n \xc3\xa9 \\t\"}}\0"sv;
        if (auto v = c.write_echo_reply(EchoParams{"say \"hi\"\\ \n \xc3\xa9 \t"}); v != want_escaped)
            ck.fail(c, "escaped reply bytes: " + std::string(v));
    }
    // (e)
    for (std::size_t i = 0; i < kBad.size(); ++i) {
        const auto& e = kBad[i];
        Result r = c.decode(in.bad[i].msg(), call);
        bool good = (r.status == e.status && (e.status != Status::invalid_parameter || r.parameter == e.parameter)) ||
                    (e.alt != Status::ok && r.status == e.alt);
        matrix.push_back(std::string(c.name()) + "\tbad\t" + std::string(e.what) + "\t" + describe(r) + "\t" +
                         (good ? "pass" : "FAIL"));
        if (!good) {
            std::string want_s = status_name(e.status);
            if (e.status == Status::invalid_parameter) want_s += "(" + std::string(e.parameter) + ")";
            ck.fail(c, "bad input '" + std::string(e.what) + "': got " + describe(r) + ", want " + want_s);
        }
    }
    for (const auto& g : kGood) {
        Owned o(g.json);
        Result r = c.decode(o.msg(), call);
        bool good = r.status == Status::ok && g.check(call);
        matrix.push_back(std::string(c.name()) + "\tgood\t" + std::string(g.what) + "\t" + describe(r) + "\t" +
                         (good ? "pass" : "FAIL"));
        if (!good) ck.fail(c, "valid input '" + std::string(g.what) + "': got " + describe(r));
    }
}

// Absurd nesting in a child process: a crash (stack overflow) shows as a signal.
std::string deep_check(Codec& c, const std::string& json) {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        Owned o(json);
        Call call;
        Result r = c.decode(o.msg(), call);
        _exit(10 + int(r.status));
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) return std::string("CRASH (signal ") + std::to_string(WTERMSIG(st)) + ")";
    if (WIFEXITED(st) && WEXITSTATUS(st) >= 10) return status_name(Status(WEXITSTATUS(st) - 10));
    return "?";
}

} // namespace

int main(int argc, char** argv) {
    // Many short batches: on a shared 2-core machine a 1 ms batch usually runs without being preempted,
    // so the median of 101 of them is stable where a few long batches each absorb other processes' time.
    int runs = 101;
    double batch_ms = 1;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
        else if (a == "--batch-ms" && i + 1 < argc) batch_ms = std::atof(argv[++i]);
        else if (a == "--only" && i + 1 < argc) only = argv[++i];
        else if (a == "--check") runs = 0;
        else {
            std::fprintf(stderr, "usage: %s [--runs N] [--batch-ms MS] [--only LIB] [--check]\n", argv[0]);
            return 2;
        }
    }

    std::vector<std::unique_ptr<Codec>> codecs;
    codecs.push_back(make_glaze());
    codecs.push_back(make_glaze_variant());
    codecs.push_back(make_simdjson());
    codecs.push_back(make_yyjson());
    codecs.push_back(make_rapidjson());
    codecs.push_back(make_rapidjson_recursive());
    codecs.push_back(make_boost());
    codecs.push_back(make_nlohmann());
    if (!only.empty())
        std::erase_if(codecs, [&](const auto& c) { return c->name() != only; });

    Inputs in;
    std::printf("# bench/json: %zu-byte Echo, %zu-byte Add, %zu-byte Submit, %zu bad inputs, %zu odd-but-valid inputs\n",
                kEcho.size(), kAdd.size(), kSubmit.size(), kBad.size(), kGood.size());
    for (auto& c : codecs) std::printf("# %-14s %s\n", std::string(c->name()).c_str(), c->version().c_str());
    std::printf("# simdjson kernels: %s\n", simdjson_implementation().c_str());

    // Correctness.
    Checker ck;
    std::vector<std::string> matrix;
    for (auto& c : codecs) check_codec(*c, in, ck, matrix);
    for (const auto& m : matrix) std::printf("CHECK\t%s\n", m.c_str());
    const std::string prefix = R"({"method":"org.example.bench.Echo","parameters":{"text":"x","deep":)";
    // 100 000 and 4 000 000 levels (the latter is an 8 MB message: under sd-varlink's 16 MiB cap).
    for (int depth : {100000, 4000000}) {
        const std::string deep_ok = prefix + std::string(depth, '[') + std::string(depth, ']') + "}}";
        const std::string deep_bad = prefix + std::string(depth, '[');
        for (auto& c : codecs) {
            std::string r = deep_check(*c, deep_ok);
            std::printf("DEEP\t%s\tbalanced, depth %d (valid JSON)\t%s\n", std::string(c->name()).c_str(), depth,
                        r.c_str());
            if (r.starts_with("CRASH")) ck.fail(*c, "crashed on deep input");
            r = deep_check(*c, deep_bad);
            std::printf("DEEP\t%s\tunbalanced, depth %d\t%s\n", std::string(c->name()).c_str(), depth, r.c_str());
            if (r == "ok" || r.starts_with("CRASH")) ck.fail(*c, "unbalanced deep input: " + r);
        }
    }
    for (const auto& n : ck.notes) std::printf("FAILED\t%s\n", n.c_str());
    std::printf("# correctness: %d failure(s)\n", ck.failures);
    if (runs == 0) return 0;

    // Timing.
    std::vector<Call> calls(codecs.size());
    std::printf("RESULT\tcase\tlibrary\tmedian_ns\tmin_ns\tmax_ns\tallocs_per_op\n");
    for (const auto& cs : kCases) {
        std::vector<std::size_t> iters(codecs.size());
        for (std::size_t j = 0; j < codecs.size(); ++j) {
            std::size_t n = 256;
            for (;;) { // calibrate (doubles as warm-up)
                double ns = batch_ns(cs.kind, *codecs[j], calls[j], in, n);
                if (ns * double(n) > 2e6 || n > (1u << 26)) {
                    iters[j] = std::max<std::size_t>(kBad.size(), std::size_t(batch_ms * 1e6 / ns));
                    break;
                }
                n *= 2;
            }
            iters[j] -= iters[j] % (cs.kind == Kind::bad ? kBad.size() : 1); // whole passes over the bad set
            batch_ns(cs.kind, *codecs[j], calls[j], in, iters[j]);           // warm-up batch, discarded
        }
        std::vector<std::vector<double>> samples(codecs.size());
        for (int r = 0; r < runs; ++r)
            for (std::size_t j = 0; j < codecs.size(); ++j)
                samples[j].push_back(batch_ns(cs.kind, *codecs[j], calls[j], in, iters[j]));
        for (std::size_t j = 0; j < codecs.size(); ++j) {
            auto& s = samples[j];
            std::sort(s.begin(), s.end());
            // Allocations: a further pass, counted.
            const std::size_t kCount = kBad.size() * 100; // whole passes over the bad set
            for (std::size_t i = 0; i < 64; ++i) op(cs.kind, *codecs[j], calls[j], in, i);
            std::uint64_t before = g_allocations;
            std::uint64_t acc = 0;
            for (std::size_t i = 0; i < kCount; ++i) acc += op(cs.kind, *codecs[j], calls[j], in, i);
            do_not_optimize(acc);
            double allocs = double(g_allocations - before) / double(kCount);
            std::printf("RESULT\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.2f\n", cs.name, std::string(codecs[j]->name()).c_str(),
                        s[s.size() / 2], s.front(), s.back(), allocs);
        }
        std::fflush(stdout);
    }
    if (g_failures) {
        std::printf("# ERROR: %" PRIu64 " timed ops gave an unexpected status\n", g_failures);
        return 1;
    }
    return 0; // correctness failures are findings, reported above, not a reason to stop
}
