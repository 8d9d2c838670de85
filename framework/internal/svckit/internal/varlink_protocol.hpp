// svckit/internal/varlink_protocol.hpp — the varlink server's protocol layer, without sockets: one
// NUL-framed message in, a call (method, parameters, flags) or the reason it breaks the protocol out; replies
// and errors formatted into an output buffer; the name rules of interfaces and methods. Pure functions over
// bytes, tested on their own (tests/unit/varlink_protocol_parse_test.cpp); the connection
// (framework/varlink/connection.cpp) does the I/O around them. Never installed: not part of svckit's API.
#pragma once

#include <svckit/varlink.hpp>
#include <svckit/varlink_json.hpp>

#include <cstddef>
#include <exception>
#include <expected>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

// yyjson's types, named without its header (the public headers are to stop including it).
struct yyjson_alc;
struct yyjson_doc;

namespace svckit::varlink::protocol {

// Containers nested deeper than this break the protocol: sd-json's limit (the message object is level 1).
inline constexpr size_t maxJsonDepth = 2048;

// The JSON allocator the parsed messages of one server share (reused: the common path allocates nothing).
class JsonAllocator {
public:
    JsonAllocator() = default;
    JsonAllocator(const JsonAllocator&) = delete;
    JsonAllocator& operator=(const JsonAllocator&) = delete;
    ~JsonAllocator();
    // False when the allocator could not be created.
    [[nodiscard]] bool init();
    // Gives back what the allocator has kept (it keeps every chunk it ever allocated, as large as the largest
    // document) and starts a new one. Only while no document made with it is alive; after a large input.
    void reset() noexcept;
    [[nodiscard]] yyjson_alc* get() const noexcept { return allocator_; }

private:
    yyjson_alc* allocator_ = nullptr;
};

// One parsed call. Owns its JSON document: `parameters` and `method` point into it (or into the message
// text) and live as long as the Message and the text it was parsed from.
class Message {
public:
    Message(Message&& other) noexcept
        : method(other.method), parameters(other.parameters), flags(other.flags),
          doc_(std::exchange(other.doc_, nullptr)) {}
    Message& operator=(Message&&) = delete;
    Message(const Message&) = delete;
    Message& operator=(const Message&) = delete;
    ~Message();

    std::string_view method;
    JsonView parameters; // an object, or missing (no "parameters", or null)
    CallFlags flags;

private:
    friend std::expected<Message, std::string_view> parseCall(std::string_view, yyjson_alc*);
    explicit Message(yyjson_doc* doc) noexcept : doc_(doc) {}
    yyjson_doc* doc_;
};

// Parses one message (its text without the terminating NUL) as sd-varlink checks a call: malformed JSON,
// invalid UTF-8, an escaped NUL in a string, nesting deeper than maxJsonDepth, a message that is not an
// object, no "method" or a non-string one, "method" or "parameters" twice, "parameters" not an object or
// null, any other key, a flag that is not a boolean, and a flag member after a flag that is true are protocol
// errors: the error is the reason (static text, for the log). `allocator` may be null (yyjson's default
// allocator).
[[nodiscard]] std::expected<Message, std::string_view> parseCall(std::string_view text,
                                                                 yyjson_alc* allocator = nullptr);

// Whether the JSON text escapes a NUL in a string (backslash, "u0000"): sd-json refuses NUL in strings.
[[nodiscard]] bool hasEscapedNul(std::string_view text) noexcept;

// Appends one reply to `sink`, with its NUL: {"parameters":{...}}, {"error":NAME,"parameters":{...}}, or with
// "continues":true. "parameters" only when `write` writes a member (sd-varlink leaves out empty parameters).
// A writer that throws leaves no half reply behind (the exception goes on).
void writeReply(std::string& sink, detail::ReplyKind kind, std::string_view errorName, detail::WriteFn write,
                void* context);

// The parameters of io.systemd.System for errno `code`: origin, errno, errnoName.
void writeSystemError(JsonWriter& w, int code);

// The errno a failed handler is reported with: a std::system_error's (generic or system category), else EIO.
[[nodiscard]] int errnoOfException(std::exception_ptr exception) noexcept;

// Reverse-domain: at least two dot-separated labels of [A-Za-z0-9-], each starting with a letter or digit,
// the first with a letter; at most 255 characters.
[[nodiscard]] bool isValidInterfaceName(std::string_view name) noexcept;
// [A-Z][A-Za-z0-9]*.
[[nodiscard]] bool isValidMethodName(std::string_view name) noexcept;

// The first member of `parameters` that is not one of `known` (sd-varlink answers it with InvalidParameter).
[[nodiscard]] std::optional<std::string_view> unknownParameter(JsonView parameters,
                                                               std::initializer_list<std::string_view> known);

} // namespace svckit::varlink::protocol
