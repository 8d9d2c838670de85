// yyjson: read into an immutable DOM allocated from a reused dynamic allocator (yyjson_alc_dyn: it keeps
// freed chunks, so steady state has no malloc, yet any message size works), then walk it.
// Replies: a mutable doc built from the same allocator, written by yyjson's writer (zero-copy strings).
#include "common.hpp"

#include <yyjson.h>

#include <climits>

namespace bench {
namespace {

std::string_view sv(yyjson_val* v) { return {yyjson_get_str(v), yyjson_get_len(v)}; }

bool get_string(yyjson_val* v, std::string& out) {
    if (!yyjson_is_str(v)) return false;
    out.assign(yyjson_get_str(v), yyjson_get_len(v));
    return true;
}

bool get_int64(yyjson_val* v, std::int64_t& out) {
    if (yyjson_is_sint(v)) {
        out = yyjson_get_sint(v);
        return true;
    }
    if (yyjson_is_uint(v)) {
        std::uint64_t u = yyjson_get_uint(v);
        if (u > std::uint64_t(INT64_MAX)) return false;
        out = std::int64_t(u);
        return true;
    }
    return false;
}

bool decode_item(yyjson_val* o, Item& it) {
    if (!yyjson_is_obj(o)) return false;
    unsigned seen = 0;
    yyjson_val *k, *v;
    yyjson_obj_iter iter = yyjson_obj_iter_with(o);
    while ((k = yyjson_obj_iter_next(&iter))) {
        v = yyjson_obj_iter_get_val(k);
        auto key = sv(k);
        if (key == "name") {
            if (!get_string(v, it.name)) return false;
            seen |= 1;
        } else if (key == "size") {
            if (!get_int64(v, it.size)) return false;
            seen |= 2;
        } else if (key == "tags") {
            if (!yyjson_is_arr(v)) return false;
            std::size_t i = 0;
            yyjson_val* e;
            yyjson_arr_iter ai = yyjson_arr_iter_with(v);
            while ((e = yyjson_arr_iter_next(&ai)))
                if (!get_string(e, slot(it.tags, i++))) return false;
            it.tags.resize(i);
            seen |= 4;
        } else if (key == "enabled") {
            if (!yyjson_is_bool(v)) return false;
            it.enabled = yyjson_get_bool(v);
            seen |= 8;
        } else if (key == "ratio") {
            if (!yyjson_is_num(v)) return false;
            it.ratio = yyjson_get_num(v);
            seen |= 16;
        }
    }
    return seen == 31;
}

bool decode_user(yyjson_val* o, User& u) {
    if (!yyjson_is_obj(o)) return false;
    unsigned seen = 0;
    yyjson_val *k, *v;
    yyjson_obj_iter iter = yyjson_obj_iter_with(o);
    while ((k = yyjson_obj_iter_next(&iter))) {
        v = yyjson_obj_iter_get_val(k);
        auto key = sv(k);
        if (key == "name") {
            if (!get_string(v, u.name)) return false;
            seen |= 1;
        } else if (key == "uid") {
            if (!get_int64(v, u.uid)) return false;
            seen |= 2;
        } else if (key == "groups") {
            if (!yyjson_is_arr(v)) return false;
            u.groups.clear();
            yyjson_val* e;
            yyjson_arr_iter ai = yyjson_arr_iter_with(v);
            while ((e = yyjson_arr_iter_next(&ai))) {
                std::int64_t g;
                if (!get_int64(e, g)) return false;
                u.groups.push_back(g);
            }
            seen |= 4;
        } else if (key == "labels") {
            if (!yyjson_is_obj(v)) return false;
            u.labels.clear();
            yyjson_val *lk, *lv;
            yyjson_obj_iter li = yyjson_obj_iter_with(v);
            while ((lk = yyjson_obj_iter_next(&li))) {
                lv = yyjson_obj_iter_get_val(lk);
                if (!yyjson_is_str(lv)) return false;
                u.labels.insert_or_assign(std::string(sv(lk)), std::string(sv(lv)));
            }
            seen |= 8;
        }
    }
    return seen == 15;
}

class Yyjson final : public Codec {
public:
    Yyjson() : dyn_(yyjson_alc_dyn_new()), alc_(*dyn_) {}
    ~Yyjson() override {
        if (out_) alc_.free(alc_.ctx, out_);
        yyjson_alc_dyn_free(dyn_);
    }

    std::string_view name() const override { return "yyjson"; }
    std::string version() const override { return YYJSON_VERSION_STRING; }

    Result decode(Message in, Call& out) override {
        yyjson_read_err err;
        yyjson_doc* doc = yyjson_read_opts(const_cast<char*>(in.data), in.size, YYJSON_READ_NOFLAG, &alc_, &err);
        if (!doc) return {Status::bad_json};
        Result r = decode_doc(yyjson_doc_get_root(doc), out);
        yyjson_doc_free(doc);
        return r;
    }

    std::string_view write_echo_reply(const EchoParams& p) override {
        yyjson_mut_doc* d = yyjson_mut_doc_new(&alc_);
        yyjson_mut_val* root = yyjson_mut_obj(d);
        yyjson_mut_doc_set_root(d, root);
        yyjson_mut_val* params = yyjson_mut_obj(d);
        yyjson_mut_obj_add_val(d, root, "parameters", params);
        yyjson_mut_obj_add_strn(d, params, "text", p.text.data(), p.text.size());
        return finish(d);
    }

    std::string_view write_invalid_parameter(std::string_view parameter) override {
        yyjson_mut_doc* d = yyjson_mut_doc_new(&alc_);
        yyjson_mut_val* root = yyjson_mut_obj(d);
        yyjson_mut_doc_set_root(d, root);
        yyjson_mut_obj_add_str(d, root, "error", "org.varlink.service.InvalidParameter");
        yyjson_mut_val* params = yyjson_mut_obj(d);
        yyjson_mut_obj_add_val(d, root, "parameters", params);
        yyjson_mut_obj_add_strn(d, params, "parameter", parameter.data(), parameter.size());
        return finish(d);
    }

private:
    std::string_view finish(yyjson_mut_doc* d) {
        if (out_) alc_.free(alc_.ctx, out_); // the previous reply's buffer goes back to the allocator
        std::size_t len = 0;
        out_ = yyjson_mut_write_opts(d, YYJSON_WRITE_NOFLAG, &alc_, &len, nullptr);
        yyjson_mut_doc_free(d);
        if (!out_) return {};
        return {out_, len + 1}; // yyjson terminates its output with a NUL: the varlink frame end
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

    static Result decode_doc(yyjson_val* root, Call& out) {
        if (!yyjson_is_obj(root)) return {Status::bad_call};
        out.oneway = out.more = out.upgrade = false;
        out.which = Method::none;
        yyjson_val *k, *v, *method = nullptr, *params = nullptr;
        yyjson_obj_iter iter = yyjson_obj_iter_with(root);
        while ((k = yyjson_obj_iter_next(&iter))) {
            v = yyjson_obj_iter_get_val(k);
            auto key = sv(k);
            if (key == "method")
                method = v;
            else if (key == "parameters")
                params = v;
            else if (key == "oneway" || key == "more" || key == "upgrade") {
                if (!yyjson_is_bool(v)) return {Status::bad_call};
                (key == "oneway" ? out.oneway : key == "more" ? out.more : out.upgrade) = yyjson_get_bool(v);
            }
        }
        if (!method || !yyjson_is_str(method)) return {Status::bad_call};
        out.method.assign(sv(method));
        out.which = lookup_method(out.method);
        if (params && !yyjson_is_null(params) && !yyjson_is_obj(params)) return {Status::bad_call};
        if (out.which == Method::none) return {Status::unknown_method};
        if (!params || yyjson_is_null(params)) return decode_absent(out.which);
        switch (out.which) {
        case Method::echo: return decode_echo(params, out.echo);
        case Method::add: return decode_add(params, out.add);
        case Method::submit: return decode_submit(params, out.submit);
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_echo(yyjson_val* o, EchoParams& p) {
        yyjson_val* t = yyjson_obj_get(o, "text");
        if (!t || !get_string(t, p.text)) return {Status::invalid_parameter, field::text};
        return {};
    }

    static Result decode_add(yyjson_val* o, AddParams& p) {
        unsigned seen = 0;
        yyjson_val *k, *v;
        yyjson_obj_iter iter = yyjson_obj_iter_with(o);
        while ((k = yyjson_obj_iter_next(&iter))) {
            v = yyjson_obj_iter_get_val(k);
            auto key = sv(k);
            if (key == "a") {
                if (!get_int64(v, p.a)) return {Status::invalid_parameter, field::a};
                seen |= 1;
            } else if (key == "b") {
                if (!get_int64(v, p.b)) return {Status::invalid_parameter, field::b};
                seen |= 2;
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::a};
        if (!(seen & 2)) return {Status::invalid_parameter, field::b};
        return {};
    }

    static Result decode_submit(yyjson_val* o, SubmitParams& p) {
        unsigned seen = 0;
        p.note.reset();
        yyjson_val *k, *v;
        yyjson_obj_iter iter = yyjson_obj_iter_with(o);
        while ((k = yyjson_obj_iter_next(&iter))) {
            v = yyjson_obj_iter_get_val(k);
            auto key = sv(k);
            if (key == "id") {
                if (!get_string(v, p.id)) return {Status::invalid_parameter, field::id};
                seen |= 1;
            } else if (key == "user") {
                if (!decode_user(v, p.user)) return {Status::invalid_parameter, field::user};
                seen |= 2;
            } else if (key == "items") {
                if (!yyjson_is_arr(v)) return {Status::invalid_parameter, field::items};
                std::size_t i = 0;
                yyjson_val* e;
                yyjson_arr_iter ai = yyjson_arr_iter_with(v);
                while ((e = yyjson_arr_iter_next(&ai)))
                    if (!decode_item(e, slot(p.items, i++))) return {Status::invalid_parameter, field::items};
                p.items.resize(i);
                seen |= 4;
            } else if (key == "comment") {
                if (!get_string(v, p.comment)) return {Status::invalid_parameter, field::comment};
                seen |= 8;
            } else if (key == "note") {
                if (!yyjson_is_null(v) && !get_string(v, p.note.emplace()))
                    return {Status::invalid_parameter, field::note};
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::id};
        if (!(seen & 2)) return {Status::invalid_parameter, field::user};
        if (!(seen & 4)) return {Status::invalid_parameter, field::items};
        if (!(seen & 8)) return {Status::invalid_parameter, field::comment};
        return {};
    }

    yyjson_alc* dyn_;
    yyjson_alc alc_;
    char* out_ = nullptr;
};

} // namespace

std::unique_ptr<Codec> make_yyjson() { return std::make_unique<Yyjson>(); }

} // namespace bench
