// svckit/varlink_json.hpp — the JSON side of svckit's varlink engine: JsonView, a read-only view of a parsed
// JSON value (what a method handler gets as its parameters), JsonDocument, an owned parsed document, and
// JsonWriter, the small appending writer replies are written with, and JsonValue, an owned JSON value (what a
// varlink `object` field becomes in generated code).
//
// The writer appends straight into a caller's (reused) std::string and places commas itself, so a handler
// writes `w.field("text", s)` and never builds a DOM. Strings are escaped as RFC 8259 requires (a NUL becomes
// \u0000, so it can never end a varlink frame early) and invalid UTF-8 is replaced by U+FFFD. A JsonView is
// only valid as long as the document it points into: in a handler, until the handler returns.
#pragma once

#include <svckit/export.hpp>
#include <svckit/error.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace svckit::varlink {

// A parsed JSON value. Opaque: svckit and the code varlink-codegen generates (svckit/varlink_codec.hpp) read
// it; service code holds it only through a JsonView.
struct JsonNode;

// A read-only view of one JSON value, or of nothing (a missing member): every accessor is safe on a missing
// view.
class SVCKIT_EXPORT JsonView {
public:
    constexpr JsonView() noexcept = default;
    constexpr explicit JsonView(const JsonNode* node) noexcept : node_(node) {}

    [[nodiscard]] bool exists() const noexcept { return node_ != nullptr; }
    [[nodiscard]] bool isNull() const noexcept;
    [[nodiscard]] bool isObject() const noexcept;
    [[nodiscard]] bool isArray() const noexcept;
    [[nodiscard]] bool isString() const noexcept;
    [[nodiscard]] bool isBool() const noexcept;
    [[nodiscard]] bool isNumber() const noexcept;

    // The value, when it has that type (a string may contain NUL bytes: use the view's size).
    [[nodiscard]] std::optional<std::string_view> string() const noexcept;
    [[nodiscard]] std::optional<bool> boolean() const noexcept;
    // An integer that fits int64_t (no fraction, no exponent form that the parser reads as a real).
    [[nodiscard]] std::optional<int64_t> int64() const noexcept;
    [[nodiscard]] std::optional<uint64_t> uint64() const noexcept;
    // Any number, as a double.
    [[nodiscard]] std::optional<double> number() const noexcept;

    // A member of an object (a missing view when this is not an object or has no such key).
    [[nodiscard]] JsonView operator[](std::string_view key) const noexcept;
    // An element of an array (a missing view when out of range or not an array).
    [[nodiscard]] JsonView at(size_t index) const noexcept;
    // Elements of an array or members of an object; 0 otherwise.
    [[nodiscard]] size_t size() const noexcept;

    // Calls fn(JsonView element) for each element of an array.
    template <typename Fn>
    void forEachElement(Fn&& fn) const {
        visitElements(
            [](void* context, JsonView element) {
                (*static_cast<std::remove_reference_t<Fn>*>(context))(element);
            },
            &fn);
    }
    // Calls fn(std::string_view key, JsonView value) for each member of an object, in document order.
    template <typename Fn>
    void forEachMember(Fn&& fn) const {
        visitMembers(
            [](void* context, std::string_view key, JsonView value) {
                (*static_cast<std::remove_reference_t<Fn>*>(context))(key, value);
            },
            &fn);
    }

    // The parsed value, for generated decoders (svckit/varlink_codec.hpp); null for a missing view.
    [[nodiscard]] const JsonNode* node() const noexcept { return node_; }

private:
    void visitElements(void (*visit)(void* context, JsonView element), void* context) const;
    void visitMembers(void (*visit)(void* context, std::string_view key, JsonView value),
                      void* context) const;

    const JsonNode* node_ = nullptr;
};

// An owned, parsed JSON document (strict RFC 8259, UTF-8 validated). For clients, tools and tests; the server
// parses with its own reused allocator instead.
class SVCKIT_EXPORT JsonDocument {
public:
    [[nodiscard]] static Result<JsonDocument> parse(std::string_view text);

    JsonDocument(const JsonDocument&) = delete;
    JsonDocument& operator=(const JsonDocument&) = delete;
    JsonDocument(JsonDocument&& other) noexcept : tree_(std::exchange(other.tree_, nullptr)) {}
    JsonDocument& operator=(JsonDocument&& other) noexcept;
    ~JsonDocument();

    [[nodiscard]] JsonView root() const noexcept;

private:
    struct Tree; // the parser's document (never defined: json.cpp converts)
    explicit JsonDocument(Tree* tree) noexcept : tree_(tree) {}
    Tree* tree_ = nullptr;
};

// An owned JSON value, kept serialized (compact, as JsonWriter writes it). What varlink's `object` (and
// `any`) fields are in generated C++ structs; read it with document(). Default: an empty object.
class SVCKIT_EXPORT JsonValue {
public:
    JsonValue() = default;
    // Validates the text (EBADMSG when it is not one JSON value) and keeps it compacted.
    [[nodiscard]] static Result<JsonValue> parse(std::string_view json);
    // A copy of a parsed value (a missing view becomes null).
    [[nodiscard]] static JsonValue from(JsonView view);

    [[nodiscard]] const std::string& json() const noexcept { return json_; }
    [[nodiscard]] Result<JsonDocument> document() const { return JsonDocument::parse(json_); }
    bool operator==(const JsonValue&) const = default;

private:
    explicit JsonValue(std::string json) noexcept : json_(std::move(json)) {}
    std::string json_ = "{}";
};

// Appends JSON to a std::string. Commas are placed automatically: after a value or a closed container, the
// next key or value is preceded by one. The writer does not check that keys and values alternate correctly.
class SVCKIT_EXPORT JsonWriter {
public:
    explicit JsonWriter(std::string& out) noexcept : out_(out) {}

    void beginObject() {
        separate();
        out_.push_back('{');
        needComma_ = false;
    }
    void endObject() {
        out_.push_back('}');
        needComma_ = true;
    }
    void beginArray() {
        separate();
        out_.push_back('[');
        needComma_ = false;
    }
    void endArray() {
        out_.push_back(']');
        needComma_ = true;
    }
    void key(std::string_view name) {
        separate();
        appendString(name);
        out_.push_back(':');
        needComma_ = false;
    }

    void value(std::string_view text) {
        separate();
        appendString(text);
        needComma_ = true;
    }
    void value(const char* text) { value(std::string_view(text)); }
    void value(const std::string& text) { value(std::string_view(text)); }
    void value(bool flag) {
        separate();
        out_.append(flag ? "true" : "false");
        needComma_ = true;
    }
    template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>) void value(T number) {
        if constexpr (std::is_signed_v<T>)
            appendSigned(static_cast<int64_t>(number));
        else
            appendUnsigned(static_cast<uint64_t>(number));
    }
    template <std::floating_point T>
    void value(T number) {
        appendDouble(static_cast<double>(number));
    }
    // Copies a parsed value (with its whole subtree); a missing view is written as null.
    void value(JsonView view);
    void value(const JsonValue& json) { rawValue(json.json()); }
    void null() {
        separate();
        out_.append("null");
        needComma_ = true;
    }
    // Appends already-serialized JSON as one value. The caller vouches that it is valid JSON without a NUL.
    void rawValue(std::string_view json) {
        separate();
        out_.append(json);
        needComma_ = true;
    }
    // Writes every member of an object view as members of the object being written.
    void members(JsonView object);

    // key(name) then value(v).
    template <typename T>
    void field(std::string_view name, T&& v) {
        key(name);
        value(std::forward<T>(v));
    }

    // Positions the writer just inside an object the caller opened itself (no comma before the first member).
    void resetInsideContainer() noexcept { needComma_ = false; }
    [[nodiscard]] std::string& buffer() noexcept { return out_; }

private:
    void separate() {
        if (needComma_)
            out_.push_back(',');
    }
    void appendString(std::string_view text);
    void appendSigned(int64_t number);
    void appendUnsigned(uint64_t number);
    void appendDouble(double number);

    std::string& out_;
    bool needComma_ = false;
};

} // namespace svckit::varlink
