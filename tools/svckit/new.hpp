// tools/svckit/new.hpp — `svckit new NAME`: writes a buildable service project outside svckit's tree
// (meson.build finding svckit through pkg-config, a documented interface, a Service subclass with one method
// that uses the caller's identity, a GoogleTest test over a real socket, a README), and the checks of the
// names it is given.
//
// The project's files are rendered from the templates under tools/svckit/templates/, embedded in the binary
// at build time (scaffold_templates.hpp, made by embed_templates.py): the output depends on the arguments
// only, byte for byte. Nothing is written unless every name is valid and the target directory is missing or
// empty.
#pragma once

#include <svckit/error.hpp>

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace svckit::tool {

// --- names (each error message names the rule that failed)

// NAME: the prefix of the service's unit names and its binary's name. A valid systemd unit name prefix of
// letters, digits and "_.-" (':', valid in unit names, is not in meson project names), starting with a letter
// (a C++ class name is derived from it), at most kMaxServiceName characters (its longest socket path,
// /run/NAME-dbus.sock, must fit in sun_path), not ending in ".service" or ".socket".
inline constexpr size_t kMaxServiceName = 92;
[[nodiscard]] Result<void> checkServiceName(std::string_view name);
// A varlink interface name (varlink.org, UAPI.20): reverse-domain, at least two dot-separated labels of
// letters, digits and '-', no label empty or starting or ending with '-', the first starting with a letter.
[[nodiscard]] Result<void> checkVarlinkInterfaceName(std::string_view name);
// A D-Bus well-known bus name (D-Bus specification): at most 255 characters, at least two dot-separated
// elements of [A-Za-z0-9_-], none empty or starting with a digit.
[[nodiscard]] Result<void> checkBusName(std::string_view name);
// A D-Bus interface name: as a bus name, without '-'.
[[nodiscard]] Result<void> checkDBusInterfaceName(std::string_view name);
// A D-Bus object path: '/', or '/'-separated non-empty elements of [A-Za-z0-9_], no trailing '/'.
[[nodiscard]] Result<void> checkObjectPath(std::string_view path);

// "my-greeter" -> "MyGreeter": the name's runs of letters and digits, each with its first letter upper-cased.
[[nodiscard]] std::string classNameOf(std::string_view serviceName);

// --- the command

enum class Protocols { Varlink, DBus, Both };

struct NewOptions {
    std::string name;
    Protocols protocols = Protocols::Varlink;
    bool accept = false;      // Accept=yes: one service process per connection
    bool fds = false;         // the sockets accept fds (AcceptFileDescriptors=yes), with a method taking one
    std::string directory{};  // --dir; default ./NAME
    std::string interface {}; // --interface; default org.example.<Class>
    std::string busName{};    // --bus-name; default the varlink interface name with "1" appended
    std::string objectPath{}; // --object-path; default the bus name with '.' as '/'
};

// The usage text of `svckit new`.
[[nodiscard]] std::string_view newUsage() noexcept;

struct NewRequest {
    bool help = false;
    NewOptions options;
};

// Parses the arguments after "new". Errors are usage errors (the caller prints the usage and exits 2).
[[nodiscard]] Result<NewRequest> parseNewArguments(std::span<const std::string_view> args);

// One file of the project: its path relative to the project's directory, and its contents.
struct ProjectFile {
    std::string path;
    std::string text;
};

// Checks the names (deriving those not given) and renders the project's files, in a fixed order.
[[nodiscard]] Result<std::vector<ProjectFile>> renderProject(const NewOptions& options);

// Writes the files under `directory`, which must not exist or be an empty directory; refuses (writing
// nothing) otherwise.
[[nodiscard]] Result<void> writeProject(const std::string& directory, const std::vector<ProjectFile>& files);

// Runs `svckit new` and returns the exit status: 0, or 1 with the error on stderr.
[[nodiscard]] int runNew(const NewOptions& options);

// The template language of tools/svckit/templates/, exposed for tests: `{{value}}` is replaced by
// values[value];
// `{{#if flag}}`, `{{#if !flag}}`, `{{#else}}` and `{{#end}}` keep or drop what they enclose (and nest); a
// directive alone on its line takes the line with it. An unknown name or an unbalanced directive is an error.
[[nodiscard]] Result<std::string>
renderTemplate(std::string_view name, std::string_view text,
               const std::map<std::string, std::string, std::less<>>& values,
               const std::map<std::string, bool, std::less<>>& flags);

} // namespace svckit::tool
