// bench/json — what every JSON library adapter implements, and the C++ types it decodes into.
//
// The job is the one svckit's varlink engine has: take one NUL-terminated message, check the envelope
// (`method` a string, `parameters` absent/null/object, `oneway`/`more`/`upgrade` booleans, unknown keys
// tolerated), dispatch on the method name, and decode the parameters into the method's C++ struct,
// naming the offending top-level field when they do not fit (InvalidParameter). And the reverse: write a
// reply or an error reply into a reused buffer, NUL included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// Every input buffer is followed by a NUL (the varlink frame terminator) and then by at least this many
// readable bytes, so that libraries that want padding (simdjson) get it without a copy.
inline constexpr std::size_t kPadding = 64;

struct Message {
    const char* data; // data[size] == '\0', data[size .. size + kPadding) readable
    std::size_t size;
    std::string_view view() const { return {data, size}; }
};

// org.example.bench.Echo(text: string) -> (text: string)
struct EchoParams {
    std::string text;
    bool operator==(const EchoParams&) const = default;
};
// org.example.bench.Add(a: int, b: int) -> (sum: int)
struct AddParams {
    std::int64_t a = 0;
    std::int64_t b = 0;
    bool operator==(const AddParams&) const = default;
};
// org.example.bench.Submit(id, user, items, comment, note) — the ~1 KiB message.
struct Item {
    std::string name;
    std::int64_t size = 0;
    std::vector<std::string> tags;
    bool enabled = false;
    double ratio = 0;
    bool operator==(const Item&) const = default;
};
struct User {
    std::string name;
    std::int64_t uid = 0;
    std::vector<std::int64_t> groups;
    std::map<std::string, std::string> labels; // varlink [string]string
    bool operator==(const User&) const = default;
};
struct SubmitParams {
    std::string id;
    User user;
    std::vector<Item> items;
    std::string comment;
    std::optional<std::string> note;
    bool operator==(const SubmitParams&) const = default;
};

enum class Method : std::uint8_t { none, echo, add, submit };

inline Method lookup_method(std::string_view m) {
    if (m == "org.example.bench.Echo") return Method::echo;
    if (m == "org.example.bench.Add") return Method::add;
    if (m == "org.example.bench.Submit") return Method::submit;
    return Method::none;
}

// A decoded call. One object is reused for every message, as an engine would per connection.
struct Call {
    std::string method;
    bool oneway = false, more = false, upgrade = false;
    Method which = Method::none;
    EchoParams echo;
    AddParams add;
    SubmitParams submit;
};

enum class Status : std::uint8_t {
    ok,
    bad_json,          // not (valid, UTF-8) JSON: protocol error, the connection is dropped
    bad_call,          // JSON, but not a varlink call (method not a string, parameters not an object, ...)
    unknown_method,    // -> org.varlink.service.MethodNotFound
    invalid_parameter, // -> org.varlink.service.InvalidParameter(parameter: <field>)
};

struct Result {
    Status status = Status::ok;
    std::string_view parameter{}; // the offending top-level parameter; static storage
};

// Names of the top-level parameters, with static storage, for Result::parameter.
namespace field {
inline constexpr std::string_view text = "text", a = "a", b = "b", id = "id", user = "user", items = "items",
                                  comment = "comment", note = "note";
}

class Codec {
public:
    virtual ~Codec() = default;
    virtual std::string_view name() const = 0;
    virtual std::string version() const = 0;
    virtual Result decode(Message in, Call& out) = 0;
    // Write `{"parameters":{"text":...}}` + NUL; the view stays valid until the next write.
    virtual std::string_view write_echo_reply(const EchoParams& p) = 0;
    // Write `{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":...}}` + NUL.
    virtual std::string_view write_invalid_parameter(std::string_view parameter) = 0;
};

// Reuse a vector element (and the capacity of its strings) when there is one.
template <class V>
auto& slot(V& v, std::size_t i) {
    if (i < v.size()) return v[i];
    return v.emplace_back();
}

std::unique_ptr<Codec> make_glaze();
std::unique_ptr<Codec> make_glaze_variant();
std::unique_ptr<Codec> make_simdjson();
std::unique_ptr<Codec> make_yyjson();
std::unique_ptr<Codec> make_boost();
std::unique_ptr<Codec> make_nlohmann();
std::unique_ptr<Codec> make_rapidjson();
std::unique_ptr<Codec> make_rapidjson_recursive();

} // namespace bench
