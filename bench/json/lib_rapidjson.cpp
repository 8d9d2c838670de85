// RapidJSON: in-situ parse (strings decoded in place) into a Document whose values and parse stack come
// from MemoryPoolAllocators over fixed buffers (no malloc). In-situ destroys its input, so each call
// first copies the message into a scratch buffer, and that copy is counted in the figures. UTF-8 is
// validated (kParseValidateEncodingFlag) and doubles are parsed exactly (kParseFullPrecisionFlag), as the
// other libraries do by default. The parser is the iterative one (kParseIterativeFlag): RapidJSON's
// default recursive parser overflows the stack on deeply nested input (4 million '[' crash it, in a
// message well under varlink's 16 MiB cap). "rapidjson-recursive" (lib_rapidjson_recursive.cpp) is this
// adapter with the default recursive parser, measured for comparison. It is compiled as a TU of its own:
// with both parser instantiations in one TU, GCC 16 inlined differently and both ran ~2x slower.
// Replies: a reused Writer over a reused StringBuffer.
#include "common.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <climits>
#include <cstring>


namespace bench {
namespace {

namespace rj = rapidjson;
using Pool = rj::MemoryPoolAllocator<rj::CrtAllocator>;
using Doc = rj::GenericDocument<rj::UTF8<>, Pool, Pool>;
using Value = Doc::ValueType;

std::string_view sv(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

bool get_string(const Value& v, std::string& out) {
    if (!v.IsString()) return false;
    out.assign(v.GetString(), v.GetStringLength());
    return true;
}

bool get_int64(const Value& v, std::int64_t& out) {
    if (!v.IsInt64()) return false; // false for doubles and for uint64 above INT64_MAX
    out = v.GetInt64();
    return true;
}

bool decode_item(const Value& o, Item& it) {
    if (!o.IsObject()) return false;
    unsigned seen = 0;
    for (auto m = o.MemberBegin(); m != o.MemberEnd(); ++m) {
        auto key = sv(m->name);
        const Value& v = m->value;
        if (key == "name") {
            if (!get_string(v, it.name)) return false;
            seen |= 1;
        } else if (key == "size") {
            if (!get_int64(v, it.size)) return false;
            seen |= 2;
        } else if (key == "tags") {
            if (!v.IsArray()) return false;
            std::size_t i = 0;
            for (const auto& e : v.GetArray())
                if (!get_string(e, slot(it.tags, i++))) return false;
            it.tags.resize(i);
            seen |= 4;
        } else if (key == "enabled") {
            if (!v.IsBool()) return false;
            it.enabled = v.GetBool();
            seen |= 8;
        } else if (key == "ratio") {
            if (!v.IsNumber()) return false;
            it.ratio = v.GetDouble();
            seen |= 16;
        }
    }
    return seen == 31;
}

bool decode_user(const Value& o, User& u) {
    if (!o.IsObject()) return false;
    unsigned seen = 0;
    for (auto m = o.MemberBegin(); m != o.MemberEnd(); ++m) {
        auto key = sv(m->name);
        const Value& v = m->value;
        if (key == "name") {
            if (!get_string(v, u.name)) return false;
            seen |= 1;
        } else if (key == "uid") {
            if (!get_int64(v, u.uid)) return false;
            seen |= 2;
        } else if (key == "groups") {
            if (!v.IsArray()) return false;
            u.groups.clear();
            for (const auto& e : v.GetArray()) {
                std::int64_t g;
                if (!get_int64(e, g)) return false;
                u.groups.push_back(g);
            }
            seen |= 4;
        } else if (key == "labels") {
            if (!v.IsObject()) return false;
            u.labels.clear();
            for (auto l = v.MemberBegin(); l != v.MemberEnd(); ++l) {
                if (!l->value.IsString()) return false;
                u.labels.insert_or_assign(std::string(sv(l->name)), std::string(sv(l->value)));
            }
            seen |= 8;
        }
    }
    return seen == 15;
}

#ifdef BENCH_RAPIDJSON_RECURSIVE
constexpr unsigned kFlags = rj::kParseValidateEncodingFlag | rj::kParseFullPrecisionFlag;
#else
constexpr unsigned kFlags = rj::kParseValidateEncodingFlag | rj::kParseFullPrecisionFlag | rj::kParseIterativeFlag;
#endif

class Rapidjson final : public Codec {
public:
    Rapidjson() : writer_(sb_) { scratch_.reserve(64 * 1024); }

    std::string_view name() const override {
        return (kFlags & rj::kParseIterativeFlag) ? "rapidjson" : "rapidjson-recursive";
    }
    std::string version() const override { return RAPIDJSON_VERSION_STRING; }

    Result decode(Message in, Call& out) override {
        scratch_.assign(in.data, in.data + in.size + 1); // in-situ needs a writable, NUL-terminated copy
        values_.Clear();
        stack_.Clear();
        Doc d(&values_, 1024, &stack_);
        d.ParseInsitu<kFlags>(scratch_.data());
        if (d.HasParseError()) return {Status::bad_json};
        return decode_doc(d, out);
    }

    std::string_view write_echo_reply(const EchoParams& p) override {
        sb_.Clear();
        writer_.Reset(sb_);
        writer_.StartObject();
        writer_.Key("parameters", 10);
        writer_.StartObject();
        writer_.Key("text", 4);
        writer_.String(p.text.data(), rj::SizeType(p.text.size()));
        writer_.EndObject();
        writer_.EndObject();
        sb_.Put('\0');
        return {sb_.GetString(), sb_.GetSize()};
    }

    std::string_view write_invalid_parameter(std::string_view parameter) override {
        sb_.Clear();
        writer_.Reset(sb_);
        writer_.StartObject();
        writer_.Key("error", 5);
        writer_.String("org.varlink.service.InvalidParameter", 36);
        writer_.Key("parameters", 10);
        writer_.StartObject();
        writer_.Key("parameter", 9);
        writer_.String(parameter.data(), rj::SizeType(parameter.size()));
        writer_.EndObject();
        writer_.EndObject();
        sb_.Put('\0');
        return {sb_.GetString(), sb_.GetSize()};
    }

private:
    static Result decode_absent(Method m) {
        switch (m) {
        case Method::echo: return {Status::invalid_parameter, field::text};
        case Method::add: return {Status::invalid_parameter, field::a};
        case Method::submit: return {Status::invalid_parameter, field::id};
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_doc(const Value& root, Call& out) {
        if (!root.IsObject()) return {Status::bad_call};
        out.oneway = out.more = out.upgrade = false;
        out.which = Method::none;
        const Value *method = nullptr, *params = nullptr;
        for (auto m = root.MemberBegin(); m != root.MemberEnd(); ++m) {
            auto key = sv(m->name);
            const Value& v = m->value;
            if (key == "method")
                method = &v;
            else if (key == "parameters")
                params = &v;
            else if (key == "oneway" || key == "more" || key == "upgrade") {
                if (!v.IsBool()) return {Status::bad_call};
                (key == "oneway" ? out.oneway : key == "more" ? out.more : out.upgrade) = v.GetBool();
            }
        }
        if (!method || !method->IsString()) return {Status::bad_call};
        out.method.assign(sv(*method));
        out.which = lookup_method(out.method);
        if (params && !params->IsNull() && !params->IsObject()) return {Status::bad_call};
        if (out.which == Method::none) return {Status::unknown_method};
        if (!params || params->IsNull()) return decode_absent(out.which);
        switch (out.which) {
        case Method::echo: return decode_echo(*params, out.echo);
        case Method::add: return decode_add(*params, out.add);
        case Method::submit: return decode_submit(*params, out.submit);
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_echo(const Value& o, EchoParams& p) {
        auto t = o.FindMember("text");
        if (t == o.MemberEnd() || !get_string(t->value, p.text)) return {Status::invalid_parameter, field::text};
        return {};
    }

    static Result decode_add(const Value& o, AddParams& p) {
        unsigned seen = 0;
        for (auto m = o.MemberBegin(); m != o.MemberEnd(); ++m) {
            auto key = sv(m->name);
            if (key == "a") {
                if (!get_int64(m->value, p.a)) return {Status::invalid_parameter, field::a};
                seen |= 1;
            } else if (key == "b") {
                if (!get_int64(m->value, p.b)) return {Status::invalid_parameter, field::b};
                seen |= 2;
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::a};
        if (!(seen & 2)) return {Status::invalid_parameter, field::b};
        return {};
    }

    static Result decode_submit(const Value& o, SubmitParams& p) {
        unsigned seen = 0;
        p.note.reset();
        for (auto m = o.MemberBegin(); m != o.MemberEnd(); ++m) {
            auto key = sv(m->name);
            const Value& v = m->value;
            if (key == "id") {
                if (!get_string(v, p.id)) return {Status::invalid_parameter, field::id};
                seen |= 1;
            } else if (key == "user") {
                if (!decode_user(v, p.user)) return {Status::invalid_parameter, field::user};
                seen |= 2;
            } else if (key == "items") {
                if (!v.IsArray()) return {Status::invalid_parameter, field::items};
                std::size_t i = 0;
                for (const auto& e : v.GetArray())
                    if (!decode_item(e, slot(p.items, i++))) return {Status::invalid_parameter, field::items};
                p.items.resize(i);
                seen |= 4;
            } else if (key == "comment") {
                if (!get_string(v, p.comment)) return {Status::invalid_parameter, field::comment};
                seen |= 8;
            } else if (key == "note") {
                if (!v.IsNull() && !get_string(v, p.note.emplace())) return {Status::invalid_parameter, field::note};
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::id};
        if (!(seen & 2)) return {Status::invalid_parameter, field::user};
        if (!(seen & 4)) return {Status::invalid_parameter, field::items};
        if (!(seen & 8)) return {Status::invalid_parameter, field::comment};
        return {};
    }

    alignas(16) char value_buf_[64 * 1024];
    alignas(16) char stack_buf_[16 * 1024];
    Pool values_{value_buf_, sizeof value_buf_};
    Pool stack_{stack_buf_, sizeof stack_buf_};
    std::vector<char> scratch_;
    rj::StringBuffer sb_;
    rj::Writer<rj::StringBuffer> writer_;
};

} // namespace

#ifdef BENCH_RAPIDJSON_RECURSIVE
std::unique_ptr<Codec> make_rapidjson_recursive() { return std::make_unique<Rapidjson>(); }
#else
std::unique_ptr<Codec> make_rapidjson() { return std::make_unique<Rapidjson>(); }
#endif

} // namespace bench
