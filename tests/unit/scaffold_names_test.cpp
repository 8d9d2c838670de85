// `svckit new`'s checks of the names it is given (tools/svckit/new.hpp): each rule of systemd unit names,
// varlink interface names (varlink.org, UAPI.20) and D-Bus names and object paths (the D-Bus specification)
// refuses with a message naming that rule; the derived names are valid; nothing is written on refusal; the
// template language refuses what it does not know.
#include "new.hpp"

#include "activation_test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::tool {
namespace {

using svckit::test::TempDir;

// The message of the error `result` holds ("(valid)" when it holds none).
template <class T>
std::string messageOf(const Result<T>& result) {
    return result ? "(valid)" : result.error().message();
}

TEST(ScaffoldServiceName, AcceptsUnitNamePrefixesThatStartWithALetter) {
    for (std::string_view name : {"hello", "my-greeter", "a", "Svc_2.x-y", "org.example.thing"})
        EXPECT_TRUE(checkServiceName(name)) << name << ": " << messageOf(checkServiceName(name));
}

TEST(ScaffoldServiceName, RefusesAnEmptyName) {
    EXPECT_EQ(messageOf(checkServiceName("")), "Invalid service name '': it is empty");
}

TEST(ScaffoldServiceName, RefusesCharactersOutsideUnitNames) {
    EXPECT_EQ(
        messageOf(checkServiceName("my greeter")),
        "Invalid service name 'my greeter': ' ' is not allowed in a unit name (only letters, digits and "
        "\"_.-\")");
    EXPECT_EQ(
        messageOf(checkServiceName("a@b")),
        "Invalid service name 'a@b': '@' is not allowed in a unit name (only letters, digits and \"_.-\")");
    EXPECT_EQ(
        messageOf(checkServiceName("a/b")),
        "Invalid service name 'a/b': '/' is not allowed in a unit name (only letters, digits and \"_.-\")");
    EXPECT_EQ(messageOf(checkServiceName("a\\x2db")),
              "Invalid service name 'a\\x2db': '\\' is not allowed in a unit name (only letters, digits and "
              "\"_.-\")");
}

TEST(ScaffoldServiceName, RefusesAColonThatMesonRefusesInProjectNames) {
    EXPECT_EQ(messageOf(checkServiceName("a:b")),
              "Invalid service name 'a:b': ':' is allowed in unit names but not in meson project names");
}

TEST(ScaffoldServiceName, RefusesANameThatDoesNotStartWithALetter) {
    for (std::string_view name : {"-hello", "2fa", "_x", ".hidden"})
        EXPECT_EQ(
            messageOf(checkServiceName(name)),
            std::format("Invalid service name '{}': it must start with a letter (a C++ class name is made of "
                        "it)",
                        name));
}

TEST(ScaffoldServiceName, RefusesAUnitSuffix) {
    EXPECT_EQ(messageOf(checkServiceName("hello.service")),
              "Invalid service name 'hello.service': it is the prefix of the unit names, without '.service'");
    EXPECT_EQ(messageOf(checkServiceName("hello.socket")),
              "Invalid service name 'hello.socket': it is the prefix of the unit names, without '.socket'");
}

TEST(ScaffoldServiceName, RefusesANameTooLongForItsSocketPath) {
    std::string longest(kMaxServiceName, 'a');
    EXPECT_TRUE(checkServiceName(longest)) << messageOf(checkServiceName(longest));
    // /run/NAME-dbus.sock with the longest name still fits in sun_path (108 bytes with its NUL).
    EXPECT_LE(std::string("/run/" + longest + "-dbus.sock").size(), 107u);
    std::string tooLong = longest + "a";
    EXPECT_EQ(messageOf(checkServiceName(tooLong)),
              std::format("Invalid service name '{}': longer than 92 characters (its socket path "
                          "/run/NAME-dbus.sock must fit in a socket address)",
                          tooLong));
}

TEST(ScaffoldServiceName, DerivesAClassNameFromTheRunsOfLettersAndDigits) {
    EXPECT_EQ(classNameOf("hello"), "Hello");
    EXPECT_EQ(classNameOf("my-greeter"), "MyGreeter");
    EXPECT_EQ(classNameOf("a.b_c:d-2x"), "ABCD2x");
    EXPECT_EQ(classNameOf("HTTPd"), "HTTPd");
}

TEST(ScaffoldVarlinkInterfaceName, AcceptsReverseDomainNames) {
    for (std::string_view name :
         {"org.example.Hello", "io.systemd.Resolve", "a.b", "com.my-company.x1", "a.1b"})
        EXPECT_TRUE(checkVarlinkInterfaceName(name))
            << name << ": " << messageOf(checkVarlinkInterfaceName(name));
}

TEST(ScaffoldVarlinkInterfaceName, RefusesASingleLabel) {
    EXPECT_EQ(messageOf(checkVarlinkInterfaceName("Hello")),
              "Invalid varlink interface name 'Hello': it needs at least two labels separated by '.' "
              "(reverse-domain: org.example.Name)");
}

TEST(ScaffoldVarlinkInterfaceName, RefusesAnEmptyLabel) {
    EXPECT_EQ(messageOf(checkVarlinkInterfaceName("org..Hello")),
              "Invalid varlink interface name 'org..Hello': a label is empty ('..', or '.' at an end)");
    EXPECT_EQ(messageOf(checkVarlinkInterfaceName("org.Hello.")),
              "Invalid varlink interface name 'org.Hello.': a label is empty ('..', or '.' at an end)");
}

TEST(ScaffoldVarlinkInterfaceName, RefusesAFirstCharacterThatIsNoLetter) {
    EXPECT_EQ(messageOf(checkVarlinkInterfaceName("1org.Hello")),
              "Invalid varlink interface name '1org.Hello': it must start with a letter");
}

TEST(ScaffoldVarlinkInterfaceName, RefusesHyphensAtTheEndsOfALabel) {
    EXPECT_EQ(messageOf(checkVarlinkInterfaceName("org.-x.Hello")),
              "Invalid varlink interface name 'org.-x.Hello': label '-x' starts or ends with '-'");
    EXPECT_EQ(messageOf(checkVarlinkInterfaceName("org.x-.Hello")),
              "Invalid varlink interface name 'org.x-.Hello': label 'x-' starts or ends with '-'");
}

TEST(ScaffoldVarlinkInterfaceName, RefusesOtherCharacters) {
    EXPECT_EQ(
        messageOf(checkVarlinkInterfaceName("org.my_app.Hello")),
        "Invalid varlink interface name 'org.my_app.Hello': '_' is not allowed (only letters, digits and "
        "'-')");
}

TEST(ScaffoldDBusNames, AcceptValidNames) {
    EXPECT_TRUE(checkBusName("org.example.Hello1"));
    EXPECT_TRUE(checkBusName("org.my-company._x"));
    EXPECT_TRUE(checkDBusInterfaceName("org.example.Hello1"));
    EXPECT_TRUE(checkDBusInterfaceName("org._x.y_2"));
    EXPECT_TRUE(checkObjectPath("/"));
    EXPECT_TRUE(checkObjectPath("/org/example/Hello1"));
}

TEST(ScaffoldDBusNames, BusNameNeedsTwoElements) {
    EXPECT_EQ(messageOf(checkBusName("Hello")),
              "Invalid D-Bus bus name 'Hello': it needs at least two elements separated by '.'");
}

TEST(ScaffoldDBusNames, BusNameElementsAreNotEmpty) {
    EXPECT_EQ(messageOf(checkBusName("org..Hello")),
              "Invalid D-Bus bus name 'org..Hello': an element is empty ('..', or '.' at an end)");
}

TEST(ScaffoldDBusNames, BusNameElementsDoNotStartWithADigit) {
    EXPECT_EQ(messageOf(checkBusName("org.1x.Hello")),
              "Invalid D-Bus bus name 'org.1x.Hello': element '1x' starts with a digit");
}

TEST(ScaffoldDBusNames, BusNameIsAtMost255Characters) {
    std::string name = "org." + std::string(251, 'a');
    EXPECT_TRUE(checkBusName(name));
    EXPECT_EQ(messageOf(checkBusName(name + "a")),
              std::format("Invalid D-Bus bus name '{}a': longer than 255 characters", name));
}

TEST(ScaffoldDBusNames, AWellKnownNameIsNoUniqueName) {
    EXPECT_EQ(messageOf(checkBusName(":1.42")),
              "Invalid D-Bus bus name ':1.42': a name starting with ':' is a unique connection name");
}

TEST(ScaffoldDBusNames, BusNameCharacters) {
    EXPECT_EQ(
        messageOf(checkBusName("org.ex ample.Hello")),
        "Invalid D-Bus bus name 'org.ex ample.Hello': ' ' is not allowed (only letters, digits, '_' and "
        "'-')");
}

TEST(ScaffoldDBusNames, InterfaceNameHasNoHyphen) {
    EXPECT_EQ(
        messageOf(checkDBusInterfaceName("org.my-company.Hello")),
        "Invalid D-Bus interface name 'org.my-company.Hello': '-' is not allowed (only letters, digits and "
        "'_')");
}

TEST(ScaffoldDBusNames, ObjectPathRules) {
    EXPECT_EQ(messageOf(checkObjectPath("org/example")),
              "Invalid D-Bus object path 'org/example': it must start with '/'");
    EXPECT_EQ(messageOf(checkObjectPath("/org/example/")),
              "Invalid D-Bus object path '/org/example/': it must not end with '/'");
    EXPECT_EQ(messageOf(checkObjectPath("/org//example")),
              "Invalid D-Bus object path '/org//example': an element is empty ('//')");
    EXPECT_EQ(messageOf(checkObjectPath("/org/my-app")),
              "Invalid D-Bus object path '/org/my-app': '-' is not allowed (only letters, digits and '_')");
}

TEST(ScaffoldProject, DerivesValidNamesFromTheServiceName) {
    auto files = renderProject({.name = "my-greeter", .protocols = Protocols::Both});
    ASSERT_TRUE(files) << files.error().message();
    std::vector<std::string> paths;
    for (const ProjectFile& file : *files)
        paths.push_back(file.path);
    EXPECT_EQ(paths, (std::vector<std::string>{"README.md", "meson.build", "meson.options",
                                               "org.example.MyGreeter.varlink", "org.example.MyGreeter1.xml",
                                               "src/main.cpp", "tests/service_test.cpp"}));
}

TEST(ScaffoldProject, NamesTheOptionWhoseValueIsInvalid) {
    auto bad = renderProject({.name = "hello", .interface = "hello"});
    EXPECT_EQ(messageOf(bad),
              "Invalid varlink interface name 'hello': it needs at least two labels separated by "
              "'.' (reverse-domain: org.example.Name) (--interface)");
    // A varlink name with '-' is no D-Bus interface name: the D-Bus name must then be given.
    bad = renderProject({.name = "hello", .protocols = Protocols::Both, .interface = "org.my-co.Hello"});
    EXPECT_EQ(messageOf(bad),
              "Invalid D-Bus interface name 'org.my-co.Hello1': '-' is not allowed (only letters, "
              "digits and '_') (derived from --interface; give --bus-name)");
    bad = renderProject({.name = "hello", .protocols = Protocols::DBus, .objectPath = "/a/"});
    EXPECT_EQ(messageOf(bad), "Invalid D-Bus object path '/a/': it must not end with '/' (--object-path)");
}

TEST(ScaffoldProject, RefusesANonEmptyDirectoryAndWritesNothing) {
    TempDir dir;
    std::string target = dir.path() + "/project";
    std::filesystem::create_directory(target);
    std::ofstream(target + "/mine") << "keep";
    auto files = renderProject({.name = "hello"});
    ASSERT_TRUE(files) << files.error().message();
    EXPECT_EQ(messageOf(writeProject(target, *files)),
              "Refusing to write into '" + target + "': the directory is not empty");
    std::vector<std::string> left;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(target))
        left.push_back(entry.path().filename().string());
    EXPECT_EQ(left, std::vector<std::string>{"mine"});

    std::ofstream(dir.path() + "/file") << "keep";
    EXPECT_EQ(messageOf(writeProject(dir.path() + "/file", *files)),
              "Refusing to write into '" + dir.path() + "/file': it exists and is not a directory");
}

TEST(ScaffoldProject, WritesIntoAMissingOrEmptyDirectory) {
    TempDir dir;
    auto files = renderProject({.name = "hello"});
    ASSERT_TRUE(files) << files.error().message();
    ASSERT_TRUE(writeProject(dir.path() + "/new/project", *files));
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/new/project/src/main.cpp"));
    std::filesystem::create_directory(dir.path() + "/empty");
    EXPECT_TRUE(writeProject(dir.path() + "/empty", *files));
}

TEST(ScaffoldTemplate, KeepsOrDropsSectionsAndTheirDirectiveLines) {
    auto out =
        renderTemplate("t", "a\n{{#if x}}\nb {{v}}\n{{#else}}\nc\n{{#end}}\n{{#if !x}}d{{#end}}e{{{v}}}\n",
                       {{"v", "V"}}, {{"x", true}});
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_EQ(*out, "a\nb V\ne{V}\n");
}

TEST(ScaffoldTemplate, RefusesUnknownNamesAndUnbalancedDirectives) {
    EXPECT_EQ(messageOf(renderTemplate("t", "a\n{{nope}}", {}, {})), "template t:2: unknown value 'nope'");
    EXPECT_EQ(messageOf(renderTemplate("t", "{{#if nope}}{{#end}}", {}, {})),
              "template t:1: unknown flag 'nope'");
    EXPECT_EQ(messageOf(renderTemplate("t", "{{#if x}}", {}, {{"x", true}})),
              "template t: '{{#if}}' without '{{#end}}'");
    EXPECT_EQ(messageOf(renderTemplate("t", "{{#end}}", {}, {})),
              "template t:1: '{{#end}}' without '{{#if}}'");
}

} // namespace
} // namespace svckit::tool
