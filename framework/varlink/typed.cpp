#include <svckit/varlink_typed.hpp>

#include <svckit/varlink_codec.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace svckit::varlink {

ErrorReply ErrorReply::invalidParameter(std::string_view parameter) {
    std::string json;
    JsonWriter w(json);
    w.beginObject();
    w.field("parameter", parameter);
    w.endObject();
    return ErrorReply(std::string(errorInvalidParameter), std::move(json));
}

ErrorReply ErrorReply::permissionDenied() {
    return ErrorReply(std::string(errorPermissionDenied));
}

ErrorReply ErrorReply::system(int errnoValue) {
    std::string json;
    JsonWriter w(json);
    w.beginObject();
    w.field("origin", "linux");
    w.field("errno", errnoValue);
    if (const char* name = ::strerrorname_np(errnoValue))
        w.field("errnoName", name);
    w.endObject();
    return ErrorReply(std::string(errorSystem), std::move(json));
}

void ErrorReply::writeMembers(JsonWriter& writer) const {
    // "{}" (most errors) costs nothing; other parameters are parsed, so that only a JSON object goes out.
    std::string_view json = parametersJson_;
    size_t open = json.find_first_not_of(" \t\r\n");
    size_t close = json.find_last_not_of(" \t\r\n");
    if (open == std::string_view::npos || json[open] != '{' || json[close] != '}')
        return;
    std::string_view inside = json.substr(open + 1, close - open - 1);
    if (inside.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return;
    auto document = JsonDocument::parse(json);
    if (!document || !document->root().isObject())
        return;
    writer.members(document->root());
}

namespace codec {
namespace {

// sd_json_dispatch_int64 also takes an integer written as a string (for JSON implementations that cannot do
// 64-bit integers): strtoll with base 0 — leading whitespace, a sign, decimal, 0x hex or 0 octal — and
// nothing after it.
bool parseIntString(std::string_view text, int64_t& out) noexcept {
    if (text.empty() || text.size() > 64 || std::memchr(text.data(), 0, text.size()))
        return false;
    char buffer[65];
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    char* end = nullptr;
    errno = 0;
    long long value = std::strtoll(buffer, &end, 0);
    if (errno != 0 || end == buffer || *end != '\0')
        return false;
    out = value;
    return true;
}

} // namespace

Status decode(yyjson_val* v, int64_t& out, Mode) noexcept {
    if (yyjson_is_sint(v)) {
        out = yyjson_get_sint(v);
        return Status::Ok;
    }
    if (yyjson_is_uint(v)) {
        if (yyjson_get_uint(v) > static_cast<uint64_t>(INT64_MAX))
            return Status::Late; // an unsigned integer to the IDL check, too big when dispatched
        out = static_cast<int64_t>(yyjson_get_uint(v));
        return Status::Ok;
    }
    if (yyjson_is_real(v)) {
        // 1.0 and 1e3 are integers to sd-json: a real without a fraction, in range. yyjson reads an integer
        // literal below INT64_MIN as a real that rounds to -2^63, so -2^63 itself is out (as sd-json has it
        // for such literals; it accepts a few other spellings of -2^63 as a real, which is not worth telling
        // apart).
        double d = yyjson_get_real(v);
        if (!std::isfinite(d) || std::trunc(d) != d)
            return Status::Invalid;
        if (d > -9223372036854775808.0 && d < 9223372036854775808.0) {
            out = static_cast<int64_t>(d);
            return Status::Ok;
        }
        return d >= 0 && d < 18446744073709551616.0 ? Status::Late : Status::Invalid;
    }
    if (yyjson_is_str(v))
        return parseIntString(std::string_view(yyjson_get_str(v), yyjson_get_len(v)), out) ? Status::Ok
                                                                                           : Status::Late;
    return Status::Invalid;
}

Status decode(yyjson_val* v, double& out, Mode) noexcept {
    if (!yyjson_is_num(v))
        return Status::Invalid;
    out = yyjson_get_num(v);
    return Status::Ok;
}

Status decode(yyjson_val* v, bool& out, Mode) noexcept {
    if (!yyjson_is_bool(v))
        return Status::Invalid;
    out = yyjson_get_bool(v);
    return Status::Ok;
}

Status decode(yyjson_val* v, std::string& out, Mode) {
    if (!yyjson_is_str(v))
        return Status::Invalid;
    out.assign(yyjson_get_str(v), yyjson_get_len(v));
    return Status::Ok;
}

Status decode(yyjson_val* v, JsonValue& out, Mode) {
    if (!yyjson_is_obj(v))
        return Status::Invalid;
    out = JsonValue::from(JsonView(node(v)));
    return Status::Ok;
}

} // namespace codec

namespace detail {

Method method(Method generated, const MethodSettings& settings) {
    generated.acceptsFds = generated.acceptsFds || settings.acceptFds;
    generated.requiresMore = generated.requiresMore || settings.requireMore;
    if (settings.policy)
        return restrict(std::move(generated), *settings.policy);
    return generated;
}

ErrorReply errorOf(const ReplyMessage& reply) {
    JsonView parameters = reply.parameters();
    return ErrorReply(std::string(reply.error().value_or("")),
                      parameters.isObject() ? JsonValue::from(parameters).json() : std::string("{}"));
}

} // namespace detail
} // namespace svckit::varlink
