// How the varlink server reads calls and writes replies where the protocol leaves room, each the way
// sd-varlink (the reference) does it: which messages are protocol errors, that calls before one are still
// answered, the 16 MiB input rule, nesting depth, the shape of replies without parameters, the built-in
// methods' parameter checks. tests/integration/varlink_conformance.py compares the same inputs with
// sd-varlink itself.
#include "varlink_test_support.hpp"

#include <gtest/gtest.h>

namespace svckit::varlink {
namespace {

using namespace harness;
using namespace std::chrono_literals;

std::string frame(std::string_view json) {
    return std::string(json) + '\0';
}

// The bad message closes the connection without a reply; a sentinel call after it in the same write is not
// answered either.
void expectProtocolError(std::string_view bad) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.sendRaw(frame(bad) + frame(echo("after"))));
    EXPECT_TRUE(client.closedByServer()) << bad;
    EXPECT_EQ(server.stop().protocolErrors, 1u) << bad;
}

// The message is a call: the sentinel after it is answered on an open connection.
void expectAccepted(std::string_view message, int replies) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.sendRaw(frame(message) + frame(echo("after"))));
    for (int i = 0; i < replies; ++i)
        ASSERT_TRUE(client.receive().has_value()) << message;
    EXPECT_EQ(parse(client.receive()).text(), "after") << message;
    EXPECT_EQ(server.stop().protocolErrors, 0u) << message;
}

TEST(VarlinkProtocol, ClosesOnAnUnknownTopLevelKey) {
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"foo":1})");
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"foo":null})");
    // Vendor extensions nested in an object named after the vendor are refused too, as sd-varlink does.
    expectProtocolError(R"({"method":"org.example.test.Echo","com.example":{}})");
}

TEST(VarlinkProtocol, ClosesOnARepeatedMethodOrParameters) {
    expectProtocolError(R"({"method":"org.example.test.Echo","method":"org.example.test.Echo"})");
    expectProtocolError(
        R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"parameters":{"text":"b"}})");
}

TEST(VarlinkProtocol, ClosesOnAFlagThatIsNotABoolean) {
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"oneway":null})");
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"more":1})");
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"upgrade":"true"})");
}

TEST(VarlinkProtocol, ClosesOnAnyFlagAfterOneThatIsSet) {
    // sd-varlink reads the members in order and refuses a flag member after a flag that is true, even a false
    // one; flags before a set one may be false.
    expectProtocolError(
        R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"oneway":true,"more":false})");
    expectProtocolError(
        R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"more":true,"upgrade":false})");
    expectAccepted(
        R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"more":false,"oneway":true})", 0);
    expectAccepted(
        R"({"method":"org.example.test.Echo","parameters":{"text":"a"},"oneway":false,"oneway":false})", 1);
}

TEST(VarlinkProtocol, ClosesOnAnEscapedNulInAnyString) {
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a\u0000b"}})");
    expectProtocolError(R"({"method":"org.example.test.Echo","parameters":{"text":"a","k\u0000":1}})");
    expectProtocolError(R"({"method":"org.example.test.Echo\u0000"})");
}

TEST(VarlinkProtocol, AcceptsAnEscapedBackslashBeforeU0000) {
    // "\\u0000" is a backslash and the text u0000, not a NUL.
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":{"text":"a\\u0000b"}})"));
    EXPECT_EQ(parse(client.receive()).text(), "a\\u0000b");
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":{"text":"\\\\\u0000"}})"));
    EXPECT_TRUE(client.closedByServer()); // two escaped backslashes, then an escaped NUL
}

std::string nested(size_t depth) {
    // The message object is level 1, parameters level 2: `depth` levels in all.
    return std::string(R"({"method":"org.example.test.Echo","parameters":{"text":"a","x":)") +
           std::string(depth - 2, '[') + std::string(depth - 2, ']') + "}}";
}

TEST(VarlinkProtocol, AcceptsNestingUpTo2048Levels) {
    expectAccepted(nested(2048), 1);
}

TEST(VarlinkProtocol, ClosesOnNestingDeeperThan2048Levels) {
    expectProtocolError(nested(2049));
    expectProtocolError(nested(100000));
}

TEST(VarlinkProtocol, ReadsANumberBeyondEveryNumericTypeAsNotANumber) {
    // sd-json reads 1e400 (and integers beyond 64 bits); a handler sees no number there, so a parameter check
    // answers InvalidParameter instead of the connection closing.
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Echo","parameters":{"text":1e400}})"));
    Reply reply = parse(client.receive());
    EXPECT_EQ(reply.error(), "org.varlink.service.InvalidParameter");
    ASSERT_TRUE(
        client.call(R"({"method":"org.example.test.Big","parameters":{"size":18446744073709551616}})"));
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["blob"].string(), "");
    EXPECT_EQ(server.stop().protocolErrors, 0u);
}

TEST(VarlinkProtocol, AnswersTheCallsBeforeAProtocolErrorThenCloses) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(
        client.sendRaw(frame(echo("first")) +
                       frame(R"({"method":"org.example.test.Count","parameters":{"n":2},"more":true})") +
                       frame("[]") + frame(echo("never"))));
    EXPECT_EQ(parse(client.receive()).text(), "first");
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["i"].int64(), 0);
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["i"].int64(), 1);
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["i"].int64(), 2);
    EXPECT_TRUE(client.closedByServer());
    Snapshot counters = server.stop();
    EXPECT_EQ(counters.protocolErrors, 1u);
    EXPECT_EQ(counters.calls, 2u);
}

TEST(VarlinkProtocol, AnswersADeferredCallBeforeAProtocolErrorThenCloses) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(
        client.sendRaw(frame(R"({"method":"org.example.test.Later","parameters":{"text":"late","ms":100}})") +
                       frame("{") + frame(echo("never"))));
    EXPECT_EQ(parse(client.receive()).text(), "late");
    EXPECT_TRUE(client.closedByServer());
}

TEST(VarlinkProtocol, BuffersAtMostMaxMessageSizeBytesWithoutANul) {
    ServerOptions options;
    options.maxMessageSize = 64 * 1024;
    TestServer server(options);
    // The longest message: maxMessageSize - 1 bytes and its NUL.
    std::string prefix = R"({"method":"org.example.test.Echo","parameters":{"text":")";
    std::string longest = prefix + std::string(64 * 1024 - 1 - prefix.size() - 3, 'a') + "\"}}";
    ASSERT_EQ(longest.size(), 64u * 1024 - 1);
    Client fits(server.path());
    ASSERT_TRUE(fits.call(longest));
    EXPECT_EQ(parse(fits.receive()).text().size(), longest.size() - prefix.size() - 3);
    // One byte more is refused, with its NUL or without.
    Client tooLong(server.path());
    ASSERT_TRUE(tooLong.call(prefix + std::string(64 * 1024 - prefix.size() - 3, 'a') + "\"}}"));
    EXPECT_TRUE(tooLong.closedByServer());
    Client unterminated(server.path());
    ASSERT_TRUE(unterminated.sendRaw(std::string(64 * 1024, ' ')));
    EXPECT_TRUE(unterminated.closedByServer());
    // Just under the limit without a NUL, the server waits for the rest.
    Client waiting(server.path());
    ASSERT_TRUE(waiting.sendRaw(std::string(64 * 1024 - 1, ' ')));
    EXPECT_FALSE(waiting.closedByServer(300ms));
}

TEST(VarlinkProtocol, LeavesOutEmptyParametersAsSdVarlinkDoes) {
    TestServer server({}, false, Extras{.methods = [](Server&, EventLoop&) {
                          return std::vector<Method>{
                              Method{.name = "Empty", .handler = [](Call& call) { (void)call.reply(); }},
                              Method{.name = "EmptyWriter",
                                     .handler = [](Call& call) { (void)call.reply([](JsonWriter&) {}); }},
                              Method{.name = "EmptyError",
                                     .handler =
                                         [](Call& call) {
                                             (void)call.error("org.example.test.Failed", [](JsonWriter&) {});
                                         }},
                              Method{.name = "EmptyStream",
                                     .handler =
                                         [](Call& call) {
                                             (void)call.replyContinues([](JsonWriter&) {});
                                             (void)call.reply();
                                         },
                                     .requiresMore = true},
                          };
                      }});
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Empty"})"));
    EXPECT_EQ(client.receive(), "{}");
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.EmptyWriter"})"));
    EXPECT_EQ(client.receive(), "{}");
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.EmptyError"})"));
    EXPECT_EQ(client.receive(), R"({"error":"org.example.test.Failed"})");
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.Count"})"));
    EXPECT_EQ(client.receive(), R"({"error":"org.varlink.service.ExpectedMore"})");
    ASSERT_TRUE(client.call(R"({"method":"org.example.test.EmptyStream","more":true})"));
    EXPECT_EQ(client.receive(), R"({"continues":true})");
    EXPECT_EQ(client.receive(), "{}");
    ASSERT_TRUE(client.call(echo("x")));
    EXPECT_EQ(client.receive(), R"({"parameters":{"text":"x"}})");
}

TEST(VarlinkProtocol, ChecksTheParametersOfTheBuiltInMethods) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(R"({"method":"org.varlink.service.GetInfo","parameters":{"x":1}})"));
    Reply info = parse(client.receive());
    EXPECT_EQ(info.error(), "org.varlink.service.InvalidParameter");
    EXPECT_EQ(info.root()["parameters"]["parameter"].string(), "x");
    ASSERT_TRUE(client.call(
        R"({"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.example.test","y":1}})"));
    Reply description = parse(client.receive());
    EXPECT_EQ(description.error(), "org.varlink.service.InvalidParameter");
    EXPECT_EQ(description.root()["parameters"]["parameter"].string(), "y");
    // The declared parameter is checked first.
    ASSERT_TRUE(
        client.call(R"({"method":"org.varlink.service.GetInterfaceDescription","parameters":{"y":1}})"));
    EXPECT_EQ(parse(client.receive()).root()["parameters"]["parameter"].string(), "interface");
}

TEST(VarlinkProtocol, DescribesIoSystemdWhoseSystemErrorItSends) {
    TestServer server;
    Client client(server.path());
    ASSERT_TRUE(client.call(
        R"({"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.systemd"}})"));
    Reply reply = parse(client.receive());
    auto description = reply.root()["parameters"]["description"].string();
    ASSERT_TRUE(description.has_value());
    EXPECT_NE(description->find("interface io.systemd\n"), std::string_view::npos);
    EXPECT_NE(description->find("error System(origin: ?string, errnoName: ?string, errno: ?int)"),
              std::string_view::npos);
}

} // namespace
} // namespace svckit::varlink
