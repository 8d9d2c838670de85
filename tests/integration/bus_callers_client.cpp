// A client for tests/integration/bus_mode_private_daemon.sh: two senders at once, so that an identity kept
// for one (the bus endpoint caches them per unique name) could be handed to the other. The parent connects
// and calls Whoami (its identity is now known to the service), then, with that connection still open, a
// child process calls Whoami on a connection of its own, then the parent calls again. Each line printed:
//   parent|child|parent-again PID REPORTED_PID PINNED
//   bus_callers_client BUS_NAME OBJECT_PATH INTERFACE
#include <systemd/sd-bus.h>

#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>

namespace {

int whoami(const char* who, char** argv) {
    sd_bus* bus = nullptr;
    int r = sd_bus_open_system(&bus);
    if (r < 0) {
        std::fprintf(stderr, "%s: connect: %d\n", who, r);
        return 1;
    }
    auto call = [&](const char* label) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message* reply = nullptr;
        int c = sd_bus_call_method(bus, argv[1], argv[2], argv[3], "Whoami", &error, &reply, "");
        if (c < 0) {
            std::fprintf(stderr, "%s: Whoami: %s\n", label, error.message ? error.message : "failed");
            sd_bus_error_free(&error);
            return false;
        }
        uint32_t uid = 0;
        int32_t pid = 0;
        int pinned = 0;
        const char* cgroup = nullptr;
        const char* comm = nullptr;
        c = sd_bus_message_read(reply, "uibss", &uid, &pid, &pinned, &cgroup, &comm);
        if (c >= 0)
            std::printf("%s %d %d %s\n", label, static_cast<int>(::getpid()), pid, pinned ? "true" : "false");
        std::fflush(stdout);
        sd_bus_message_unref(reply);
        return c >= 0;
    };
    bool ok = call(who);
    if (ok && who[0] == 'p') { // the parent: a child calls while this connection stays open
        pid_t child = ::fork();
        if (child == 0)
            ::_exit(whoami("child", argv));
        int status = 0;
        ::waitpid(child, &status, 0);
        ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && call("parent-again");
    }
    sd_bus_flush_close_unref(bus);
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s BUS_NAME OBJECT_PATH INTERFACE\n", argv[0]);
        return 2;
    }
    return whoami("parent", argv);
}
