// Tests of the .socket unit parser behind `svckit activate` (tools/svckit/unit_file.hpp).
#include "unit_file.hpp"

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace svckit::tool {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Parses text that must be valid, failing the test with the parser's message otherwise.
SocketUnit parseValid(std::string_view text, std::string_view fileName = "x.socket",
                      const ParseOptions& options = {}) {
    auto unit = parseSocketUnit(text, fileName, options);
    EXPECT_TRUE(unit.has_value()) << (unit ? "" : unit.error().message());
    return unit ? std::move(*unit) : SocketUnit{};
}

// The message of a parse that must fail.
std::string parseError(std::string_view text, std::string_view fileName = "x.socket") {
    auto unit = parseSocketUnit(text, fileName);
    EXPECT_FALSE(unit.has_value()) << "parsed, but should not have:\n" << text;
    return unit ? std::string() : unit.error().message();
}

TEST(UnitFileParser, AppliesSystemdDefaults) {
    SocketUnit unit = parseValid("[Socket]\nListenStream=/run/x.sock\n", "x.socket");
    EXPECT_EQ(unit.name, "x.socket");
    ASSERT_THAT(unit.listeners, SizeIs(1));
    EXPECT_EQ(unit.listeners[0].address, "/run/x.sock");
    EXPECT_EQ(unit.listeners[0].type, SocketType::Stream);
    EXPECT_EQ(unit.listeners[0].line, 2u);
    EXPECT_FALSE(unit.options.accept);
    EXPECT_FALSE(unit.options.passCredentials);
    EXPECT_FALSE(unit.options.passPidfd);
    EXPECT_TRUE(unit.options.acceptFileDescriptors);
    EXPECT_EQ(unit.options.socketMode, 0666u);
    EXPECT_EQ(unit.options.directoryMode, 0755u);
    EXPECT_EQ(unit.options.maxConnections, 64u);
    EXPECT_EQ(unit.options.maxConnectionsPerSource, 0u);
    EXPECT_EQ(unit.options.service, "");
    EXPECT_THAT(unit.notes, IsEmpty());
}

TEST(UnitFileParser, ParsesEverySupportedSocketSetting) {
    SocketUnit unit = parseValid(R"([Socket]
ListenStream=/run/a.sock
ListenSequentialPacket=@b
Accept=no
FileDescriptorName=varlink
SocketMode=0600
DirectoryMode=0700
PassCredentials=yes
PassPIDFD=yes
AcceptFileDescriptors=no
MaxConnections=5
MaxConnectionsPerSource=2
Service=other.service
)");
    ASSERT_THAT(unit.listeners, SizeIs(2));
    EXPECT_EQ(unit.listeners[0].address, "/run/a.sock");
    EXPECT_EQ(unit.listeners[0].type, SocketType::Stream);
    EXPECT_EQ(unit.listeners[1].address, "@b");
    EXPECT_EQ(unit.listeners[1].type, SocketType::SeqPacket);
    EXPECT_EQ(unit.listeners[1].line, 3u);
    EXPECT_FALSE(unit.options.accept);
    EXPECT_EQ(unit.options.fileDescriptorName, "varlink");
    EXPECT_EQ(unit.fdName(), "varlink");
    EXPECT_EQ(unit.options.socketMode, 0600u);
    EXPECT_EQ(unit.options.directoryMode, 0700u);
    EXPECT_TRUE(unit.options.passCredentials);
    EXPECT_TRUE(unit.options.passPidfd);
    EXPECT_FALSE(unit.options.acceptFileDescriptors);
    EXPECT_EQ(unit.options.maxConnections, 5u);
    EXPECT_EQ(unit.options.maxConnectionsPerSource, 2u);
    EXPECT_EQ(unit.options.service, "other.service");

    SocketUnit accepting = parseValid("[Socket]\nListenStream=/run/a.sock\nAccept=yes\n");
    EXPECT_TRUE(accepting.options.accept);
}

TEST(UnitFileParser, ParsesBooleansLikeSystemd) {
    for (std::string_view yes : {"1", "yes", "y", "true", "t", "on", "YES", "True", "ON", "Y", "T"}) {
        auto value = parseBoolean(yes);
        ASSERT_TRUE(value.has_value()) << yes;
        EXPECT_TRUE(*value) << yes;
    }
    for (std::string_view no : {"0", "no", "n", "false", "f", "off", "NO", "False", "Off", "N", "F"}) {
        auto value = parseBoolean(no);
        ASSERT_TRUE(value.has_value()) << no;
        EXPECT_FALSE(*value) << no;
    }
    for (std::string_view bad : {"", "maybe", "2", "yess", "of", "enable", " yes"})
        EXPECT_FALSE(parseBoolean(bad).has_value()) << "'" << bad << "'";

    SocketUnit unit = parseValid("[Socket]\nListenStream=/run/a.sock\nPassPIDFD=On\nPassCredentials=TRUE\n"
                                 "AcceptFileDescriptors=f\n");
    EXPECT_TRUE(unit.options.passPidfd);
    EXPECT_TRUE(unit.options.passCredentials);
    EXPECT_FALSE(unit.options.acceptFileDescriptors);
}

TEST(UnitFileParser, RejectsInvalidBooleanNamingTheLine) {
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nPassPIDFD=maybe\n"),
              "x.socket:3: invalid boolean 'maybe' for PassPIDFD=");
    EXPECT_EQ(parseError("[Socket]\nAccept=\nListenStream=/run/a.sock\n"),
              "x.socket:2: invalid boolean '' for Accept=");
}

TEST(UnitFileParser, RejectsInvalidModesAndNumbersNamingTheLine) {
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\n\nSocketMode=0999\n"),
                HasSubstr("x.socket:4: invalid mode '0999' for SocketMode="));
    EXPECT_THAT(parseError("[Socket]\nDirectoryMode=rwx\nListenStream=/run/a.sock\n"),
                HasSubstr("x.socket:2: invalid mode 'rwx' for DirectoryMode="));
    EXPECT_THAT(parseError("[Socket]\nSocketMode=17777\nListenStream=/run/a.sock\n"),
                HasSubstr("x.socket:2: invalid mode '17777' for SocketMode="));
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nMaxConnections=lots\n"),
              "x.socket:3: invalid number 'lots' for MaxConnections=");
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nMaxConnectionsPerSource=-1\n"),
              "x.socket:3: invalid number '-1' for MaxConnectionsPerSource=");
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nMaxConnections=99999999999\n"),
              "x.socket:3: invalid number '99999999999' for MaxConnections=");
    EXPECT_EQ(parseValid("[Socket]\nListenStream=/run/a.sock\nSocketMode=660\n").options.socketMode, 0660u);
}

TEST(UnitFileParser, UnknownSettingNamesFileAndLine) {
    EXPECT_EQ(
        parseError("# comment\n[Unit]\nDescription=x\n\n[Socket]\nListenStream=/run/a.sock\nPassPidfd=yes\n"),
        "x.socket:7: unknown setting 'PassPidfd' in [Socket]");
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\n\nPassPidfd=yes\n", "/etc/units/y.socket"),
              "/etc/units/y.socket:4: unknown setting 'PassPidfd' in [Socket]");
}

TEST(UnitFileParser, UnsupportedSystemdSettingIsAnErrorOfItsOwn) {
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nPassSecurity=yes\n"),
              "x.socket:3: setting 'PassSecurity' in [Socket] is not supported by svckit activate");
    EXPECT_THAT(parseError("[Socket]\nListenDatagram=/run/a.sock\n"),
                HasSubstr("x.socket:2: setting 'ListenDatagram'"));
}

TEST(UnitFileParser, AcceptsHarmlessSettingsWithANote) {
    SocketUnit unit = parseValid("[Socket]\nListenStream=/run/a.sock\nBacklog=10\nSocketUser=nobody\n"
                                 "SocketGroup=nogroup\nRemoveOnStop=yes\nSymlinks=/run/b.sock\nX-Custom=1\n");
    ASSERT_THAT(unit.notes, SizeIs(5));
    EXPECT_THAT(unit.notes[0], HasSubstr("x.socket:3: Backlog="));
    EXPECT_THAT(unit.notes[4], HasSubstr("x.socket:7: Symlinks="));
}

TEST(UnitFileParser, JoinsContinuationLines) {
    SocketUnit unit =
        parseValid("[Socket]\nListenStream=\\\n/run/a.sock\nPassCredentials=\\\n  yes\n"
                   "FileDescriptorName=a\\\n# a comment inside the continued line\n; another\nb\n");
    ASSERT_THAT(unit.listeners, SizeIs(1));
    EXPECT_EQ(unit.listeners[0].address, "/run/a.sock"); // "ListenStream= /run/a.sock", trimmed
    EXPECT_EQ(unit.listeners[0].line, 2u);               // where the assignment starts
    EXPECT_TRUE(unit.options.passCredentials);
    EXPECT_EQ(unit.options.fileDescriptorName,
              "a b"); // the backslash became a space; the comments are skipped
}

TEST(UnitFileParser, ContinuationJoinsWithASpace) {
    // The backslash is replaced by a space, so a key split in the middle is no longer the same key.
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nPassPI\\\nDFD=yes\n"),
              "x.socket:3: unknown setting 'PassPI DFD' in [Socket]");
}

TEST(UnitFileParser, ContinuationErrorsNameTheFirstLine) {
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nPassCredentials=\\\nmaybe\n"),
              "x.socket:3: invalid boolean 'maybe' for PassCredentials=");
    // A continuation still open at the end of the file is applied too.
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nPassPIDFD=maybe \\"),
              "x.socket:3: invalid boolean 'maybe' for PassPIDFD=");
}

TEST(UnitFileParser, EscapedTrailingBackslashDoesNotContinue) {
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nFileDescriptorName=a\\\\\nPassPidfd=1\n"),
              "x.socket:4: unknown setting 'PassPidfd' in [Socket]");
}

TEST(UnitFileParser, TrimsWhitespaceAndSkipsCommentsAndBlankLines) {
    SocketUnit unit = parseValid("\xEF\xBB\xBF# leading comment\n; another\n\n  [Socket]  \n"
                                 "   ListenStream   =   /run/a.sock   \r\n\t# indented comment\n"
                                 "PassCredentials\t=\tyes\n\n");
    ASSERT_THAT(unit.listeners, SizeIs(1));
    EXPECT_EQ(unit.listeners[0].address, "/run/a.sock");
    EXPECT_EQ(unit.listeners[0].line, 5u);
    EXPECT_TRUE(unit.options.passCredentials);
}

TEST(UnitFileParser, RepeatedKeysAppendListenersInOrderAndOverrideScalars) {
    SocketUnit unit = parseValid("[Socket]\nListenStream=/run/1.sock\nListenSequentialPacket=/run/2.sock\n"
                                 "ListenStream=@3\nPassCredentials=yes\nPassCredentials=no\nSocketMode=0600\n"
                                 "SocketMode=0640\n");
    std::vector<std::string> addresses;
    for (const SocketListener& listener : unit.listeners)
        addresses.push_back(listener.address);
    EXPECT_THAT(addresses, ElementsAre("/run/1.sock", "/run/2.sock", "@3"));
    EXPECT_EQ(unit.listeners[1].type, SocketType::SeqPacket);
    EXPECT_FALSE(unit.options.passCredentials);
    EXPECT_EQ(unit.options.socketMode, 0640u);
}

TEST(UnitFileParser, EmptyListenResetsTheWholeList) {
    SocketUnit unit = parseValid("[Socket]\nListenStream=/run/1.sock\nListenSequentialPacket=/run/2.sock\n"
                                 "ListenStream=\nListenSequentialPacket=/run/3.sock\n");
    ASSERT_THAT(unit.listeners, SizeIs(1));
    EXPECT_EQ(unit.listeners[0].address, "/run/3.sock");
    EXPECT_EQ(unit.listeners[0].type, SocketType::SeqPacket);

    SocketUnit reset = parseValid("[Socket]\nListenStream=/run/1.sock\nListenSequentialPacket=\n"
                                  "ListenStream=/run/4.sock\n");
    ASSERT_THAT(reset.listeners, SizeIs(1));
    EXPECT_EQ(reset.listeners[0].address, "/run/4.sock");

    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/1.sock\nListenStream=\n"),
                HasSubstr("no ListenStream= or ListenSequentialPacket="));
}

TEST(UnitFileParser, ValidatesListenAddresses) {
    EXPECT_THAT(parseError("[Socket]\nListenStream=run/a.sock\n"),
                HasSubstr("x.socket:2: 'run/a.sock' is not an"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=8080\n"), HasSubstr("x.socket:2: '8080' is not an"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=@\n"),
                HasSubstr("x.socket:2: an abstract socket name needs"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=/" + std::string(107, 'a') + "\n"),
                HasSubstr("x.socket:2: socket path"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=@" + std::string(108, 'a') + "\n"),
                HasSubstr("x.socket:2: abstract socket name"));
    // The longest ones that fit sockaddr_un.
    EXPECT_THAT(parseValid("[Socket]\nListenStream=/" + std::string(106, 'a') + "\n").listeners, SizeIs(1));
    EXPECT_THAT(parseValid("[Socket]\nListenStream=@" + std::string(107, 'a') + "\n").listeners, SizeIs(1));
    EXPECT_EQ(parseValid("[Socket]\nListenStream=//run///a.sock\n").listeners.at(0).address, "/run/a.sock");
}

TEST(UnitFileParser, FileDescriptorNameDefaultsAndValidation) {
    // systemd.socket(5): the unit name including ".socket" with Accept=no, "connection" with Accept=yes.
    EXPECT_EQ(parseValid("[Socket]\nListenStream=/run/a.sock\n", "/etc/foo.socket").fdName(), "foo.socket");
    EXPECT_EQ(parseValid("[Socket]\nListenStream=/run/a.sock\nAccept=yes\n", "foo.socket").fdName(),
              "connection");
    EXPECT_EQ(
        parseValid("[Socket]\nListenStream=/run/a.sock\nAccept=yes\nFileDescriptorName=conn\n").fdName(),
        "conn");
    // An empty assignment returns to the default.
    EXPECT_EQ(parseValid("[Socket]\nListenStream=/run/a.sock\nFileDescriptorName=a\nFileDescriptorName=\n")
                  .fdName(),
              "x.socket");

    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\nFileDescriptorName=a:b\n"),
              "x.socket:3: invalid file descriptor name 'a:b' for FileDescriptorName= (printable ASCII "
              "without ':')");
    EXPECT_THAT(parseError("[Socket]\nFileDescriptorName=a\tb\nListenStream=/run/a.sock\n"),
                HasSubstr("x.socket:2: invalid file descriptor name"));
    EXPECT_THAT(
        parseError("[Socket]\nListenStream=/run/a.sock\nFileDescriptorName=" + std::string(256, 'n') + "\n"),
        HasSubstr("x.socket:3: file descriptor name is longer than 255"));
    EXPECT_EQ(
        parseValid("[Socket]\nListenStream=/run/a.sock\nFileDescriptorName=" + std::string(255, 'n') + "\n")
            .fdName(),
        std::string(255, 'n'));
}

TEST(UnitFileParser, ExpandsSpecifiers) {
    SocketUnit unit =
        parseValid("[Socket]\nListenStream=%t/%p/%i.sock\nListenStream=@%N\nFileDescriptorName=%n-100%%\n",
                   "/units/foo@bar.socket", ParseOptions{.runtimeDirectory = "/run/user/1000"});
    ASSERT_THAT(unit.listeners, SizeIs(2));
    EXPECT_EQ(unit.listeners[0].address, "/run/user/1000/foo/bar.sock");
    EXPECT_EQ(unit.listeners[1].address, "@foo@bar");
    EXPECT_EQ(unit.fdName(), "foo@bar.socket-100%");
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/%u.sock\n"),
                HasSubstr("x.socket:2: unsupported specifier '%u' in ListenStream="));
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\nFileDescriptorName=a%\n"),
                HasSubstr("x.socket:3: trailing '%'"));
}

TEST(UnitFileParser, SectionsAndStructure) {
    // [Unit] and [Install] are not checked; X- sections and X- keys are extensions and ignored.
    SocketUnit unit =
        parseValid("[Unit]\nDescription=d\nWhatever=1\nRequires=a.service\n[X-Mine]\nAnything=1\n"
                   "[Socket]\nListenStream=/run/a.sock\nX-Note=1\n[Install]\nWantedBy=sockets.target\n");
    EXPECT_THAT(unit.listeners, SizeIs(1));
    EXPECT_EQ(parseError("[Socket]\nListenStream=/run/a.sock\n[Service]\nExecStart=/bin/true\n"),
              "x.socket:3: unknown section '[Service]' (a socket unit has [Unit], [Socket] and [Install])");
    EXPECT_EQ(parseError("ListenStream=/run/a.sock\n[Socket]\n"),
              "x.socket:1: 'ListenStream=' is outside of any section");
    EXPECT_EQ(parseError("[Socket]\nListenStream /run/a.sock\n"),
              "x.socket:2: missing '=' in 'ListenStream /run/a.sock'");
    EXPECT_THAT(parseError("[Socket\nListenStream=/run/a.sock\n"),
                HasSubstr("x.socket:1: invalid section header"));
    EXPECT_THAT(parseError("[Socket]\n=yes\n"), HasSubstr("x.socket:2: missing setting name"));
}

TEST(UnitFileParser, RefusesUnitsSystemdRefuses) {
    EXPECT_EQ(parseError("[Unit]\nDescription=no listeners\n"),
              "x.socket: no ListenStream= or ListenSequentialPacket= in [Socket]");
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\nAccept=yes\nService=a.service\n"),
                HasSubstr("Service= cannot be combined with Accept=yes"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\nAccept=yes\nMaxConnections=0\n"),
                HasSubstr("MaxConnections=0"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\nService=a.socket\n"),
                HasSubstr("x.socket:3: invalid service name 'a.socket'"));
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\n", "x.service"),
                HasSubstr("must end in \".socket\""));
    EXPECT_THAT(parseError("[Socket]\nListenStream=/run/a.sock\n", "foo@.socket"), HasSubstr("template"));
}

TEST(UnitFileParser, ConvertsListenersToSocketSpecs) {
    SocketUnit unit = parseValid(R"([Socket]
ListenStream=/run/a.sock
ListenSequentialPacket=@b
FileDescriptorName=varlink
SocketMode=0600
PassCredentials=yes
PassPIDFD=yes
AcceptFileDescriptors=no
MaxConnections=7
MaxConnectionsPerSource=3
)");
    std::vector<SocketSpec> specs = unit.socketSpecs();
    ASSERT_THAT(specs, SizeIs(2));
    EXPECT_EQ(specs[0].name, "varlink");
    EXPECT_EQ(specs[0].address, "/run/a.sock");
    EXPECT_EQ(specs[0].type, SocketType::Stream);
    EXPECT_FALSE(specs[0].accept);
    EXPECT_TRUE(specs[0].passCredentials);
    EXPECT_TRUE(specs[0].passPidfd);
    EXPECT_FALSE(specs[0].acceptFileDescriptors);
    EXPECT_EQ(specs[0].mode, 0600u);
    EXPECT_EQ(specs[0].limits.maxConnections, 7u);
    EXPECT_EQ(specs[0].limits.maxConnectionsPerUid, 3u);
    EXPECT_EQ(specs[1].address, "@b");
    EXPECT_EQ(specs[1].type, SocketType::SeqPacket);
    EXPECT_EQ(specs[1].name, "varlink");

    // The defaults of systemd, not those of SocketSpec, reach the spec.
    SocketSpec plain =
        parseValid("[Socket]\nListenStream=/run/p.sock\nAccept=yes\n", "p.socket").socketSpecs().at(0);
    EXPECT_EQ(plain.name, "connection");
    EXPECT_TRUE(plain.accept);
    EXPECT_FALSE(plain.passPidfd);
    EXPECT_TRUE(plain.acceptFileDescriptors);
    EXPECT_EQ(plain.mode, 0666u);
}

TEST(UnitFileParser, LoadsFilesAndNamesMissingOnes) {
    char dir[] = "/tmp/unit-file-parser-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string path = std::string(dir) + "/loaded.socket";
    std::ofstream(path) << "[Socket]\nListenStream=/run/loaded.sock\nBogus=1\n";
    auto unit = loadSocketUnit(path);
    ASSERT_FALSE(unit.has_value());
    EXPECT_EQ(unit.error().message(), path + ":3: unknown setting 'Bogus' in [Socket]");

    std::ofstream(path) << "[Socket]\nListenStream=/run/loaded.sock\n";
    auto loaded = loadSocketUnit(path);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
    EXPECT_EQ(loaded->name, "loaded.socket");

    auto missing = loadSocketUnit(std::string(dir) + "/missing.socket");
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code(), ENOENT);
    EXPECT_THAT(missing.error().message(), HasSubstr("missing.socket"));
    std::filesystem::remove_all(dir);
}

// Units like the example service's: a varlink stream socket, a seqpacket one, and an Accept=yes one.
TEST(UnitFileParser, ParsesUnitsLikeTheExampleService) {
    SocketUnit stream = parseValid(R"([Unit]
Description=svckit example: caller identity over varlink

[Socket]
ListenStream=/run/svckit-example-identity/varlink.sock
FileDescriptorName=varlink
SocketMode=0666
DirectoryMode=0755
PassCredentials=yes
PassPIDFD=yes
AcceptFileDescriptors=no
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
)",
                                   "svckit-example-identity.socket");
    EXPECT_EQ(stream.fdName(), "varlink");
    EXPECT_THAT(stream.notes, SizeIs(1));

    SocketUnit accepting =
        parseValid("[Socket]\nListenStream=/run/svckit-example-identity/accept.sock\nAccept=yes\n"
                   "PassPIDFD=yes\nAcceptFileDescriptors=no\nMaxConnections=16\n",
                   "svckit-example-identity-accept.socket");
    EXPECT_EQ(accepting.fdName(), "connection");
    EXPECT_EQ(accepting.options.maxConnections, 16u);
}

// The repository's own units (units/*.socket) must parse, so that `svckit activate` can run them.
TEST(UnitFileParser, ParsesTheRepositoryUnits) {
    namespace fs = std::filesystem;
    const fs::path units = fs::path(SVCKIT_TEST_SRCDIR) / "units";
    int parsed = 0;
    std::vector<std::string> placeholders;
    for (const fs::directory_entry& entry : fs::directory_iterator(units)) {
        if (entry.path().extension() != ".socket")
            continue;
        if (entry.file_size() == 0) {
            placeholders.push_back(entry.path().filename());
            continue;
        }
        auto unit = loadSocketUnit(entry.path());
        ASSERT_TRUE(unit.has_value()) << unit.error().message();
        EXPECT_THAT(unit->listeners, Not(IsEmpty())) << entry.path();
        ++parsed;
    }
    if (parsed == 0)
        GTEST_SKIP() << "units/ has no written .socket units yet (empty placeholders: " << placeholders.size()
                     << ")";
}

} // namespace
} // namespace svckit::tool
