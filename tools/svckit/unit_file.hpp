// tools/svckit/unit_file.hpp — reading systemd .socket unit files, for `svckit activate` and its tests.
//
// The parser follows systemd.syntax(7) (sections, comments, continuation lines, repeated keys, empty
// assignments that reset lists) and understands the AF_UNIX subset of systemd.socket(5) that svckit services
// use. Anything else in [Socket] is an error that names the file and line: a harness that silently skipped a
// setting would run something other than what systemd would run. A few settings that cannot change what a
// service is handed (Backlog=, SocketUser=, ...) are accepted and reported as notes.
#pragma once

#include <svckit/error.hpp>
#include <svckit/socket_spec.hpp>

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace svckit::tool {

// One ListenStream= or ListenSequentialPacket= entry.
struct SocketListener {
    std::string address{}; // a filesystem path ("/run/foo.sock") or an abstract name ("@foo")
    SocketType type = SocketType::Stream;
    unsigned line = 0; // where it was declared, for messages
};

// The [Socket] settings svckit understands, with the defaults of systemd.socket(5).
struct SocketUnitOptions {
    bool accept = false;                  // Accept=
    std::string fileDescriptorName{};     // FileDescriptorName=; empty: the default, see SocketUnit::fdName()
    mode_t socketMode = 0666;             // SocketMode=
    mode_t directoryMode = 0755;          // DirectoryMode=
    bool passCredentials = false;         // PassCredentials= (SO_PASSCRED)
    bool passPidfd = false;               // PassPIDFD= (SO_PASSPIDFD, systemd >= 258)
    bool acceptFileDescriptors = true;    // AcceptFileDescriptors= (SO_PASSRIGHTS, systemd >= 258)
    unsigned maxConnections = 64;         // MaxConnections= (Accept=yes only)
    unsigned maxConnectionsPerSource = 0; // MaxConnectionsPerSource= (per UID for AF_UNIX); 0 = no limit
    std::string service{};                // Service=; empty: the service named like the socket
};

struct SocketUnit {
    std::string fileName{}; // the file as it was named to the parser, for messages
    std::string name{};     // the unit name, "foo.socket"
    std::vector<SocketListener> listeners{};
    SocketUnitOptions options{};
    // Settings that were accepted but are not applied, one message each ("x.socket:4: Backlog= ...").
    std::vector<std::string> notes{};

    // The name passed in LISTEN_FDNAMES: FileDescriptorName=, or by default (as systemd.socket(5) says) the
    // unit name including its ".socket" suffix with Accept=no, and "connection" with Accept=yes.
    [[nodiscard]] std::string fdName() const;
    // What the service is promised for one listener: the address and type of the listener with this unit's
    // name and options.
    [[nodiscard]] SocketSpec toSocketSpec(const SocketListener& listener) const;
    [[nodiscard]] std::vector<SocketSpec> socketSpecs() const;
};

struct ParseOptions {
    std::string runtimeDirectory = "/run"; // what the %t specifier expands to
};

// A boolean as systemd parses it: 1/yes/y/true/t/on and 0/no/n/false/f/off, in any case.
[[nodiscard]] Result<bool> parseBoolean(std::string_view text);

// Parses the text of a .socket unit. fileName names the unit (its last path component must end in ".socket")
// and prefixes every error message: "x.socket:7: unknown setting 'PassPidfd' in [Socket]".
[[nodiscard]] Result<SocketUnit> parseSocketUnit(std::string_view text, std::string_view fileName,
                                                 const ParseOptions& options = {});

// Reads and parses the unit file at path.
[[nodiscard]] Result<SocketUnit> loadSocketUnit(const std::string& path, const ParseOptions& options = {});

} // namespace svckit::tool
