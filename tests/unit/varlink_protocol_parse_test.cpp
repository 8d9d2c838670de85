// The varlink protocol layer without sockets: one message parsed and checked as sd-varlink checks a call, the
// reasons a message breaks the protocol, the bytes of replies and errors, and the rules for names.
#include <svckit/internal/varlink_protocol.hpp>

#include <svckit/varlink.hpp>
#include <svckit/varlink_json.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace {

namespace protocol = svckit::varlink::protocol;
using svckit::varlink::JsonWriter;
using svckit::varlink::detail::ReplyKind;
using namespace std::string_view_literals;
using namespace std::string_literals;

// The reason `text` breaks the protocol, or "" when it parses as a call.
std::string rejection(std::string_view text) {
    auto message = protocol::parseCall(text);
    return message ? std::string() : std::string(message.error());
}

template <typename F>
std::string reply(ReplyKind kind, std::string_view name, F write) {
    std::string out;
    protocol::writeReply(out, kind, name, &svckit::varlink::detail::invokeWriter<F&>, &write);
    return out;
}

std::string replyWithoutWriter(ReplyKind kind, std::string_view name = {}) {
    std::string out;
    protocol::writeReply(out, kind, name, nullptr, nullptr);
    return out;
}

TEST(VarlinkProtocolParse, ReadsMethodParametersAndNoFlags) {
    auto message = protocol::parseCall(R"({"method":"org.example.Calc.Add","parameters":{"a":1,"b":2}})");
    ASSERT_TRUE(message.has_value()) << message.error();
    EXPECT_EQ(message->method, "org.example.Calc.Add");
    EXPECT_EQ(message->parameters["a"].int64(), 1);
    EXPECT_EQ(message->parameters["b"].int64(), 2);
    EXPECT_FALSE(message->flags.oneway);
    EXPECT_FALSE(message->flags.more);
    EXPECT_FALSE(message->flags.upgrade);
}

TEST(VarlinkProtocolParse, ReadsEachFlagWhenTrue) {
    auto oneway = protocol::parseCall(R"({"method":"a.b.C","oneway":true})");
    auto more = protocol::parseCall(R"({"more":true,"method":"a.b.C"})");
    auto upgrade = protocol::parseCall(R"({"method":"a.b.C","parameters":{},"upgrade":true})");
    ASSERT_TRUE(oneway && more && upgrade);
    EXPECT_TRUE(oneway->flags.oneway);
    EXPECT_FALSE(oneway->flags.more);
    EXPECT_TRUE(more->flags.more);
    EXPECT_FALSE(more->flags.oneway);
    EXPECT_TRUE(upgrade->flags.upgrade);
}

TEST(VarlinkProtocolParse, AcceptsFalseFlagsBeforeATrueOne) {
    auto message = protocol::parseCall(R"({"method":"a.b.C","oneway":false,"upgrade":false,"more":true})");
    ASSERT_TRUE(message.has_value()) << message.error();
    EXPECT_TRUE(message->flags.more);
}

TEST(VarlinkProtocolParse, RefusesAFlagMemberAfterATrueFlag) {
    EXPECT_EQ(rejection(R"({"method":"a.b.C","more":true,"oneway":false})"), "invalid call flags");
}

TEST(VarlinkProtocolParse, RefusesAFlagThatIsNotABoolean) {
    EXPECT_EQ(rejection(R"({"method":"a.b.C","more":1})"), "invalid call flags");
}

TEST(VarlinkProtocolParse, TreatsMissingOrNullParametersAsNone) {
    auto missing = protocol::parseCall(R"({"method":"a.b.C"})");
    auto null = protocol::parseCall(R"({"method":"a.b.C","parameters":null})");
    ASSERT_TRUE(missing && null);
    EXPECT_FALSE(missing->parameters.isObject());
    EXPECT_FALSE(null->parameters.isObject());
}

TEST(VarlinkProtocolParse, RefusesAMessageWithoutMethod) {
    EXPECT_EQ(rejection(R"({"parameters":{}})"), "message has no method");
}

TEST(VarlinkProtocolParse, RefusesANonStringOrRepeatedMethod) {
    EXPECT_EQ(rejection(R"({"method":7})"), "method is repeated or not a string");
    EXPECT_EQ(rejection(R"({"method":"a.b.C","method":"a.b.D"})"), "method is repeated or not a string");
}

TEST(VarlinkProtocolParse, RefusesParametersThatAreNotAnObjectOrRepeated) {
    EXPECT_EQ(rejection(R"({"method":"a.b.C","parameters":[]})"), "parameters is repeated or not an object");
    EXPECT_EQ(rejection(R"({"method":"a.b.C","parameters":{},"parameters":{}})"),
              "parameters is repeated or not an object");
}

TEST(VarlinkProtocolParse, RefusesAnUnknownTopLevelKey) {
    EXPECT_EQ(rejection(R"({"method":"a.b.C","id":1})"), "unknown key in a call");
}

TEST(VarlinkProtocolParse, RefusesAMessageThatIsNotAnObject) {
    EXPECT_EQ(rejection(R"(["method","a.b.C"])"), "message is not an object");
    EXPECT_EQ(rejection(R"("a.b.C")"), "message is not an object");
}

TEST(VarlinkProtocolParse, RefusesMalformedJsonAndInvalidUtf8) {
    EXPECT_NE(rejection(R"({"method":"a.b.C")"), "");
    EXPECT_NE(rejection("{\"method\":\"a.b.\xff\"}"), "");
}

TEST(VarlinkProtocolParse, RefusesAnEscapedNulInAString) {
    EXPECT_EQ(rejection(R"({"method":"a.b.C","parameters":{"s":"x\u0000y"}})"), "NUL escaped in a string");
}

TEST(VarlinkProtocolParse, AcceptsAnEscapedBackslashBeforeU0000) {
    // "\\u0000" is a backslash followed by the text u0000, not a NUL.
    EXPECT_EQ(rejection(R"({"method":"a.b.C","parameters":{"s":"\\u0000"}})"), "");
    EXPECT_TRUE(protocol::hasEscapedNul(R"("\\\u0000")"));
    EXPECT_FALSE(protocol::hasEscapedNul(R"("\\\\u0000")"));
}

std::string nested(size_t depth) {
    // The message object is level 1; `depth - 1` arrays inside it.
    std::string text = R"({"method":"a.b.C","parameters":{"x":)";
    // parameters is level 2: depth - 2 arrays make `depth` levels in all.
    text.append(depth - 2, '[');
    text.append(depth - 2, ']');
    text += "}}";
    return text;
}

TEST(VarlinkProtocolParse, AcceptsNestingUpToTheDepthLimit) {
    EXPECT_EQ(rejection(nested(protocol::maxJsonDepth)), "");
}

TEST(VarlinkProtocolParse, RefusesNestingBeyondTheDepthLimit) {
    EXPECT_EQ(rejection(nested(protocol::maxJsonDepth + 1)), "JSON nested too deeply");
}

TEST(VarlinkProtocolParse, KeepsHugeNumbersAsRawTextInsteadOfRefusing) {
    auto message =
        protocol::parseCall(R"({"method":"a.b.C","parameters":{"n":123456789012345678901234567890}})");
    ASSERT_TRUE(message.has_value()) << message.error();
    EXPECT_TRUE(message->parameters["n"].exists());
    EXPECT_FALSE(message->parameters["n"].isNumber());
}

TEST(VarlinkProtocolNames, ValidatesInterfaceNames) {
    EXPECT_TRUE(protocol::isValidInterfaceName("org.varlink.service"));
    EXPECT_TRUE(protocol::isValidInterfaceName("io.systemd"));
    EXPECT_TRUE(protocol::isValidInterfaceName("org.example.my-app2"));
    EXPECT_FALSE(protocol::isValidInterfaceName(""));
    EXPECT_FALSE(protocol::isValidInterfaceName("nodots"));
    EXPECT_FALSE(protocol::isValidInterfaceName("org..example"));
    EXPECT_FALSE(protocol::isValidInterfaceName("org.example."));
    EXPECT_FALSE(protocol::isValidInterfaceName(".org.example"));
    EXPECT_FALSE(protocol::isValidInterfaceName("1org.example"));
    EXPECT_FALSE(protocol::isValidInterfaceName("org.-example"));
    EXPECT_FALSE(protocol::isValidInterfaceName("org.exa_mple"));
    EXPECT_FALSE(protocol::isValidInterfaceName("org." + std::string(252, 'a')));
    EXPECT_TRUE(protocol::isValidInterfaceName("org." + std::string(251, 'a')));
}

TEST(VarlinkProtocolNames, ValidatesMethodNames) {
    EXPECT_TRUE(protocol::isValidMethodName("GetInfo"));
    EXPECT_TRUE(protocol::isValidMethodName("A1"));
    EXPECT_FALSE(protocol::isValidMethodName(""));
    EXPECT_FALSE(protocol::isValidMethodName("getInfo"));
    EXPECT_FALSE(protocol::isValidMethodName("Get_Info"));
    EXPECT_FALSE(protocol::isValidMethodName("Get.Info"));
}

TEST(VarlinkProtocolParameters, NamesTheFirstUnknownParameter) {
    auto message =
        protocol::parseCall(R"({"method":"a.b.C","parameters":{"interface":"x","extra":1,"more":2}})");
    ASSERT_TRUE(message.has_value());
    EXPECT_EQ(protocol::unknownParameter(message->parameters, {"interface"}), "extra"sv);
    EXPECT_EQ(protocol::unknownParameter(message->parameters, {"interface", "extra", "more"}), std::nullopt);
    EXPECT_EQ(protocol::unknownParameter(svckit::varlink::JsonView(), {}), std::nullopt);
}

TEST(VarlinkProtocolFormat, WritesAReplyWithParametersAndItsNul) {
    EXPECT_EQ(reply(ReplyKind::Final, {}, [](JsonWriter& w) { w.field("text", "hi"); }),
              "{\"parameters\":{\"text\":\"hi\"}}\0"s);
}

TEST(VarlinkProtocolFormat, LeavesOutEmptyParameters) {
    EXPECT_EQ(reply(ReplyKind::Final, {}, [](JsonWriter&) {}), "{}\0"s);
    EXPECT_EQ(replyWithoutWriter(ReplyKind::Final), "{}\0"s);
    EXPECT_EQ(replyWithoutWriter(ReplyKind::Error, "org.varlink.service.ExpectedMore"),
              "{\"error\":\"org.varlink.service.ExpectedMore\"}\0"s);
}

TEST(VarlinkProtocolFormat, WritesAnErrorWithParameters) {
    EXPECT_EQ(
        reply(ReplyKind::Error, "org.varlink.service.InvalidParameter",
              [](JsonWriter& w) { w.field("parameter", "text"); }),
        "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"text\"}}\0"s);
}

TEST(VarlinkProtocolFormat, MarksAContinuingReply) {
    EXPECT_EQ(reply(ReplyKind::Continues, {}, [](JsonWriter& w) { w.field("n", 1); }),
              "{\"parameters\":{\"n\":1},\"continues\":true}\0"s);
    EXPECT_EQ(replyWithoutWriter(ReplyKind::Continues), "{\"continues\":true}\0"s);
}

TEST(VarlinkProtocolFormat, AppendsAfterEarlierReplies) {
    std::string out = "{}\0"s;
    protocol::writeReply(out, ReplyKind::Final, {}, nullptr, nullptr);
    EXPECT_EQ(out, "{}\0{}\0"s);
}

TEST(VarlinkProtocolFormat, LeavesNoHalfReplyWhenTheWriterThrows) {
    std::string out = "{}\0"s;
    auto write = [](JsonWriter& w) {
        w.field("a", 1);
        throw std::runtime_error("no");
    };
    EXPECT_THROW(protocol::writeReply(out, ReplyKind::Final, {},
                                      &svckit::varlink::detail::invokeWriter<decltype(write)&>, &write),
                 std::runtime_error);
    EXPECT_EQ(out, "{}\0"s);
}

TEST(VarlinkProtocolFormat, WritesTheSystemErrorAsSdVarlinkDoes) {
    EXPECT_EQ(
        reply(ReplyKind::Error, svckit::varlink::errorSystem,
              [](JsonWriter& w) { protocol::writeSystemError(w, EIO); }),
        "{\"error\":\"io.systemd.System\",\"parameters\":{\"origin\":\"linux\",\"errno\":5,\"errnoName\":\"EIO\"}}\0"s);
}

TEST(VarlinkProtocolFormat, ReportsAThrownSystemErrorsErrnoAndEioOtherwise) {
    auto thrown = [](auto exception) {
        return protocol::errnoOfException(std::make_exception_ptr(exception));
    };
    EXPECT_EQ(thrown(std::system_error(ENOENT, std::generic_category())), ENOENT);
    EXPECT_EQ(thrown(std::system_error(EACCES, std::system_category())), EACCES);
    EXPECT_EQ(thrown(std::runtime_error("x")), EIO);
    EXPECT_EQ(thrown(42), EIO);
}

} // namespace
