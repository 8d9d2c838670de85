#include <svckit/varlink_json.hpp>

#include <svckit/varlink_codec.hpp>

#include <yyjson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

namespace svckit::varlink {
namespace {

constexpr char hexDigits[] = "0123456789abcdef";

// Bytes that go into a JSON string as they are: printable ASCII except '"' and '\\'.
constexpr std::array<bool, 256> plainBytes = [] {
    std::array<bool, 256> table{};
    for (int c = 0x20; c < 0x80; ++c)
        table[static_cast<size_t>(c)] = c != '"' && c != '\\';
    return table;
}();

// The length of the valid UTF-8 sequence starting at text[i] (1-4), or 0 when it is invalid (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as RFC 3629 says).
size_t utf8SequenceLength(std::string_view text, size_t i) noexcept {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char c = byte(i);
    size_t left = text.size() - i;
    auto continuation = [&](size_t k) { return (byte(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF)
        return left >= 2 && continuation(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || !continuation(i + 1) || !continuation(i + 2))
            return 0;
        unsigned char c1 = byte(i + 1);
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || !continuation(i + 1) || !continuation(i + 2) || !continuation(i + 3))
            return 0;
        unsigned char c1 = byte(i + 1);
        if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

} // namespace

using codec::raw;

bool JsonView::isNull() const noexcept {
    return yyjson_is_null(raw(node_));
}
bool JsonView::isObject() const noexcept {
    return yyjson_is_obj(raw(node_));
}
bool JsonView::isArray() const noexcept {
    return yyjson_is_arr(raw(node_));
}
bool JsonView::isString() const noexcept {
    return yyjson_is_str(raw(node_));
}
bool JsonView::isBool() const noexcept {
    return yyjson_is_bool(raw(node_));
}
bool JsonView::isNumber() const noexcept {
    return yyjson_is_num(raw(node_));
}

std::optional<std::string_view> JsonView::string() const noexcept {
    yyjson_val* v = raw(node_);
    if (!yyjson_is_str(v))
        return std::nullopt;
    return std::string_view(yyjson_get_str(v), yyjson_get_len(v));
}

std::optional<bool> JsonView::boolean() const noexcept {
    yyjson_val* v = raw(node_);
    if (!yyjson_is_bool(v))
        return std::nullopt;
    return yyjson_get_bool(v);
}

std::optional<int64_t> JsonView::int64() const noexcept {
    yyjson_val* v = raw(node_);
    if (yyjson_is_sint(v))
        return yyjson_get_sint(v);
    if (yyjson_is_uint(v) && yyjson_get_uint(v) <= static_cast<uint64_t>(INT64_MAX))
        return static_cast<int64_t>(yyjson_get_uint(v));
    return std::nullopt;
}

std::optional<uint64_t> JsonView::uint64() const noexcept {
    yyjson_val* v = raw(node_);
    if (yyjson_is_uint(v))
        return yyjson_get_uint(v);
    return std::nullopt;
}

std::optional<double> JsonView::number() const noexcept {
    yyjson_val* v = raw(node_);
    if (!yyjson_is_num(v))
        return std::nullopt;
    return yyjson_get_num(v);
}

JsonView JsonView::operator[](std::string_view key) const noexcept {
    return JsonView(codec::node(yyjson_obj_getn(raw(node_), key.data(), key.size())));
}

JsonView JsonView::at(size_t index) const noexcept {
    return JsonView(codec::node(yyjson_arr_get(raw(node_), index)));
}

size_t JsonView::size() const noexcept {
    yyjson_val* v = raw(node_);
    return yyjson_is_arr(v) ? yyjson_arr_size(v) : yyjson_is_obj(v) ? yyjson_obj_size(v) : 0;
}

void JsonView::visitElements(void (*visit)(void* context, JsonView element), void* context) const {
    yyjson_val* v = raw(node_);
    yyjson_arr_iter iter = yyjson_arr_iter_with(yyjson_is_arr(v) ? v : nullptr);
    while (yyjson_val* element = yyjson_arr_iter_next(&iter))
        visit(context, JsonView(codec::node(element)));
}

void JsonView::visitMembers(void (*visit)(void* context, std::string_view key, JsonView value),
                            void* context) const {
    yyjson_val* v = raw(node_);
    yyjson_obj_iter iter = yyjson_obj_iter_with(yyjson_is_obj(v) ? v : nullptr);
    while (yyjson_val* key = yyjson_obj_iter_next(&iter))
        visit(context, std::string_view(yyjson_get_str(key), yyjson_get_len(key)),
              JsonView(codec::node(yyjson_obj_iter_get_val(key))));
}

Result<JsonDocument> JsonDocument::parse(std::string_view text) {
    yyjson_read_err error{};
    yyjson_doc* doc = yyjson_read_opts(const_cast<char*>(text.data()), text.size(), 0, nullptr, &error);
    if (!doc)
        return fail(EBADMSG, "Failed to parse JSON at byte {}: {}", error.pos,
                    error.msg ? error.msg : "error");
    return JsonDocument(reinterpret_cast<Tree*>(doc));
}

JsonView JsonDocument::root() const noexcept {
    return JsonView(codec::node(yyjson_doc_get_root(reinterpret_cast<yyjson_doc*>(tree_))));
}

Result<JsonValue> JsonValue::parse(std::string_view json) {
    auto document = JsonDocument::parse(json);
    if (!document)
        return std::unexpected(document.error());
    return from(document->root());
}

JsonValue JsonValue::from(JsonView view) {
    std::string json;
    JsonWriter(json).value(view);
    return JsonValue(std::move(json));
}

JsonDocument& JsonDocument::operator=(JsonDocument&& other) noexcept {
    if (this != &other) {
        yyjson_doc_free(reinterpret_cast<yyjson_doc*>(tree_));
        tree_ = std::exchange(other.tree_, nullptr);
    }
    return *this;
}

JsonDocument::~JsonDocument() {
    yyjson_doc_free(reinterpret_cast<yyjson_doc*>(tree_));
}

void JsonWriter::appendString(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && plainBytes[static_cast<unsigned char>(text[i])])
        ++i;
    if (i == text.size()) {
        // Nothing to escape (names, most values): the quoted text in one copy.
        size_t at = out_.size();
        out_.resize_and_overwrite(at + text.size() + 2, [&](char* p, size_t n) {
            p[at] = '"';
            if (!text.empty())
                std::memcpy(p + at + 1, text.data(), text.size());
            p[n - 1] = '"';
            return n;
        });
        return;
    }
    out_.push_back('"');
    size_t runStart = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        if (c >= 0x80) {
            size_t length = utf8SequenceLength(text, i);
            if (length != 0) {
                i += length;
                continue;
            }
        }
        out_.append(text.substr(runStart, i - runStart));
        switch (c) {
        case '"':
            out_.append("\\\"");
            break;
        case '\\':
            out_.append("\\\\");
            break;
        case '\b':
            out_.append("\\b");
            break;
        case '\f':
            out_.append("\\f");
            break;
        case '\n':
            out_.append("\\n");
            break;
        case '\r':
            out_.append("\\r");
            break;
        case '\t':
            out_.append("\\t");
            break;
        default:
            if (c < 0x20) {
                const char escape[] = {'\\', 'u', '0', '0', hexDigits[c >> 4], hexDigits[c & 0xF]};
                out_.append(escape, sizeof(escape));
            } else {
                out_.append("\xEF\xBF\xBD"); // U+FFFD for a byte that starts no valid UTF-8 sequence
            }
        }
        ++i;
        runStart = i;
    }
    out_.append(text.substr(runStart));
    out_.push_back('"');
}

void JsonWriter::appendSigned(int64_t number) {
    separate();
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof(digits), number).ptr;
    out_.append(digits, end);
    needComma_ = true;
}

void JsonWriter::appendUnsigned(uint64_t number) {
    separate();
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof(digits), number).ptr;
    out_.append(digits, end);
    needComma_ = true;
}

void JsonWriter::appendDouble(double number) {
    if (!std::isfinite(number)) {
        null(); // JSON has no NaN or infinity
        return;
    }
    separate();
    char digits[32];
    auto end = std::to_chars(digits, digits + sizeof(digits), number).ptr;
    out_.append(digits, end);
    needComma_ = true;
}

void JsonWriter::value(JsonView view) {
    yyjson_val* v = raw(view.node());
    switch (yyjson_get_type(v)) {
    case YYJSON_TYPE_BOOL:
        value(yyjson_get_bool(v));
        return;
    case YYJSON_TYPE_NUM:
        if (yyjson_is_uint(v))
            appendUnsigned(yyjson_get_uint(v));
        else if (yyjson_is_sint(v))
            appendSigned(yyjson_get_sint(v));
        else
            appendDouble(yyjson_get_real(v));
        return;
    case YYJSON_TYPE_STR:
        value(std::string_view(yyjson_get_str(v), yyjson_get_len(v)));
        return;
    case YYJSON_TYPE_ARR:
        beginArray();
        view.forEachElement([&](JsonView element) { value(element); });
        endArray();
        return;
    case YYJSON_TYPE_OBJ:
        beginObject();
        members(view);
        endObject();
        return;
    default:
        null();
        return;
    }
}

void JsonWriter::members(JsonView object) {
    object.forEachMember([&](std::string_view name, JsonView member) {
        key(name);
        value(member);
    });
}

} // namespace svckit::varlink
