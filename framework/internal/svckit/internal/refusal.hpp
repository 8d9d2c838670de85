// svckit/internal/refusal.hpp — a service's refusals to start, worded for the administrator who must act on
// them and sent to the journal with structured fields. Never installed.
//
// A socket verification refusal names the running systemd's version (asked from the manager, on the refusal
// path only), the unit to change and how: `systemctl edit NAME.socket` where systemd can set the missing
// option
// (>= 258), or else the repair mode chosen from a drop-in (`Environment=SVCKIT_VERIFY=repair` in the
// .service). Under systemd (stderr is the journal's stream) each refusal goes to the journal through
// sd_journal_send() with a fixed MESSAGE_ID per kind and SVCKIT_* fields (the catalog in docs/service.md),
// otherwise to stderr.
#pragma once

#include <svckit/error.hpp>
#include <svckit/service.hpp>
#include <svckit/socket_options.hpp>

#include <svckit/internal/activation.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::internal {

// Each kind has a fixed 128-bit MESSAGE_ID (journalctl MESSAGE_ID=...).
enum class RefusalKind {
    SocketVerification, // the activated sockets do not match the spec
    Declaration,        // the service's own declaration is inconsistent (a programming error)
    Environment,        // an invalid value in the environment the service was started with (SVCKIT_VERIFY=)
};
[[nodiscard]] std::string_view messageId(RefusalKind kind) noexcept;

// $SVCKIT_VERIFY: "strict" or "repair"; nullopt when unset or empty; EINVAL naming the valid values
// otherwise.
[[nodiscard]] Result<std::optional<VerifyMode>> verifyModeFromEnvironment(const char* value);

// The leading number of the manager's Version property ("262.1-1", "257.9-1~deb13u1", "258~rc3").
[[nodiscard]] std::optional<unsigned> parseSystemdVersion(std::string_view version) noexcept;
// Asks the service manager: io.systemd.Manager.Describe on /run/systemd/io.systemd.Manager (varlink, which any
// sandboxed service reaches), else org.freedesktop.systemd1.Manager.Version on the system bus; waiting at most
// `timeout` for each answer.
[[nodiscard]] Result<unsigned> runningSystemdVersion(std::chrono::milliseconds timeout);

// The .socket unit that passes socket `socket` of `spec`, named as generateUnits() names it.
[[nodiscard]] std::string socketUnitName(const ServiceSpec& spec, const SocketSpec& socket);
// The .service unit to give a drop-in: the unit this process runs in when systemd says so (an instance
// "a-b@x.service" becomes its template "a-b@.service"), else NAME.service of the spec.
[[nodiscard]] std::string serviceUnitName(const ServiceSpec& spec);

// What to tell the administrator about one .socket unit.
struct SocketRepair {
    std::string socket{};                // the SocketSpec's name
    std::string socketUnit{};            // "svckit-example-peercred.socket"
    std::vector<std::string> settings{}; // for its [Socket] section: "PassPIDFD=yes"
    bool needsSystemd258 = false;        // one of them is unknown to systemd < 258
};

struct RepairAdvice {
    std::optional<unsigned> systemdVersion{}; // the running manager's; nullopt: unknown
    std::string versionUnknownReason{};  // why it is unknown ("Failed to connect to the system bus: ...")
    std::string serviceUnit{};           // where Environment=SVCKIT_VERIFY=repair goes
    std::vector<SocketRepair> sockets{}; // only sockets with settings to add
    bool repairModeFixesAll = false;     // every mismatch is an option repair mode sets
};

// The settings each socket of `problems` needs (none for family, type, address, mode: their lines name them).
[[nodiscard]] RepairAdvice adviceFor(const ServiceSpec& spec, std::span<const ActivationProblem> problems);
// The paragraph that follows the mismatches in a refusal: pure, so each systemd version's text is testable.
[[nodiscard]] std::string describeRepair(const RepairAdvice& advice);

// A refusal as the journal receives it: its kind, the whole message, and "SVCKIT_X=value" fields (a field may
// repeat).
struct Refusal {
    RefusalKind kind;
    Error error;
    std::vector<std::string> fields{};
};

// The refusal of a socket verification: the mismatches, then what to do (asking the manager's version when a
// setting needs systemd >= 258), with SVCKIT_SOCKET=, SVCKIT_UNIT=, SVCKIT_SERVICE_UNIT=, SVCKIT_FIX= and
// SVCKIT_SYSTEMD_VERSION= fields.
[[nodiscard]] Refusal verificationRefusal(const ServiceSpec& spec,
                                          std::span<const ActivationProblem> problems);

// Service::run() records the refusal it returns as an Error; runMain() takes it to log it with its fields.
void recordRefusal(Refusal refusal);
[[nodiscard]] std::optional<Refusal> takeRefusal();

// The journal's fields for `refusal`: MESSAGE=, MESSAGE_ID=, PRIORITY=3, ERRNO=, SYSLOG_IDENTIFIER=, then its
// own.
[[nodiscard]] std::vector<std::string> journalFields(const Refusal& refusal, std::string_view identifier);
// Logs a refusal: to the journal with its fields when stderr is the journal's stream (then not to stderr, so
// it is not there twice), else as an error line on stderr.
void logRefusal(const Refusal& refusal);

} // namespace svckit::internal
