/* bench/dbus/raw_server.c — org.svckit.bench.Bench1 (org.svckit.bench.Bench1.xml) on raw sd-bus, peer-to-peer.
 *
 * The baseline svckit's D-Bus endpoint is measured against (bench/dbus/run): how a C service would serve D-Bus
 * on a socket of its own with libsystemd alone. One sd-event loop; the listening socket is an sd-event io source;
 * each accepted connection becomes an sd_bus of its own (sd_bus_new, sd_bus_set_fd, sd_bus_set_server,
 * sd_bus_start) attached to the loop with sd_bus_attach_event, with the object's vtable registered on it. The
 * handshake is sd-bus's own and does not block (sd_bus_start on a server only begins it). A disconnected bus is
 * detached and freed from its org.freedesktop.DBus.Local.Disconnected callback. org.freedesktop.DBus.Hello is not
 * answered (the load generator does not send it).
 *
 * Usage: raw_server PATH   listen on the AF_UNIX socket PATH (created, mode 0666, unlinked on exit).
 * Exits 0 on SIGTERM or SIGINT.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

static sd_event *event;
static sd_id128_t server_id;

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *text;
        int r;
        (void) userdata; (void) error;

        r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", text);
}

static const sd_bus_vtable bench_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("Ping", "s", SD_BUS_PARAM(text), "s", SD_BUS_PARAM(reply), method_ping, 0),
        SD_BUS_VTABLE_END
};

/* Called with the synthesized Local.Disconnected message, from inside sd_bus_process(), which holds its own
 * reference while it runs: dropping ours here frees the bus once processing returns. */
static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        (void) userdata; (void) error;

        sd_bus_detach_event(bus);
        sd_bus_unref(bus);
        return 1;
}

static int on_accept(sd_event_source *s, int lfd, uint32_t revents, void *userdata) {
        (void) s; (void) revents; (void) userdata;

        for (;;) {
                sd_bus *bus = NULL;
                int fd, r;

                fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                fprintf(stderr, "raw_server: accept: %m\n");
                        return 0;
                }
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_fd(bus, fd, fd);
                if (r < 0) {
                        close(fd);
                        sd_bus_unref(bus);
                        continue;
                }
                /* From here the bus owns fd. */
                r = sd_bus_set_server(bus, 1, server_id);
                if (r >= 0)
                        r = sd_bus_add_object_vtable(bus, NULL, "/org/svckit/bench/Bench1", "org.svckit.bench.Bench1",
                                                     bench_vtable, NULL);
                if (r >= 0)
                        r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local",
                                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, NULL);
                if (r >= 0)
                        r = sd_bus_start(bus);
                if (r >= 0)
                        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
                if (r < 0) {
                        fprintf(stderr, "raw_server: setting up a connection: %s\n", strerror(-r));
                        sd_bus_detach_event(bus);
                        sd_bus_unref(bus);
                }
        }
}

int main(int argc, char **argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        sigset_t mask;
        int lfd, r;

        if (argc != 2 || strlen(argv[1]) >= sizeof sa.sun_path) {
                fprintf(stderr, "usage: raw_server PATH\n");
                return 2;
        }
        strcpy(sa.sun_path, argv[1]);
        (void) unlink(argv[1]);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0) {
                perror("raw_server: socket/bind/listen");
                return 1;
        }
        (void) chmod(argv[1], 0666);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_id128_randomize(&server_id);
        if (r >= 0)
                r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_io(event, NULL, lfd, EPOLLIN, on_accept, NULL);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r < 0) {
                fprintf(stderr, "raw_server: %s\n", strerror(-r));
                return 1;
        }
        (void) unlink(argv[1]);
        return 0;
}
