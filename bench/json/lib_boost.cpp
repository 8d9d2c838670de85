// Boost.JSON: a reused parser with a fixed temporary buffer, the DOM in a monotonic_resource over a
// fixed arena (no malloc), then walked. Replies: direct serialization of Boost.Describe'd structs with a
// reused serializer (no DOM built).
#include "common.hpp"

#include <boost/describe.hpp>
#include <boost/json.hpp>
#include <boost/version.hpp>

#include <climits>

namespace bench {

// Reply shapes for direct serialization (must be at namespace scope for BOOST_DESCRIBE_STRUCT).
struct BoostTextParams {
    std::string_view text;
};
BOOST_DESCRIBE_STRUCT(BoostTextParams, (), (text))
struct BoostEchoReply {
    BoostTextParams parameters;
};
BOOST_DESCRIBE_STRUCT(BoostEchoReply, (), (parameters))
struct BoostParameterParams {
    std::string_view parameter;
};
BOOST_DESCRIBE_STRUCT(BoostParameterParams, (), (parameter))
struct BoostErrorReply {
    std::string_view error;
    BoostParameterParams parameters;
};
BOOST_DESCRIBE_STRUCT(BoostErrorReply, (), (error, parameters))

namespace {

namespace json = boost::json;

std::string_view sv(json::string_view s) { return {s.data(), s.size()}; }

bool get_string(const json::value& v, std::string& out) {
    auto* s = v.if_string();
    if (!s) return false;
    out.assign(s->data(), s->size());
    return true;
}

bool get_int64(const json::value& v, std::int64_t& out) {
    if (auto* i = v.if_int64()) {
        out = *i;
        return true;
    }
    if (auto* u = v.if_uint64()) {
        if (*u > std::uint64_t(INT64_MAX)) return false;
        out = std::int64_t(*u);
        return true;
    }
    return false;
}

bool get_double(const json::value& v, double& out) {
    switch (v.kind()) {
    case json::kind::double_: out = v.get_double(); return true;
    case json::kind::int64: out = double(v.get_int64()); return true;
    case json::kind::uint64: out = double(v.get_uint64()); return true;
    default: return false;
    }
}

bool decode_item(const json::value& jv, Item& it) {
    auto* o = jv.if_object();
    if (!o) return false;
    unsigned seen = 0;
    for (const auto& kv : *o) {
        auto key = sv(kv.key());
        const auto& v = kv.value();
        if (key == "name") {
            if (!get_string(v, it.name)) return false;
            seen |= 1;
        } else if (key == "size") {
            if (!get_int64(v, it.size)) return false;
            seen |= 2;
        } else if (key == "tags") {
            auto* a = v.if_array();
            if (!a) return false;
            std::size_t i = 0;
            for (const auto& e : *a)
                if (!get_string(e, slot(it.tags, i++))) return false;
            it.tags.resize(i);
            seen |= 4;
        } else if (key == "enabled") {
            auto* b = v.if_bool();
            if (!b) return false;
            it.enabled = *b;
            seen |= 8;
        } else if (key == "ratio") {
            if (!get_double(v, it.ratio)) return false;
            seen |= 16;
        }
    }
    return seen == 31;
}

bool decode_user(const json::value& jv, User& u) {
    auto* o = jv.if_object();
    if (!o) return false;
    unsigned seen = 0;
    for (const auto& kv : *o) {
        auto key = sv(kv.key());
        const auto& v = kv.value();
        if (key == "name") {
            if (!get_string(v, u.name)) return false;
            seen |= 1;
        } else if (key == "uid") {
            if (!get_int64(v, u.uid)) return false;
            seen |= 2;
        } else if (key == "groups") {
            auto* a = v.if_array();
            if (!a) return false;
            u.groups.clear();
            for (const auto& e : *a) {
                std::int64_t g;
                if (!get_int64(e, g)) return false;
                u.groups.push_back(g);
            }
            seen |= 4;
        } else if (key == "labels") {
            auto* lo = v.if_object();
            if (!lo) return false;
            u.labels.clear();
            for (const auto& l : *lo) {
                auto* s = l.value().if_string();
                if (!s) return false;
                u.labels.insert_or_assign(std::string(sv(l.key())), std::string(s->data(), s->size()));
            }
            seen |= 8;
        }
    }
    return seen == 15;
}

json::parse_options parse_options() {
    json::parse_options o;
    o.max_depth = 1024; // the default, 32, is low for arbitrary `object`/`any` payloads
    return o;
}

class Boost final : public Codec {
public:
    std::string_view name() const override { return "boost.json"; }
    std::string version() const override { return BOOST_LIB_VERSION; }

    Result decode(Message in, Call& out) override {
        json::monotonic_resource mr(arena_, sizeof arena_);
        parser_.reset(&mr);
        boost::system::error_code ec;
        parser_.write(in.data, in.size, ec);
        if (ec) return {Status::bad_json};
        json::value jv = parser_.release();
        return decode_doc(jv, out);
    }

    std::string_view write_echo_reply(const EchoParams& p) override {
        BoostEchoReply r{{p.text}};
        sr_.reset(&r);
        return drain();
    }

    std::string_view write_invalid_parameter(std::string_view parameter) override {
        BoostErrorReply r{"org.varlink.service.InvalidParameter", {parameter}};
        sr_.reset(&r);
        return drain();
    }

private:
    std::string_view drain() {
        out_.clear();
        while (!sr_.done()) {
            auto s = sr_.read(chunk_, sizeof chunk_);
            out_.append(s.data(), s.size());
        }
        out_.push_back('\0');
        return out_;
    }

    static Result decode_absent(Method m) {
        switch (m) {
        case Method::echo: return {Status::invalid_parameter, field::text};
        case Method::add: return {Status::invalid_parameter, field::a};
        case Method::submit: return {Status::invalid_parameter, field::id};
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_doc(const json::value& root, Call& out) {
        auto* obj = root.if_object();
        if (!obj) return {Status::bad_call};
        out.oneway = out.more = out.upgrade = false;
        out.which = Method::none;
        const json::value *method = nullptr, *params = nullptr;
        for (const auto& kv : *obj) {
            auto key = sv(kv.key());
            const auto& v = kv.value();
            if (key == "method")
                method = &v;
            else if (key == "parameters")
                params = &v;
            else if (key == "oneway" || key == "more" || key == "upgrade") {
                auto* b = v.if_bool();
                if (!b) return {Status::bad_call};
                (key == "oneway" ? out.oneway : key == "more" ? out.more : out.upgrade) = *b;
            }
        }
        if (!method || !method->is_string()) return {Status::bad_call};
        out.method.assign(sv(method->get_string()));
        out.which = lookup_method(out.method);
        if (params && !params->is_null() && !params->is_object()) return {Status::bad_call};
        if (out.which == Method::none) return {Status::unknown_method};
        if (!params || params->is_null()) return decode_absent(out.which);
        const auto& o = params->get_object();
        switch (out.which) {
        case Method::echo: return decode_echo(o, out.echo);
        case Method::add: return decode_add(o, out.add);
        case Method::submit: return decode_submit(o, out.submit);
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_echo(const json::object& o, EchoParams& p) {
        auto* t = o.if_contains("text");
        if (!t || !get_string(*t, p.text)) return {Status::invalid_parameter, field::text};
        return {};
    }

    static Result decode_add(const json::object& o, AddParams& p) {
        unsigned seen = 0;
        for (const auto& kv : o) {
            auto key = sv(kv.key());
            if (key == "a") {
                if (!get_int64(kv.value(), p.a)) return {Status::invalid_parameter, field::a};
                seen |= 1;
            } else if (key == "b") {
                if (!get_int64(kv.value(), p.b)) return {Status::invalid_parameter, field::b};
                seen |= 2;
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::a};
        if (!(seen & 2)) return {Status::invalid_parameter, field::b};
        return {};
    }

    static Result decode_submit(const json::object& o, SubmitParams& p) {
        unsigned seen = 0;
        p.note.reset();
        for (const auto& kv : o) {
            auto key = sv(kv.key());
            const auto& v = kv.value();
            if (key == "id") {
                if (!get_string(v, p.id)) return {Status::invalid_parameter, field::id};
                seen |= 1;
            } else if (key == "user") {
                if (!decode_user(v, p.user)) return {Status::invalid_parameter, field::user};
                seen |= 2;
            } else if (key == "items") {
                auto* a = v.if_array();
                if (!a) return {Status::invalid_parameter, field::items};
                std::size_t i = 0;
                for (const auto& e : *a)
                    if (!decode_item(e, slot(p.items, i++))) return {Status::invalid_parameter, field::items};
                p.items.resize(i);
                seen |= 4;
            } else if (key == "comment") {
                if (!get_string(v, p.comment)) return {Status::invalid_parameter, field::comment};
                seen |= 8;
            } else if (key == "note") {
                if (!v.is_null() && !get_string(v, p.note.emplace())) return {Status::invalid_parameter, field::note};
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::id};
        if (!(seen & 2)) return {Status::invalid_parameter, field::user};
        if (!(seen & 4)) return {Status::invalid_parameter, field::items};
        if (!(seen & 8)) return {Status::invalid_parameter, field::comment};
        return {};
    }

    alignas(16) unsigned char temp_[4096];
    alignas(16) unsigned char arena_[64 * 1024];
    json::parser parser_{json::storage_ptr(), parse_options(), temp_, sizeof temp_};
    json::serializer sr_;
    char chunk_[512];
    std::string out_;
};

} // namespace

std::unique_ptr<Codec> make_boost() { return std::make_unique<Boost>(); }

} // namespace bench
