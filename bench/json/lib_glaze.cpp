// glaze: direct-to-struct decoding by compile-time reflection, no DOM.
//
// Two codecs:
//  - "glaze": what a server has to do without knowing the method beforehand. Pass 1 reads the envelope
//    (method into a std::string, parameters kept as a raw_json_view, flags) and validates the whole
//    message; pass 2 reads the parameters' raw text straight into the method's struct.
//  - "glaze-variant": one pass. The calls of an interface are a std::variant tagged by "method" (what a
//    generator could emit per interface); glaze picks the alternative from the tag, and when "method"
//    is the first key it reads the rest in the same pass. On any error it falls back to the two-pass
//    codec to classify the error.
// Each is built in a TU of its own (lib_glaze_variant.cpp includes this file), so that neither's code
// generation depends on the other's being there.
// Errors: glaze's error_ctx says what went wrong and where (a byte offset), not which field. So on error
// the slow path below finds the offending top-level field by re-reading each field on its own.
// Options: unknown keys tolerated, missing keys rejected, skipped values and trailing bytes validated
// (both are off by default in glaze: without them `{"x":tru}` in an unknown key, or garbage after the
// object, would be accepted).
#include "common.hpp"

#include <glaze/glaze.hpp>

#include <array>

namespace bench {

struct GlazeEnvelope {
    std::string method;
    std::optional<glz::raw_json_view> parameters;
    std::optional<bool> oneway, more, upgrade;
};

struct GlazeEchoCall {
    EchoParams parameters;
    std::optional<bool> oneway, more, upgrade;
};
struct GlazeAddCall {
    AddParams parameters;
    std::optional<bool> oneway, more, upgrade;
};
struct GlazeSubmitCall {
    SubmitParams parameters;
    std::optional<bool> oneway, more, upgrade;
};
using GlazeCall = std::variant<GlazeEchoCall, GlazeAddCall, GlazeSubmitCall>;

} // namespace bench

template <>
struct glz::meta<bench::GlazeCall> {
    static constexpr std::string_view tag = "method";
    static constexpr auto ids = std::array{"org.example.bench.Echo", "org.example.bench.Add", "org.example.bench.Submit"};
};

namespace bench {
namespace {

struct VarlinkOpts : glz::opts {
    bool validate_skipped = true;
    bool validate_trailing_whitespace = true;
};
constexpr VarlinkOpts make_opts(bool null_terminated) {
    VarlinkOpts o{};
    o.null_terminated = null_terminated;
    o.error_on_unknown_keys = false;
    o.error_on_missing_keys = true;
    return o;
}
constexpr VarlinkOpts kMessage = make_opts(true); // a whole message: NUL-terminated
constexpr VarlinkOpts kPart = make_opts(false);   // a slice of one (the parameters): not NUL-terminated
constexpr glz::opts kWrite{};

template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

// Slow path, errors only: which top-level field of T does `raw` (a JSON object) not fit?
template <class T>
Result bad_field(std::string_view raw) {
    std::map<std::string, glz::raw_json, std::less<>> fields;
    if (glz::read<kPart>(fields, raw)) return {Status::bad_call}; // not an object
    T tmp{};
    Result r{Status::invalid_parameter};
    bool found = false;
    glz::for_each<glz::reflect<T>::size>([&]<std::size_t I>() {
        if (found) return;
        static constexpr std::string_view key = glz::reflect<T>::keys[I];
        auto& member = glz::get<I>(glz::to_tie(tmp));
        auto it = fields.find(key);
        if (it == fields.end()) {
            if constexpr (!is_optional<std::remove_cvref_t<decltype(member)>>) {
                r.parameter = key;
                found = true;
            }
        } else if (glz::read<kPart>(member, std::string_view(it->second.str))) {
            r.parameter = key;
            found = true;
        }
    });
    return r;
}

template <class T>
Result read_params(std::optional<glz::raw_json_view>& raw, T& out) {
    std::string_view text = raw ? std::string_view(raw->str) : std::string_view("{}");
    if (glz::read<kPart>(out, text)) [[unlikely]]
        return bad_field<T>(text);
    return {};
}

class Glaze : public Codec {
public:
    std::string_view name() const override { return "glaze"; }
    std::string version() const override {
        return std::to_string(glz::version.major) + "." + std::to_string(glz::version.minor) + "." +
               std::to_string(glz::version.patch);
    }

    Result decode(Message in, Call& out) override {
        env_.parameters.reset();
        env_.oneway.reset();
        env_.more.reset();
        env_.upgrade.reset();
        out.which = Method::none;
        if (glz::read<kMessage>(env_, in.view())) [[unlikely]] {
            if (glz::validate_json(in.view())) return {Status::bad_json};
            return {Status::bad_call};
        }
        std::swap(out.method, env_.method); // both keep their capacity: no allocation
        out.oneway = env_.oneway.value_or(false);
        out.more = env_.more.value_or(false);
        out.upgrade = env_.upgrade.value_or(false);
        out.which = lookup_method(out.method);
        switch (out.which) {
        case Method::echo: return read_params(env_.parameters, out.echo);
        case Method::add: return read_params(env_.parameters, out.add);
        case Method::submit:
            // glaze leaves members that are absent from the input untouched, and reads a map's entries into
            // the existing map without clearing it: reset both, or stale values survive into this call.
            out.submit.note.reset();
            out.submit.user.labels.clear();
            return read_params(env_.parameters, out.submit);
        case Method::none: break;
        }
        return {Status::unknown_method};
    }

    std::string_view write_echo_reply(const EchoParams& p) override {
        if (glz::write<kWrite>(glz::obj{"parameters", glz::obj{"text", p.text}}, out_)) return {};
        out_.push_back('\0');
        return out_;
    }

    std::string_view write_invalid_parameter(std::string_view parameter) override {
        if (glz::write<kWrite>(glz::obj{"error", "org.varlink.service.InvalidParameter", "parameters",
                                        glz::obj{"parameter", parameter}},
                               out_))
            return {};
        out_.push_back('\0');
        return out_;
    }

private:
    GlazeEnvelope env_;
    std::string out_;
};

class GlazeVariant final : public Glaze {
public:
    std::string_view name() const override { return "glaze-variant"; }

    Result decode(Message in, Call& out) override {
        std::visit(
            [](auto& c) {
                c.oneway.reset();
                c.more.reset();
                c.upgrade.reset();
                if constexpr (std::is_same_v<std::remove_cvref_t<decltype(c)>, GlazeSubmitCall>) {
                    c.parameters.note.reset(); // see Glaze::decode
                    c.parameters.user.labels.clear();
                }
            },
            call_);
        if (glz::read<kMessage>(call_, in.view())) [[unlikely]]
            return Glaze::decode(in, out); // classify the error (and name the field) the slow way
        out.method.assign(glz::meta<GlazeCall>::ids[call_.index()]);
        return std::visit(
            [&](auto& c) -> Result {
                out.oneway = c.oneway.value_or(false);
                out.more = c.more.value_or(false);
                out.upgrade = c.upgrade.value_or(false);
                using C = std::remove_cvref_t<decltype(c)>;
                if constexpr (std::is_same_v<C, GlazeEchoCall>) {
                    out.which = Method::echo;
                    std::swap(out.echo, c.parameters);
                } else if constexpr (std::is_same_v<C, GlazeAddCall>) {
                    out.which = Method::add;
                    out.add = c.parameters;
                } else {
                    out.which = Method::submit;
                    std::swap(out.submit, c.parameters);
                }
                return {};
            },
            call_);
    }

private:
    GlazeCall call_;
};

} // namespace

#ifdef BENCH_GLAZE_VARIANT
std::unique_ptr<Codec> make_glaze_variant() { return std::make_unique<GlazeVariant>(); }
#else
std::unique_ptr<Codec> make_glaze() { return std::make_unique<Glaze>(); }
#endif

} // namespace bench
