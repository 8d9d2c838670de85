// nlohmann-json: parse to its DOM with exceptions off (allow_exceptions=false), walk it. Replies: a
// prebuilt DOM whose text is assigned, then dump() (the public API has no "dump into my buffer").
#include "common.hpp"

#include <nlohmann/json.hpp>

#include <climits>

namespace bench {
namespace {

using json = nlohmann::json;

bool get_string(const json& v, std::string& out) {
    if (!v.is_string()) return false;
    out.assign(v.get_ref<const std::string&>());
    return true;
}

bool get_int64(const json& v, std::int64_t& out) {
    if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        if (u > std::uint64_t(INT64_MAX)) return false;
        out = std::int64_t(u);
        return true;
    }
    if (v.is_number_integer()) {
        out = v.get<std::int64_t>();
        return true;
    }
    return false;
}

bool decode_item(const json& o, Item& it) {
    if (!o.is_object()) return false;
    unsigned seen = 0;
    for (auto i = o.begin(); i != o.end(); ++i) {
        const std::string& key = i.key();
        const json& v = i.value();
        if (key == "name") {
            if (!get_string(v, it.name)) return false;
            seen |= 1;
        } else if (key == "size") {
            if (!get_int64(v, it.size)) return false;
            seen |= 2;
        } else if (key == "tags") {
            if (!v.is_array()) return false;
            std::size_t n = 0;
            for (const auto& e : v)
                if (!get_string(e, slot(it.tags, n++))) return false;
            it.tags.resize(n);
            seen |= 4;
        } else if (key == "enabled") {
            if (!v.is_boolean()) return false;
            it.enabled = v.get<bool>();
            seen |= 8;
        } else if (key == "ratio") {
            if (!v.is_number()) return false;
            it.ratio = v.get<double>();
            seen |= 16;
        }
    }
    return seen == 31;
}

bool decode_user(const json& o, User& u) {
    if (!o.is_object()) return false;
    unsigned seen = 0;
    for (auto i = o.begin(); i != o.end(); ++i) {
        const std::string& key = i.key();
        const json& v = i.value();
        if (key == "name") {
            if (!get_string(v, u.name)) return false;
            seen |= 1;
        } else if (key == "uid") {
            if (!get_int64(v, u.uid)) return false;
            seen |= 2;
        } else if (key == "groups") {
            if (!v.is_array()) return false;
            u.groups.clear();
            for (const auto& e : v) {
                std::int64_t g;
                if (!get_int64(e, g)) return false;
                u.groups.push_back(g);
            }
            seen |= 4;
        } else if (key == "labels") {
            if (!v.is_object()) return false;
            u.labels.clear();
            for (auto l = v.begin(); l != v.end(); ++l) {
                if (!l.value().is_string()) return false;
                u.labels.insert_or_assign(l.key(), l.value().get_ref<const std::string&>());
            }
            seen |= 8;
        }
    }
    return seen == 15;
}

class Nlohmann final : public Codec {
public:
    Nlohmann() {
        echo_ = {{"parameters", {{"text", ""}}}};
        echo_text_ = &echo_["parameters"]["text"].get_ref<std::string&>();
        error_ = {{"error", "org.varlink.service.InvalidParameter"}, {"parameters", {{"parameter", ""}}}};
        error_parameter_ = &error_["parameters"]["parameter"].get_ref<std::string&>();
    }

    std::string_view name() const override { return "nlohmann"; }
    std::string version() const override {
        return std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." + std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
               std::to_string(NLOHMANN_JSON_VERSION_PATCH);
    }

    Result decode(Message in, Call& out) override {
        json j = json::parse(in.data, in.data + in.size, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) return {Status::bad_json};
        return decode_doc(j, out);
    }

    std::string_view write_echo_reply(const EchoParams& p) override {
        echo_text_->assign(p.text);
        out_ = echo_.dump();
        out_.push_back('\0');
        return out_;
    }

    std::string_view write_invalid_parameter(std::string_view parameter) override {
        error_parameter_->assign(parameter);
        out_ = error_.dump();
        out_.push_back('\0');
        return out_;
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

    static Result decode_doc(const json& root, Call& out) {
        if (!root.is_object()) return {Status::bad_call};
        out.oneway = out.more = out.upgrade = false;
        out.which = Method::none;
        const json *method = nullptr, *params = nullptr;
        for (auto i = root.begin(); i != root.end(); ++i) {
            const std::string& key = i.key();
            const json& v = i.value();
            if (key == "method")
                method = &v;
            else if (key == "parameters")
                params = &v;
            else if (key == "oneway" || key == "more" || key == "upgrade") {
                if (!v.is_boolean()) return {Status::bad_call};
                (key == "oneway" ? out.oneway : key == "more" ? out.more : out.upgrade) = v.get<bool>();
            }
        }
        if (!method || !method->is_string()) return {Status::bad_call};
        out.method.assign(method->get_ref<const std::string&>());
        out.which = lookup_method(out.method);
        if (params && !params->is_null() && !params->is_object()) return {Status::bad_call};
        if (out.which == Method::none) return {Status::unknown_method};
        if (!params || params->is_null()) return decode_absent(out.which);
        switch (out.which) {
        case Method::echo: return decode_echo(*params, out.echo);
        case Method::add: return decode_add(*params, out.add);
        case Method::submit: return decode_submit(*params, out.submit);
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    static Result decode_echo(const json& o, EchoParams& p) {
        auto t = o.find("text");
        if (t == o.end() || !get_string(*t, p.text)) return {Status::invalid_parameter, field::text};
        return {};
    }

    static Result decode_add(const json& o, AddParams& p) {
        unsigned seen = 0;
        for (auto i = o.begin(); i != o.end(); ++i) {
            const std::string& key = i.key();
            if (key == "a") {
                if (!get_int64(i.value(), p.a)) return {Status::invalid_parameter, field::a};
                seen |= 1;
            } else if (key == "b") {
                if (!get_int64(i.value(), p.b)) return {Status::invalid_parameter, field::b};
                seen |= 2;
            }
        }
        if (!(seen & 1)) return {Status::invalid_parameter, field::a};
        if (!(seen & 2)) return {Status::invalid_parameter, field::b};
        return {};
    }

    static Result decode_submit(const json& o, SubmitParams& p) {
        unsigned seen = 0;
        p.note.reset();
        for (auto i = o.begin(); i != o.end(); ++i) {
            const std::string& key = i.key();
            const json& v = i.value();
            if (key == "id") {
                if (!get_string(v, p.id)) return {Status::invalid_parameter, field::id};
                seen |= 1;
            } else if (key == "user") {
                if (!decode_user(v, p.user)) return {Status::invalid_parameter, field::user};
                seen |= 2;
            } else if (key == "items") {
                if (!v.is_array()) return {Status::invalid_parameter, field::items};
                std::size_t n = 0;
                for (const auto& e : v)
                    if (!decode_item(e, slot(p.items, n++))) return {Status::invalid_parameter, field::items};
                p.items.resize(n);
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

    json echo_, error_;
    std::string* echo_text_;
    std::string* error_parameter_;
    std::string out_;
};

} // namespace

std::unique_ptr<Codec> make_nlohmann() { return std::make_unique<Nlohmann>(); }

} // namespace bench
