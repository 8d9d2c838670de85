// simdjson On-Demand: one reused parser, padded input (the receive buffer has kPadding spare bytes, so
// no copy), fields decoded as the object is walked. Replies with simdjson's string_builder.
#include "common.hpp"

#include <simdjson.h>

namespace bench {
namespace {

using namespace simdjson;

// A type mismatch in a parameter is InvalidParameter; anything else is broken JSON.
bool is_type_error(error_code e) {
    return e == INCORRECT_TYPE || e == NUMBER_OUT_OF_RANGE || e == NUMBER_ERROR || e == BIGINT_ERROR;
}
Result param_error(error_code e, std::string_view name) {
    return is_type_error(e) ? Result{Status::invalid_parameter, name} : Result{Status::bad_json};
}

template <class V>
error_code get_string(V&& v, std::string& out) {
    std::string_view s;
    if (auto e = std::forward<V>(v).get_string().get(s)) return e;
    out.assign(s);
    return SUCCESS;
}

error_code get_int64(ondemand::value v, std::int64_t& out) { return v.get_int64().get(out); }

// On-Demand only checks what it visits: a skipped value is only bracket-matched, so `"x":tru`, `"x":01`
// or `"x":[1,2}` in an unknown key would be accepted. A conformant server must reject them, so unknown
// values are walked and every scalar read. Any failure is a syntax error (TAPE_ERROR), never a type error.
error_code validate_value(ondemand::value v, int depth) {
    if (depth > 1024) return DEPTH_ERROR;
    ondemand::json_type t;
    if (auto e = v.type().get(t)) return e;
    switch (t) {
    case ondemand::json_type::object: {
        ondemand::object o;
        if (auto e = v.get_object().get(o)) return e;
        for (auto fr : o) {
            ondemand::field f;
            if (auto e = std::move(fr).get(f)) return e;
            std::string_view k;
            if (auto e = f.unescaped_key().get(k)) return e;
            if (auto e = validate_value(f.value(), depth + 1)) return e;
        }
        return SUCCESS;
    }
    case ondemand::json_type::array: {
        ondemand::array a;
        if (auto e = v.get_array().get(a)) return e;
        for (auto er : a) {
            ondemand::value ev;
            if (auto e = std::move(er).get(ev)) return e;
            if (auto e = validate_value(ev, depth + 1)) return e;
        }
        return SUCCESS;
    }
    case ondemand::json_type::string: {
        std::string_view s;
        return v.get_string().get(s);
    }
    case ondemand::json_type::number: {
        ondemand::number n;
        return v.get_number().get(n);
    }
    case ondemand::json_type::boolean: {
        bool b;
        return v.get_bool().get(b);
    }
    case ondemand::json_type::null: {
        bool n = false;
        if (auto e = v.is_null().get(n)) return e;
        return n ? SUCCESS : TAPE_ERROR;
    }
    default: return TAPE_ERROR;
    }
}
error_code skip_checked(ondemand::value v) { return validate_value(v, 0) ? TAPE_ERROR : SUCCESS; }

error_code decode_item(ondemand::value v, Item& it) {
    ondemand::object o;
    if (auto e = v.get_object().get(o)) return e;
    unsigned seen = 0;
    for (auto fr : o) {
        ondemand::field f;
        if (auto e = std::move(fr).get(f)) return e;
        auto k = f.key();
        if (k == "name") {
            if (auto e = get_string(f.value(), it.name)) return e;
            seen |= 1;
        } else if (k == "size") {
            if (auto e = get_int64(f.value(), it.size)) return e;
            seen |= 2;
        } else if (k == "tags") {
            ondemand::array a;
            if (auto e = f.value().get_array().get(a)) return e;
            std::size_t i = 0;
            for (auto er : a) {
                ondemand::value ev;
                if (auto e = std::move(er).get(ev)) return e;
                if (auto e = get_string(ev, slot(it.tags, i))) return e;
                ++i;
            }
            it.tags.resize(i);
            seen |= 4;
        } else if (k == "enabled") {
            if (auto e = f.value().get_bool().get(it.enabled)) return e;
            seen |= 8;
        } else if (k == "ratio") {
            if (auto e = f.value().get_double().get(it.ratio)) return e;
            seen |= 16;
        } else if (auto e = skip_checked(f.value())) {
            return e;
        }
    }
    return seen == 31 ? SUCCESS : INCORRECT_TYPE;
}

error_code decode_user(ondemand::value v, User& u) {
    ondemand::object o;
    if (auto e = v.get_object().get(o)) return e;
    unsigned seen = 0;
    for (auto fr : o) {
        ondemand::field f;
        if (auto e = std::move(fr).get(f)) return e;
        auto k = f.key();
        if (k == "name") {
            if (auto e = get_string(f.value(), u.name)) return e;
            seen |= 1;
        } else if (k == "uid") {
            if (auto e = get_int64(f.value(), u.uid)) return e;
            seen |= 2;
        } else if (k == "groups") {
            ondemand::array a;
            if (auto e = f.value().get_array().get(a)) return e;
            u.groups.clear();
            for (auto er : a) {
                std::int64_t g;
                if (auto e = std::move(er).get_int64().get(g)) return e;
                u.groups.push_back(g);
            }
            seen |= 4;
        } else if (k == "labels") {
            ondemand::object lo;
            if (auto e = f.value().get_object().get(lo)) return e;
            u.labels.clear();
            for (auto lr : lo) {
                ondemand::field lf;
                if (auto e = std::move(lr).get(lf)) return e;
                std::string_view key, val;
                if (auto e = lf.unescaped_key().get(key)) return e;
                std::string k2(key); // the key view is invalidated by the next string read
                if (auto e = lf.value().get_string().get(val)) return e;
                u.labels.insert_or_assign(std::move(k2), std::string(val));
            }
            seen |= 8;
        } else if (auto e = skip_checked(f.value())) {
            return e;
        }
    }
    return seen == 15 ? SUCCESS : INCORRECT_TYPE;
}

class Simdjson final : public Codec {
public:
    std::string_view name() const override { return "simdjson"; }
    std::string version() const override { return SIMDJSON_VERSION; }

    Result decode(Message in, Call& out) override {
        ondemand::document doc;
        if (parser_.iterate(padded_string_view(in.data, in.size, in.size + kPadding)).get(doc))
            return {Status::bad_json};
        ondemand::object obj;
        if (auto e = doc.get_object().get(obj)) return {e == INCORRECT_TYPE ? Status::bad_call : Status::bad_json};
        out.oneway = out.more = out.upgrade = false;
        out.which = Method::none;
        bool have_method = false, params_later = false, have_params = false;
        for (auto fr : obj) {
            ondemand::field f;
            if (std::move(fr).get(f)) return {Status::bad_json};
            auto k = f.key();
            if (k == "method") {
                std::string_view m;
                if (auto e = f.value().get_string().get(m)) return {is_type_error(e) ? Status::bad_call : Status::bad_json};
                out.method.assign(m);
                out.which = lookup_method(m);
                have_method = true;
            } else if (k == "parameters") {
                have_params = true;
                if (!have_method) { // rare: parameters before method; check now, decode after the walk
                    if (skip_checked(f.value())) return {Status::bad_json};
                    params_later = true;
                    continue;
                }
                if (out.which == Method::none) { // unknown method: the value is only checked
                    if (skip_checked(f.value())) return {Status::bad_json};
                    continue;
                }
                if (auto r = decode_params(f.value(), out); r.status != Status::ok) return r;
            } else if (k == "oneway" || k == "more" || k == "upgrade") {
                bool b;
                if (auto e = f.value().get_bool().get(b)) return {is_type_error(e) ? Status::bad_call : Status::bad_json};
                (k == "oneway" ? out.oneway : k == "more" ? out.more : out.upgrade) = b;
            } else if (skip_checked(f.value())) {
                return {Status::bad_json};
            }
        }
        if (!doc.at_end()) return {Status::bad_json};
        if (!have_method) return {Status::bad_call};
        if (out.which == Method::none) return {Status::unknown_method};
        if (params_later) {
            doc.rewind();
            ondemand::value pv;
            if (doc.find_field_unordered("parameters").get(pv)) return {Status::bad_json};
            return decode_params(pv, out);
        }
        if (!have_params) return decode_absent(out);
        return {};
    }

    std::string_view write_echo_reply(const EchoParams& p) override {
        sb_.clear();
        sb_.append_raw("{\"parameters\":{\"text\":");
        sb_.escape_and_append_with_quotes(p.text);
        sb_.append_raw("}}");
        sb_.append('\0');
        return view();
    }

    std::string_view write_invalid_parameter(std::string_view parameter) override {
        sb_.clear();
        sb_.append_raw("{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":");
        sb_.escape_and_append_with_quotes(parameter);
        sb_.append_raw("}}");
        sb_.append('\0');
        return view();
    }

private:
    std::string_view view() {
        std::string_view v;
        if (sb_.view().get(v)) return {};
        return v;
    }

    static Result decode_absent(Call& out) {
        switch (out.which) {
        case Method::echo: return {Status::invalid_parameter, field::text};
        case Method::add: return {Status::invalid_parameter, field::a};
        case Method::submit: return {Status::invalid_parameter, field::id};
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    Result decode_params(ondemand::value v, Call& out) {
        bool is_null = false;
        if (v.is_null().get(is_null)) return {Status::bad_json};
        if (is_null) return decode_absent(out);
        ondemand::object o;
        if (auto e = v.get_object().get(o)) return {is_type_error(e) ? Status::bad_call : Status::bad_json};
        switch (out.which) {
        case Method::echo: return decode_echo(o, out.echo);
        case Method::add: return decode_add(o, out.add);
        case Method::submit: return decode_submit(o, out.submit);
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_echo(ondemand::object o, EchoParams& p) {
        bool text = false;
        for (auto fr : o) {
            ondemand::field f;
            if (std::move(fr).get(f)) return {Status::bad_json};
            if (f.key() == "text") {
                if (auto e = get_string(f.value(), p.text)) return param_error(e, field::text);
                text = true;
            } else if (skip_checked(f.value())) {
                return {Status::bad_json};
            }
        }
        if (!text) return {Status::invalid_parameter, field::text};
        return {};
    }

    static Result decode_add(ondemand::object o, AddParams& p) {
        unsigned seen = 0;
        for (auto fr : o) {
            ondemand::field f;
            if (std::move(fr).get(f)) return {Status::bad_json};
            auto k = f.key();
            if (k == "a") {
                if (auto e = get_int64(f.value(), p.a)) return param_error(e, field::a);
                seen |= 1;
            } else if (k == "b") {
                if (auto e = get_int64(f.value(), p.b)) return param_error(e, field::b);
                seen |= 2;
            } else if (skip_checked(f.value())) {
                return {Status::bad_json};
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::a};
        if (!(seen & 2)) return {Status::invalid_parameter, field::b};
        return {};
    }

    static Result decode_submit(ondemand::object o, SubmitParams& p) {
        unsigned seen = 0;
        p.note.reset();
        for (auto fr : o) {
            ondemand::field f;
            if (std::move(fr).get(f)) return {Status::bad_json};
            auto k = f.key();
            if (k == "id") {
                if (auto e = get_string(f.value(), p.id)) return param_error(e, field::id);
                seen |= 1;
            } else if (k == "user") {
                if (auto e = decode_user(f.value(), p.user)) return param_error(e, field::user);
                seen |= 2;
            } else if (k == "items") {
                ondemand::array a;
                if (auto e = f.value().get_array().get(a)) return param_error(e, field::items);
                std::size_t i = 0;
                for (auto er : a) {
                    ondemand::value ev;
                    if (auto e = std::move(er).get(ev)) return param_error(e, field::items);
                    if (auto e = decode_item(ev, slot(p.items, i))) return param_error(e, field::items);
                    ++i;
                }
                p.items.resize(i);
                seen |= 4;
            } else if (k == "comment") {
                if (auto e = get_string(f.value(), p.comment)) return param_error(e, field::comment);
                seen |= 8;
            } else if (k == "note") {
                ondemand::value nv = f.value();
                bool n = false;
                if (nv.is_null().get(n)) return {Status::bad_json};
                if (!n) {
                    if (auto e = get_string(nv, p.note.emplace())) return param_error(e, field::note);
                }
            } else if (skip_checked(f.value())) {
                return {Status::bad_json};
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::id};
        if (!(seen & 2)) return {Status::invalid_parameter, field::user};
        if (!(seen & 4)) return {Status::invalid_parameter, field::items};
        if (!(seen & 8)) return {Status::invalid_parameter, field::comment};
        return {};
    }

    ondemand::parser parser_;
    builder::string_builder sb_{256};
};

} // namespace

std::unique_ptr<Codec> make_simdjson() { return std::make_unique<Simdjson>(); }

#define BENCH_STR2(x) #x
#define BENCH_STR(x) BENCH_STR2(x)
std::string simdjson_implementation() {
    // The On-Demand code inlined here is compiled for SIMDJSON_BUILTIN_IMPLEMENTATION (from -march);
    // the structural indexing (stage 1) inside libsimdjson.so is chosen at run time.
    return std::string(get_active_implementation()->name()) + " (stage 1 in libsimdjson, runtime-dispatched), " +
           BENCH_STR(SIMDJSON_BUILTIN_IMPLEMENTATION) " (On-Demand code inlined in this binary, from -march)";
}

} // namespace bench
