// Refusals to start, as the administrator reads them: a socket verification refusal names the running
// systemd's version, the unit to change and how (systemctl edit of the .socket with systemd >= 258, the
// repair mode from a .service drop-in below), $SVCKIT_VERIFY is read strictly, and each refusal kind has its
// MESSAGE_ID.
#include <svckit/internal/refusal.hpp>

#include <svckit/service.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace svckit::internal {
namespace {

// The identity example's stream socket lacking PassPIDFD=yes, as adviceFor() describes it.
RepairAdvice missingPidfd(std::optional<unsigned> version) {
    return {.systemdVersion = version,
            .versionUnknownReason =
                version ? "" : "Failed to connect to the system bus: No such file or directory",
            .serviceUnit = "svckit-example-peercred.service",
            .sockets = {{.socket = "identity",
                         .socketUnit = "svckit-example-peercred.socket",
                         .settings = {"PassPIDFD=yes"},
                         .needsSystemd258 = true}},
            .repairModeFixesAll = true};
}

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

TEST(RefusalText, OnSystemd257NamesTheVersionAndTheRepairModeDropIn) {
    EXPECT_EQ(
        describeRepair(missingPidfd(257)),
        "The running systemd is version 257, which cannot set PassPIDFD= (systemd >= 258 can), so no unit "
        "setting fixes this here. Update systemd, or let the service set the options itself: run "
        "'systemctl edit svckit-example-peercred.service' and add\n"
        "[Service]\n"
        "Environment=SVCKIT_VERIFY=repair\n"
        "The service then sets the options itself with setsockopt() and logs a warning.");
}

TEST(RefusalText, OnSystemd262NamesTheVersionAndTheSocketUnitToEdit) {
    EXPECT_EQ(describeRepair(missingPidfd(262)),
              "The running systemd is version 262, which can set PassPIDFD=. To fix it, run 'systemctl edit "
              "svckit-example-peercred.socket' and add\n"
              "[Socket]\n"
              "PassPIDFD=yes\n"
              "then run 'systemctl restart svckit-example-peercred.socket'.");
}

TEST(RefusalText, WithAnUnknownVersionSaysWhyAndGivesBothRepairs) {
    std::string text = describeRepair(missingPidfd(std::nullopt));
    EXPECT_TRUE(
        text.starts_with("The running systemd's version is unknown (Failed to connect to the system bus: "
                         "No such file or directory).\n"))
        << text;
    EXPECT_TRUE(
        contains(text, "With systemd >= 258, to fix it, run 'systemctl edit svckit-example-peercred.socket' "
                       "and add\n[Socket]\nPassPIDFD=yes\n"))
        << text;
    EXPECT_TRUE(contains(text,
                         "With an older systemd, which cannot set PassPIDFD=: update it, or let the service "
                         "set the options itself: run 'systemctl edit svckit-example-peercred.service' and "
                         "add\n[Service]\nEnvironment=SVCKIT_VERIFY=repair\n"))
        << text;
}

TEST(RefusalText, SaysWhenTheRepairModeDoesNotFixEverything) {
    RepairAdvice advice = missingPidfd(257);
    advice.repairModeFixesAll = false;
    EXPECT_TRUE(contains(describeRepair(advice), "the other mismatches above still need the unit changed"));
}

TEST(RefusalText, ASettingEverySystemdKnowsNeedsNoVersion) {
    RepairAdvice advice = missingPidfd(257);
    advice.sockets[0].settings = {"PassCredentials=yes"};
    advice.sockets[0].needsSystemd258 = false;
    EXPECT_EQ(describeRepair(advice),
              "To fix it, run 'systemctl edit svckit-example-peercred.socket' and add\n"
              "[Socket]\nPassCredentials=yes\n"
              "then run 'systemctl restart svckit-example-peercred.socket'.");
}

ServiceSpec twoSockets() {
    SocketSpec stream{.name = "identity",
                      .address = "/run/x.sock",
                      .passCredentials = true,
                      .passPidfd = true,
                      .acceptFileDescriptors = false};
    SocketSpec accept = stream;
    accept.name = "identity-accept";
    accept.address = "/run/x-accept.sock";
    accept.accept = true;
    SocketSpec second = stream;
    second.name = "second";
    second.address = "/run/x-second.sock";
    return {.name = "svckit-x", .description = "x", .version = "1", .sockets = {accept, stream, second}};
}

TEST(RefusalAdvice, NamesEachSocketUnitAsTheGeneratedUnitsDo) {
    ServiceSpec spec = twoSockets();
    std::vector<std::string> generated;
    for (const UnitFile& unit : generateUnits(spec))
        generated.push_back(unit.name);
    for (const SocketSpec& socket : spec.sockets) {
        std::string name = socketUnitName(spec, socket);
        EXPECT_NE(std::ranges::find(generated, name), generated.end()) << name;
    }
    EXPECT_EQ(socketUnitName(spec, spec.sockets[1]), "svckit-x.socket");
    EXPECT_EQ(socketUnitName(spec, spec.sockets[0]), "svckit-x-identity-accept.socket");
    EXPECT_EQ(socketUnitName(spec, spec.sockets[2]), "svckit-x-second.socket");
}

TEST(RefusalAdvice, GivesTheSocketSettingOfEachOptionMismatch) {
    ServiceSpec spec = twoSockets();
    std::vector<ActivationProblem> problems{
        {.socket = "identity", .mismatch = Mismatch{Mismatch::Kind::PassPidfd, true, "a"}, .message = "a"},
        {.socket = "identity",
         .mismatch = Mismatch{Mismatch::Kind::AcceptFileDescriptors, true, "b"},
         .message = "b"},
        {.socket = "second",
         .mismatch = Mismatch{Mismatch::Kind::PassCredentials, true, "c"},
         .message = "c"},
    };
    RepairAdvice advice = adviceFor(spec, problems);
    ASSERT_EQ(advice.sockets.size(), 2u);
    EXPECT_EQ(advice.sockets[0].socketUnit, "svckit-x.socket");
    EXPECT_EQ(advice.sockets[0].settings,
              (std::vector<std::string>{"PassPIDFD=yes", "AcceptFileDescriptors=no"}));
    EXPECT_TRUE(advice.sockets[0].needsSystemd258);
    EXPECT_EQ(advice.sockets[1].settings, (std::vector<std::string>{"PassCredentials=yes"}));
    EXPECT_FALSE(advice.sockets[1].needsSystemd258);
    EXPECT_TRUE(advice.repairModeFixesAll);
    advice.systemdVersion = 257;
    EXPECT_TRUE(contains(describeRepair(advice), "cannot set PassPIDFD= and AcceptFileDescriptors="))
        << describeRepair(advice);

    problems.push_back(
        {.socket = "identity", .mismatch = Mismatch{Mismatch::Kind::Address, false, "d"}, .message = "d"});
    EXPECT_FALSE(adviceFor(spec, problems).repairModeFixesAll);
}

TEST(RefusalEnvironment, SvckitVerifyTakesStrictOrRepairAndRefusesAnythingElse) {
    EXPECT_EQ(verifyModeFromEnvironment(nullptr).value(), std::nullopt);
    EXPECT_EQ(verifyModeFromEnvironment("").value(), std::nullopt);
    EXPECT_EQ(verifyModeFromEnvironment("strict").value(), VerifyMode::Strict);
    EXPECT_EQ(verifyModeFromEnvironment("repair").value(), VerifyMode::Repair);
    auto bad = verifyModeFromEnvironment("Repair");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_TRUE(contains(bad.error().message(), "SVCKIT_VERIFY='Repair' is not a verification mode"));
}

TEST(RefusalEnvironment, ReadsTheLeadingNumberOfTheManagersVersion) {
    EXPECT_EQ(parseSystemdVersion("262.1-1"), 262u);
    EXPECT_EQ(parseSystemdVersion("257.9-1~deb13u1"), 257u);
    EXPECT_EQ(parseSystemdVersion("258~rc3"), 258u);
    EXPECT_EQ(parseSystemdVersion("v258"), std::nullopt);
    EXPECT_EQ(parseSystemdVersion(""), std::nullopt);
}

TEST(RefusalJournal, EachKindHasItsOwnMessageIdAndTheFieldsFollowIt) {
    std::vector<std::string_view> ids{messageId(RefusalKind::SocketVerification),
                                      messageId(RefusalKind::Declaration),
                                      messageId(RefusalKind::Environment)};
    for (std::string_view id : ids) {
        EXPECT_EQ(id.size(), 32u);
        EXPECT_TRUE(std::ranges::all_of(id, [](char c) {
            return std::isxdigit(static_cast<unsigned char>(c)) &&
                   !std::isupper(static_cast<unsigned char>(c));
        }));
        EXPECT_EQ(std::ranges::count(ids, id), 1);
    }
    Refusal refusal{.kind = RefusalKind::SocketVerification,
                    .error = Error(EINVAL, "Failed to verify"),
                    .fields = {"SVCKIT_UNIT=x.socket"}};
    auto fields = journalFields(refusal, "svckit-x");
    EXPECT_EQ(fields, (std::vector<std::string>{
                          "MESSAGE=Failed to verify", "MESSAGE_ID=6471a2ade41e40298996227b37d09b45",
                          "PRIORITY=3", "ERRNO=22", "SYSLOG_IDENTIFIER=svckit-x", "SVCKIT_UNIT=x.socket"}));
}

TEST(RefusalJournal, RecordedRefusalIsTakenOnce) {
    recordRefusal({.kind = RefusalKind::Environment, .error = Error(EINVAL, "x")});
    auto taken = takeRefusal();
    ASSERT_TRUE(taken);
    EXPECT_EQ(taken->kind, RefusalKind::Environment);
    EXPECT_FALSE(takeRefusal());
}

} // namespace
} // namespace svckit::internal
