/* bench/varlink/floor_server.c — the no-JSON floor: what the kernel and the syscalls cost.
 *
 * An epoll server on an AF_UNIX stream socket that reads NUL-terminated messages and answers each one with the
 * fixed reply {"parameters":{"text":"hello"}}\0 — no JSON parsing, no per-message work. Per wake-up of a
 * connection: one read (of up to 64 KiB), then ONE write carrying all the replies owed (pipelined calls are
 * batched). Whatever a varlink server does beyond this is its own cost.
 *
 * Usage: floor_server PATH   (or socket activation: LISTEN_FDS=1, fd 3). Exits 0 on SIGTERM/SIGINT.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char reply[] = "{\"parameters\":{\"text\":\"hello\"}}"; /* sizeof includes the NUL terminator */
#define REPLY_LEN (sizeof reply)
#define READ_SIZE 65536

struct conn {
        int fd;
        char *out;     /* replies owed but not yet written (after a short write) */
        size_t out_len, out_cap;
        int want_out;  /* EPOLLOUT registered */
};

static char readbuf[READ_SIZE];

static void conn_close(int ep, struct conn *c) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c->out);
        free(c);
}

/* Appends n replies to the output buffer; returns -1 on allocation failure. */
static int owe(struct conn *c, size_t n) {
        size_t need = c->out_len + n * REPLY_LEN;
        if (need > c->out_cap) {
                size_t cap = c->out_cap ? c->out_cap : 4096;
                while (cap < need)
                        cap *= 2;
                char *p = realloc(c->out, cap);
                if (!p)
                        return -1;
                c->out = p;
                c->out_cap = cap;
        }
        for (size_t i = 0; i < n; i++)
                memcpy(c->out + c->out_len + i * REPLY_LEN, reply, REPLY_LEN);
        c->out_len = need;
        return 0;
}

/* One write of everything owed; returns -1 if the connection is dead. */
static int flush(int ep, struct conn *c) {
        if (c->out_len == 0)
                return 0;
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        return -1;
                w = 0;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t) w);
        c->out_len -= (size_t) w;
        int want = c->out_len != 0; /* only touch epoll when the interest changes: no extra syscall normally */
        if (want == c->want_out)
                return 0;
        c->want_out = want;
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
        return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
        int lfd;
        const char *path = NULL;

        if (argc == 2) {
                path = argv[1];
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                if (strlen(path) >= sizeof sa.sun_path) {
                        fprintf(stderr, "floor_server: path too long\n");
                        return 2;
                }
                strcpy(sa.sun_path, path);
                lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                (void) unlink(path);
                if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0) {
                        perror("floor_server: socket/bind/listen");
                        return 1;
                }
        } else if (argc == 1 && getenv("LISTEN_FDS") && atoi(getenv("LISTEN_FDS")) == 1) {
                lfd = 3; /* passed listening sockets are usually blocking: the accept loop needs O_NONBLOCK */
                if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0) {
                        perror("floor_server: fcntl(3)");
                        return 1;
                }
        } else {
                fprintf(stderr, "usage: %s PATH   (or LISTEN_FDS=1)\n", argv[0]);
                return 2;
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        if (sfd < 0 || ep < 0) {
                perror("floor_server: signalfd/epoll");
                return 1;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
        int sig_tag;
        ev.data.ptr = &sig_tag;
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

        struct epoll_event evs[256];
        for (;;) {
                int n = epoll_wait(ep, evs, 256, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("floor_server: epoll_wait");
                        return 1;
                }
                for (int i = 0; i < n; i++) {
                        if (evs[i].data.ptr == &sig_tag) {
                                if (path)
                                        (void) unlink(path);
                                return 0;
                        }
                        if (evs[i].data.ptr == NULL) {
                                for (;;) {
                                        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                        if (fd < 0)
                                                break;
                                        struct conn *c = calloc(1, sizeof *c);
                                        if (!c) {
                                                close(fd);
                                                continue;
                                        }
                                        c->fd = fd;
                                        struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
                                        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                                }
                                continue;
                        }
                        struct conn *c = evs[i].data.ptr;
                        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                                ssize_t r = recv(c->fd, readbuf, sizeof readbuf, MSG_DONTWAIT);
                                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                                        conn_close(ep, c);
                                        continue;
                                }
                                size_t msgs = 0;
                                for (const char *p = readbuf, *end = readbuf + (r > 0 ? r : 0);
                                     (p = memchr(p, '\0', (size_t) (end - p))); p++)
                                        msgs++;
                                if (msgs && owe(c, msgs) < 0) {
                                        conn_close(ep, c);
                                        continue;
                                }
                        }
                        if (flush(ep, c) < 0)
                                conn_close(ep, c);
                }
        }
}
