// bare — the baseline of bench/activation: a socket-activated service in plain C, as small as one can write
// it with libsystemd. It takes its one listening socket from systemd (sd_listen_fds), tells systemd it is
// ready (Type=notify, as svckit's units), then accepts connections one at a time and answers every
// NUL-terminated message (a varlink call) with a fixed varlink reply, {"parameters":{"text":"hi"}}: what
// svckit-example-bench answers to org.example.bench.Echo {"text":"hi"}. No JSON parsing, no verification of
// the socket, no event loop. Ends on SIGTERM (the default action: systemd counts it as a clean stop).
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static const char reply[] = "{\"parameters\":{\"text\":\"hi\"}}"; // sizeof includes the NUL that ends it

static void serve(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        // One reply per message that ends in this read (a message split across reads counts once, at its
        // end).
        for (ssize_t i = 0; i < n; ++i)
            if (buf[i] == '\0' && write(fd, reply, sizeof reply) != (ssize_t)sizeof reply)
                return;
    }
}

int main(void) {
    int n = sd_listen_fds(1);
    if (n != 1) {
        fprintf(stderr, "bare: expected one socket from systemd, got %d\n", n);
        return 1;
    }
    (void)sd_notify(0, "READY=1");
    for (;;) {
        int fd = accept4(SD_LISTEN_FDS_START, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("bare: accept4");
            return 1;
        }
        serve(fd);
        close(fd);
    }
}
