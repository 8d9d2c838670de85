// tools/svckit/main.cpp — the `svckit` command line: dispatches to the subcommands.
#include "activate.hpp"
#include "new.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <print>
#include <span>
#include <string_view>
#include <vector>

#ifndef SVCKIT_VERSION
#define SVCKIT_VERSION "unknown"
#endif

namespace {

constexpr std::string_view kUsage =
    R"(Usage: svckit COMMAND [ARGS...]

Commands:
  activate [--socket FILE.socket]... [--] COMMAND [ARGS...]
                  run COMMAND socket-activated with the sockets of the .socket units, applying
                  their options as systemd >= 258 does (see 'svckit activate --help')
  new NAME [--varlink|--dbus|--both] [--accept] [--fds] [--dir DIR]
                  write a new service project into DIR (default ./NAME): meson.build, interface,
                  Service subclass, test, README (see 'svckit new --help')
  help [COMMAND]  show this help, or the help of COMMAND

Options:
  -h, --help      show this help
  --version       show the version
)";

// A process started with fd 0, 1 or 2 closed would hand that number to the first socket it creates, and the
// command would then find a listening socket as its stdin. systemd makes sure of the same.
void ensureStandardFds() {
    for (int fd = 0; fd <= 2; ++fd)
        if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF)
            (void)::open("/dev/null", O_RDWR); // takes the lowest free number: this one
}

int usageError(std::string_view command, std::string_view message, std::string_view usage) {
    std::print(stderr, "{}: {}\n\n{}", command, message, usage);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    ensureStandardFds();
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.empty())
        return usageError("svckit", "no command given", kUsage);

    const std::string_view command = args.front();
    if (command == "help" || command == "--help" || command == "-h") {
        if (command == "help" && args.size() > 1 && args[1] == "activate")
            std::print("{}", svckit::tool::activateUsage());
        else if (command == "help" && args.size() > 1 && args[1] == "new")
            std::print("{}", svckit::tool::newUsage());
        else
            std::print("{}", kUsage);
        return 0;
    }
    if (command == "--version") {
        std::println("svckit {}", SVCKIT_VERSION);
        return 0;
    }
    if (command == "activate") {
        auto request = svckit::tool::parseActivateArguments(std::span(args).subspan(1));
        if (!request)
            return usageError("svckit activate", request.error().message(), svckit::tool::activateUsage());
        if (request->help) {
            std::print("{}", svckit::tool::activateUsage());
            return 0;
        }
        return svckit::tool::runActivate(request->options);
    }
    if (command == "new") {
        auto request = svckit::tool::parseNewArguments(std::span(args).subspan(1));
        if (!request)
            return usageError("svckit new", request.error().message(), svckit::tool::newUsage());
        if (request->help) {
            std::print("{}", svckit::tool::newUsage());
            return 0;
        }
        return svckit::tool::runNew(request->options);
    }
    return usageError("svckit", std::format("unknown command '{}'", command), kUsage);
}
