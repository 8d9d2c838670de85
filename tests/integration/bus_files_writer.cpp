// Writes the files of a bus-mode ServiceSpec that uses every kind of BusAccess rule (anyone, a user, a group,
// an interface, a deny) into a directory, as --print-units=DIR does: tests/integration/bus_files_check.sh has
// dbus-daemon and systemd-analyze check them. Its ExecStart= is this program, so the unit names a binary that
// exists (systemd-analyze verify refuses one that does not).
//   bus_files_writer DIR
#include <svckit/service.hpp>

#include <climits>
#include <cstdio>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char self[PATH_MAX] = {};
    if (::readlink("/proc/self/exe", self, sizeof self - 1) < 0) {
        std::perror("readlink /proc/self/exe");
        return 1;
    }
    svckit::ServiceSpec spec{
        .name = "svckit-test-bus-files",
        .description = "svckit bus files check",
        .version = "1",
        .executable = self,
        .sockets = {{.name = "dbus",
                     .address = "/run/svckit-test-bus-files.sock",
                     .protocol = svckit::Protocol::DBus}},
        .bus = {.name = "org.svckit.test.BusFiles1",
                .access = {{},
                           {.interface = "org.svckit.test.BusFiles1.Admin", .allow = false},
                           {.interface = "org.svckit.test.BusFiles1.Admin", .group = "adm"},
                           {.interface = "org.svckit.test.BusFiles1.Debug", .user = "nobody"},
                           {.user = "daemon", .allow = false}}},
    };
    if (auto ok = svckit::writeUnits(spec, argv[1]); !ok) {
        std::fprintf(stderr, "%s\n", ok.error().message().c_str());
        return 1;
    }
    return 0;
}
