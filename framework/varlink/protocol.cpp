// The varlink protocol layer: parsing and checking one call, formatting replies (see
// svckit/internal/varlink_protocol.hpp). No fds, no state beyond the message at hand.
#include <svckit/internal/varlink_protocol.hpp>
#include <svckit/varlink_codec.hpp>

#include <yyjson.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <vector>

namespace svckit::varlink::protocol {
namespace {

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

} // namespace

JsonAllocator::~JsonAllocator() {
    if (allocator_)
        yyjson_alc_dyn_free(allocator_);
}

bool JsonAllocator::init() {
    if (!allocator_)
        allocator_ = yyjson_alc_dyn_new();
    return allocator_ != nullptr;
}

void JsonAllocator::reset() noexcept {
    if (allocator_)
        yyjson_alc_dyn_free(allocator_);
    allocator_ = yyjson_alc_dyn_new(); // null on failure: parseCall() then uses yyjson's default allocator
}

Message::~Message() {
    if (doc_)
        yyjson_doc_free(doc_);
}

bool hasEscapedNul(std::string_view text) noexcept {
    // A backslash escapes the next character when it ends an odd run of backslashes.
    const char* end = text.data() + text.size();
    const char* p = text.data();
    while ((p = static_cast<const char*>(std::memchr(p, '\\', static_cast<size_t>(end - p))))) {
        const char* run = p;
        while (p < end && *p == '\\')
            ++p;
        if (((p - run) & 1) && end - p >= 5 && std::memcmp(p, "u0000", 5) == 0)
            return true;
    }
    return false;
}

std::expected<Message, std::string_view> parseCall(std::string_view text, yyjson_alc* allocator) {
    if (hasEscapedNul(text))
        return std::unexpected("NUL escaped in a string");
    yyjson_read_err error{};
    // Numbers beyond int64/uint64/double are kept as raw text (not numbers to a handler) rather than refused,
    // as sd-json reads them. yyjson reads the text in place without writing to it (no INSITU flag).
    yyjson_doc* doc = yyjson_read_opts(const_cast<char*>(text.data()), text.size(), YYJSON_READ_BIGNUM_AS_RAW,
                                       allocator, &error);
    if (!doc)
        return std::unexpected(error.msg ? std::string_view(error.msg) : std::string_view("malformed JSON"));
    Message message(doc);

    yyjson_val* root = yyjson_doc_get_root(doc);
    if (!yyjson_is_obj(root))
        return std::unexpected("message is not an object");
    if (nestsDeeperThan(doc, maxJsonDepth))
        return std::unexpected("JSON nested too deeply");
    // The members in document order, checked as sd-varlink checks them: each of method and parameters at most
    // once, no other keys; a flag member (even false) after a flag that is true is an error, so at most one
    // flag is set.
    bool sawMethod = false;
    bool sawParameters = false;
    CallFlags& flags = message.flags;
    yyjson_obj_iter members = yyjson_obj_iter_with(root);
    while (yyjson_val* key = yyjson_obj_iter_next(&members)) {
        yyjson_val* value = yyjson_obj_iter_get_val(key);
        std::string_view name(yyjson_get_str(key), yyjson_get_len(key));
        if (name == "method") {
            if (sawMethod || !yyjson_is_str(value))
                return std::unexpected("method is repeated or not a string");
            sawMethod = true;
            message.method = std::string_view(yyjson_get_str(value), yyjson_get_len(value));
        } else if (name == "parameters") {
            if (sawParameters || !(yyjson_is_obj(value) || yyjson_is_null(value)))
                return std::unexpected("parameters is repeated or not an object");
            sawParameters = true;
            if (yyjson_is_obj(value))
                message.parameters = JsonView(codec::node(value));
        } else if (name == "oneway" || name == "more" || name == "upgrade") {
            if (flags.oneway || flags.more || flags.upgrade || !yyjson_is_bool(value))
                return std::unexpected("invalid call flags");
            if (yyjson_get_bool(value))
                (name == "oneway" ? flags.oneway : name == "more" ? flags.more : flags.upgrade) = true;
        } else {
            return std::unexpected("unknown key in a call");
        }
    }
    if (!sawMethod)
        return std::unexpected("message has no method");
    return message;
}

void writeReply(std::string& sink, detail::ReplyKind kind, std::string_view errorName, detail::WriteFn write,
                void* context) {
    using detail::ReplyKind;
    size_t before = sink.size();
    JsonWriter w(sink);
    try {
        sink.push_back('{');
        if (kind == ReplyKind::Error) {
            sink.append("\"error\":");
            w.value(errorName);
        }
        if (write) {
            // "parameters" only when the writer writes a member: sd-varlink leaves out empty parameters.
            size_t start = sink.size();
            sink.append(kind == ReplyKind::Error ? ",\"parameters\":{" : "\"parameters\":{");
            size_t inside = sink.size();
            w.resetInsideContainer();
            write(context, w);
            if (sink.size() == inside)
                sink.resize(start);
            else
                sink.push_back('}');
        }
        if (kind == ReplyKind::Continues)
            sink.append(sink.back() == '{' ? "\"continues\":true}" : ",\"continues\":true}");
        else
            sink.push_back('}');
        sink.push_back('\0');
    } catch (...) {
        sink.resize(before); // a writer that threw leaves no half reply behind
        throw;
    }
}

void writeSystemError(JsonWriter& w, int code) {
    w.field("origin", "linux");
    w.field("errno", code);
    if (const char* name = ::strerrorname_np(code))
        w.field("errnoName", name);
}

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

bool isValidInterfaceName(std::string_view name) noexcept {
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

bool isValidMethodName(std::string_view name) noexcept {
    if (name.empty() || name[0] < 'A' || name[0] > 'Z')
        return false;
    return std::ranges::all_of(name, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    });
}

std::optional<std::string_view> unknownParameter(JsonView parameters,
                                                 std::initializer_list<std::string_view> known) {
    std::optional<std::string_view> unknown;
    parameters.forEachMember([&](std::string_view key, JsonView) {
        if (!unknown && std::ranges::find(known, key) == known.end())
            unknown = key;
    });
    return unknown;
}

} // namespace svckit::varlink::protocol
