// JsonWriter: escaping, comma placement, numbers, copying a parsed value; JsonView: typed access that is safe
// on missing members and wrong types.
#include <svckit/varlink_json.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace svckit::varlink {
namespace {

std::string written(auto&& body) {
    std::string out;
    JsonWriter w(out);
    body(w);
    return out;
}

TEST(JsonWriter, EscapesQuotesBackslashesAndControlCharacters) {
    std::string text = std::string("a\"b\\c\n\t\r\b\f") + '\x01' + '\x1f';
    EXPECT_EQ(written([&](JsonWriter& w) { w.value(text); }), R"("a\"b\\c\n\t\r\b\f\u0001\u001f")");
}

TEST(JsonWriter, AppendsPlainAndEmptyStringsAfterWhatTheBufferHolds) {
    std::string out = "prefix:";
    JsonWriter w(out);
    w.beginArray();
    w.value("");
    w.value("plain text");
    w.value(std::string(1000, 'x')); // past the buffer's capacity: the string grows
    w.value("ends with a quote\"");
    w.endArray();
    EXPECT_EQ(out,
              "prefix:[\"\",\"plain text\",\"" + std::string(1000, 'x') + "\",\"ends with a quote\\\"\"]");
}

TEST(JsonWriter, EscapesNulSoItCannotEndAFrame) {
    std::string text("x\0y", 3);
    std::string out = written([&](JsonWriter& w) { w.value(text); });
    EXPECT_EQ(out, R"("x\u0000y")");
    EXPECT_EQ(out.find('\0'), std::string::npos);
}

TEST(JsonWriter, KeepsValidUtf8AndReplacesInvalidBytes) {
    EXPECT_EQ(written([](JsonWriter& w) { w.value("h\xC3\xA9llo \xF0\x9F\x98\x80"); }),
              "\"h\xC3\xA9llo \xF0\x9F\x98\x80\"");
    // A lone continuation byte, a truncated sequence, an overlong form and a surrogate.
    EXPECT_EQ(written([](JsonWriter& w) {
                  w.value("a\x80"
                          "b\xC3");
              }),
              "\"a\xEF\xBF\xBD"
              "b\xEF\xBF\xBD\"");
    EXPECT_EQ(written([](JsonWriter& w) { w.value("\xC0\xAF"); }), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
    EXPECT_EQ(written([](JsonWriter& w) { w.value("\xED\xA0\x80"); }),
              "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(JsonWriter, PlacesCommasInNestedContainers) {
    std::string out = written([](JsonWriter& w) {
        w.beginObject();
        w.field("a", 1);
        w.key("list");
        w.beginArray();
        w.value(true);
        w.null();
        w.beginObject();
        w.endObject();
        w.beginArray();
        w.endArray();
        w.value("s");
        w.endArray();
        w.field("b", false);
        w.endObject();
    });
    EXPECT_EQ(out, R"({"a":1,"list":[true,null,{},[],"s"],"b":false})");
    auto parsed = JsonDocument::parse(out);
    EXPECT_TRUE(parsed.has_value());
}

TEST(JsonWriter, WritesIntegerLimitsAndDoubles) {
    std::string out = written([](JsonWriter& w) {
        w.beginArray();
        w.value(std::numeric_limits<int64_t>::min());
        w.value(std::numeric_limits<uint64_t>::max());
        w.value(0.5);
        w.value(std::numeric_limits<double>::infinity());
        w.value(uint8_t{7});
        w.endArray();
    });
    EXPECT_EQ(out, "[-9223372036854775808,18446744073709551615,0.5,null,7]");
}

TEST(JsonWriter, CopiesAParsedValueExactly) {
    std::string input =
        R"({"s":"q\"\u0000","n":-3,"u":18446744073709551615,"f":1.25,"a":[1,{"x":null}],"t":true})";
    auto doc = JsonDocument::parse(input);
    ASSERT_TRUE(doc.has_value()) << doc.error().message();
    EXPECT_EQ(written([&](JsonWriter& w) { w.value(doc->root()); }), input);
    EXPECT_EQ(written([&](JsonWriter& w) {
                  w.beginObject();
                  w.field("first", 0);
                  w.members(doc->root()["a"].at(1));
                  w.endObject();
              }),
              R"({"first":0,"x":null})");
}

TEST(JsonView, GivesTypedValuesAndNothingForWrongTypes) {
    auto doc = JsonDocument::parse(
        R"({"s":"a\u0000b","i":-5,"big":18446744073709551615,"max":9223372036854775807,"f":2.5,"b":false,"z":null})");
    ASSERT_TRUE(doc.has_value());
    JsonView root = doc->root();
    EXPECT_TRUE(root.isObject());
    EXPECT_EQ(root.size(), 7u);
    EXPECT_EQ(root["s"].string(), std::string_view("a\0b", 3));
    EXPECT_EQ(root["i"].int64(), -5);
    EXPECT_EQ(root["i"].uint64(), std::nullopt);
    EXPECT_EQ(root["big"].uint64(), std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(root["big"].int64(), std::nullopt);
    EXPECT_EQ(root["max"].int64(), std::numeric_limits<int64_t>::max());
    EXPECT_EQ(root["f"].int64(), std::nullopt);
    EXPECT_EQ(root["f"].number(), 2.5);
    EXPECT_EQ(root["b"].boolean(), false);
    EXPECT_EQ(root["s"].boolean(), std::nullopt);
    EXPECT_TRUE(root["z"].exists());
    EXPECT_TRUE(root["z"].isNull());
}

TEST(JsonView, MissingMembersAreSafeAtEveryDepth) {
    auto doc = JsonDocument::parse(R"({"a":[1,2]})");
    ASSERT_TRUE(doc.has_value());
    JsonView missing = doc->root()["nope"]["deeper"].at(3);
    EXPECT_FALSE(missing.exists());
    EXPECT_FALSE(missing.isNull());
    EXPECT_EQ(missing.string(), std::nullopt);
    EXPECT_EQ(missing.size(), 0u);
    EXPECT_FALSE(doc->root()["a"].at(2).exists());
    EXPECT_FALSE(doc->root()["a"]["x"].exists());
    EXPECT_EQ(written([&](JsonWriter& w) { w.value(missing); }), "null");
}

TEST(JsonView, IteratesElementsAndMembersInOrder) {
    auto doc = JsonDocument::parse(R"({"b":1,"a":2,"list":["x","y","z"]})");
    ASSERT_TRUE(doc.has_value());
    std::vector<std::string> keys;
    doc->root().forEachMember([&](std::string_view key, JsonView) { keys.emplace_back(key); });
    EXPECT_EQ(keys, (std::vector<std::string>{"b", "a", "list"}));
    std::string joined;
    doc->root()["list"].forEachElement([&](JsonView e) { joined += e.string().value_or("?"); });
    EXPECT_EQ(joined, "xyz");
    int calls = 0;
    doc->root()["b"].forEachElement([&](JsonView) { ++calls; });
    EXPECT_EQ(calls, 0);
}

TEST(JsonDocument, RejectsMalformedInput) {
    EXPECT_FALSE(JsonDocument::parse("{").has_value());
    EXPECT_FALSE(JsonDocument::parse(R"({"a":1} x)").has_value());
    EXPECT_FALSE(JsonDocument::parse("{\"a\":\"\xFF\"}").has_value());
    EXPECT_EQ(JsonDocument::parse("[1,]").error().code(), EBADMSG);
}

TEST(JsonValue, KeepsAValueCompactedAndWritesItBack) {
    EXPECT_EQ(JsonValue().json(), "{}");
    auto value = JsonValue::parse(R"( { "a" : [1, 2.5, "x"], "b": {"c": null} } )");
    ASSERT_TRUE(value) << value.error().message();
    EXPECT_EQ(value->json(), R"({"a":[1,2.5,"x"],"b":{"c":null}})");
    std::string out;
    JsonWriter w(out);
    w.beginObject();
    w.field("v", *value);
    w.field("n", 1);
    w.endObject();
    EXPECT_EQ(out, R"({"v":{"a":[1,2.5,"x"],"b":{"c":null}},"n":1})");
    auto document = value->document();
    ASSERT_TRUE(document);
    EXPECT_EQ(document->root()["a"].at(2).string(), "x");
    EXPECT_EQ(JsonValue::from(document->root()["b"]), *JsonValue::parse(R"({"c":null})"));
    EXPECT_EQ(JsonValue::from(JsonView()).json(), "null");
    EXPECT_EQ(JsonValue::parse("{").error().code(), EBADMSG);
}

} // namespace
} // namespace svckit::varlink
