// svckit/varlink_codec.hpp — for the code varlink-codegen generates (its .varlink.cpp files), not for service
// code: decoding JSON straight into the generated structs, validated as sd-varlink validates parameters
// against the IDL (docs/varlink-codegen.md). It is the one installed header that includes yyjson.h, the JSON
// library svckit parses with; the rest of svckit's API keeps it out of sight (JsonView holds an opaque
// JsonNode, docs/abi.md). The walks over objects, arrays and maps are inline, in the generated code, as they
// were when yyjson was in every header: the hot path of a call did not change.
#pragma once

#include <svckit/export.hpp>
#include <svckit/varlink_json.hpp>
#include <svckit/varlink_typed.hpp>

#include <yyjson.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::varlink::codec {

// A JsonNode is a yyjson_val: the view's node as the parser's value, and back.
[[nodiscard]] inline yyjson_val* raw(const JsonNode* node) noexcept {
    return reinterpret_cast<yyjson_val*>(const_cast<JsonNode*>(node));
}
[[nodiscard]] inline const JsonNode* node(const yyjson_val* value) noexcept {
    return reinterpret_cast<const JsonNode*>(value);
}

SVCKIT_EXPORT Status decode(yyjson_val* v, int64_t& out, Mode mode) noexcept;
SVCKIT_EXPORT Status decode(yyjson_val* v, double& out, Mode mode) noexcept;
SVCKIT_EXPORT Status decode(yyjson_val* v, bool& out, Mode mode) noexcept;
SVCKIT_EXPORT Status decode(yyjson_val* v, std::string& out, Mode mode);
SVCKIT_EXPORT Status decode(yyjson_val* v, JsonValue& out, Mode mode); // `object`: a JSON object
template <Struct T>
Status decode(yyjson_val* v, T& out, Mode mode);
template <Enum E>
Status decode(yyjson_val* v, E& out, Mode mode) noexcept;
template <typename T>
Status decode(yyjson_val* v, std::optional<T>& out, Mode mode);
template <typename T>
Status decode(yyjson_val* v, std::vector<T>& out, Mode mode);
template <typename T>
Status decode(yyjson_val* v, std::map<std::string, T, std::less<>>& out, Mode mode);

template <Struct T>
Status decode(yyjson_val* v, T& out, Mode mode) {
    if (!yyjson_is_obj(v))
        return Status::Invalid;
    return T::decode(node(v), out, mode, nullptr);
}

template <Enum E>
Status decode(yyjson_val* v, E& out, Mode) noexcept {
    if (!yyjson_is_str(v))
        return Status::Invalid;
    return fromString(std::string_view(yyjson_get_str(v), yyjson_get_len(v)), out) ? Status::Ok
                                                                                   : Status::Invalid;
}

template <typename T>
Status decode(yyjson_val* v, std::optional<T>& out, Mode mode) {
    if (!v || yyjson_is_null(v)) {
        out.reset();
        return Status::Ok;
    }
    return decode(v, out.emplace(), mode);
}

template <typename T>
Status decode(yyjson_val* v, std::vector<T>& out, Mode mode) {
    if (!yyjson_is_arr(v))
        return Status::Invalid;
    out.clear();
    out.reserve(yyjson_arr_size(v));
    Status status = Status::Ok;
    yyjson_arr_iter iter = yyjson_arr_iter_with(v);
    while (yyjson_val* element = yyjson_arr_iter_next(&iter)) {
        Status s = decode(element, out.emplace_back(), mode);
        if (s == Status::Invalid)
            return s;
        if (s == Status::Late)
            status = s;
    }
    return status;
}

template <typename T>
Status decode(yyjson_val* v, std::map<std::string, T, std::less<>>& out, Mode mode) {
    if (!yyjson_is_obj(v))
        return Status::Invalid;
    out.clear();
    Status status = Status::Ok;
    yyjson_obj_iter iter = yyjson_obj_iter_with(v);
    while (yyjson_val* key = yyjson_obj_iter_next(&iter)) {
        auto [it, inserted] = out.try_emplace(std::string(yyjson_get_str(key), yyjson_get_len(key)));
        Status s = decode(yyjson_obj_iter_get_val(key), it->second, mode);
        if (s == Status::Invalid)
            return s;
        if (s == Status::Late || !inserted) // a duplicate key, as in a struct, is found when dispatching
            status = Status::Late;
    }
    return status;
}

template <Struct T>
Status decodeParameters(JsonView parameters, T& out, Mode mode, std::string_view* bad) {
    yyjson_val* v = raw(parameters.node());
    if (v && !yyjson_is_obj(v) && !yyjson_is_null(v)) {
        *bad = {};
        return Status::Invalid;
    }
    return T::decode(yyjson_is_obj(v) ? parameters.node() : nullptr, out, mode, bad);
}

} // namespace svckit::varlink::codec
