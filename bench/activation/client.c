// client — bench/activation's client and no-systemd activator. All times are CLOCK_MONOTONIC.
//
//   client call PATH
//       connect() to the AF_UNIX stream socket PATH, send one varlink call (org.example.bench.Echo
//       {"text":"hi"}) and wait (at most 30 s) for the complete reply, which must carry "text":"hi". Prints
//       "<ns from before connect() to the reply> <CLOCK_MONOTONIC at the reply, ns>". Exit 1 on any failure.
//   client spawn [--passpidfd] [--passcred] [--no-passrights] PATH FDNAME -- CMD [ARGS...]
//       plays systemd's part without systemd: binds and listens on PATH (SO_PASSPIDFD, SO_PASSCRED on,
//       SO_PASSRIGHTS off as asked: what PassPIDFD=yes, PassCredentials=yes, AcceptFileDescriptors=no apply),
//       connects and sends the call, then forks; the child moves the listener to fd 3, sets LISTEN_FDS=1,
//       LISTEN_PID, LISTEN_FDNAMES=FDNAME, writes CLOCK_MONOTONIC into memory shared with the parent just
//       before execve(CMD). Stops the child with SIGTERM once the reply is in and waits for it, then prints
//       "<ns from that execve() to the reply> <the child's minor page faults> <its CPU time, µs>" (the last
//       two over its whole life: start, one call, stop). With `strace -D -f -o FILE PROGRAM` as CMD, PROGRAM
//       keeps the child's pid (LISTEN_PID holds) and FILE has every syscall from its execve to the reply (the
//       time printed then includes strace's own start).
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif

static const char call[] = "{\"method\":\"org.example.bench.Echo\",\"parameters\":{\"text\":\"hi\"}}";

static long long now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int die(const char* what) {
    fprintf(stderr, "client: %s: %s\n", what, strerror(errno));
    return 1;
}

static int address(const char* path, struct sockaddr_un* sa) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa->sun_path, path);
    return 0;
}

// Sends the call on a connected socket.
static int send_call(int fd) {
    if (send(fd, call, sizeof call, MSG_NOSIGNAL) != (ssize_t)sizeof call)
        return die("send");
    return 0;
}

// Waits for one complete reply (up to its NUL); returns CLOCK_MONOTONIC when it was read, or -1.
static long long read_reply(int fd) {
    char buf[4096];
    size_t have = 0;
    long long deadline = now() + 30000000000LL;
    for (;;) {
        long long left = deadline - now();
        if (left <= 0) {
            fprintf(stderr, "client: no reply within 30 s\n");
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left / 1000000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            die("poll");
            return -1;
        }
        if (r == 0)
            continue;
        ssize_t n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "client: the connection closed before a reply (%s)\n",
                    n < 0 ? strerror(errno) : "EOF");
            return -1;
        }
        long long t = now();
        have += (size_t)n;
        if (memchr(buf, '\0', have) == NULL) {
            if (have == sizeof buf - 1) {
                fprintf(stderr, "client: reply too long\n");
                return -1;
            }
            continue;
        }
        buf[have] = '\0';
        if (strstr(buf, "\"text\":\"hi\"") == NULL) {
            fprintf(stderr, "client: unexpected reply: %s\n", buf);
            return -1;
        }
        return t;
    }
}

static int cmd_call(const char* path) {
    struct sockaddr_un sa;
    if (address(path, &sa) < 0)
        return die(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return die("socket");
    long long t0 = now();
    if (connect(fd, (struct sockaddr*)&sa, sizeof sa) < 0)
        return die("connect");
    if (send_call(fd) != 0)
        return 1;
    long long t1 = read_reply(fd);
    if (t1 < 0)
        return 1;
    printf("%lld %lld\n", t1 - t0, t1);
    close(fd);
    return 0;
}

static int cmd_spawn(int argc, char** argv) {
    int passpidfd = 0, norights = 0, passcred = 0, i = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0'; ++i) {
        if (strcmp(argv[i], "--passpidfd") == 0)
            passpidfd = 1;
        else if (strcmp(argv[i], "--no-passrights") == 0)
            norights = 1;
        else if (strcmp(argv[i], "--passcred") == 0)
            passcred = 1;
        else {
            fprintf(stderr, "client: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (argc - i < 4 || strcmp(argv[i + 2], "--") != 0) {
        fprintf(stderr, "usage: client spawn [--passpidfd] [--passcred] [--no-passrights] PATH FDNAME -- CMD "
                        "[ARGS...]\n");
        return 2;
    }
    const char* path = argv[i];
    const char* fdname = argv[i + 1];
    char** cmd = argv + i + 3;

    struct sockaddr_un sa;
    if (address(path, &sa) < 0)
        return die(path);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0); // inherited by the service: no CLOEXEC
    if (listener < 0 || bind(listener, (struct sockaddr*)&sa, sizeof sa) < 0 || listen(listener, 16) < 0)
        return die("listen");
    int one = 1, zero = 0;
    if (passpidfd && setsockopt(listener, SOL_SOCKET, SO_PASSPIDFD, &one, sizeof one) < 0)
        return die("SO_PASSPIDFD");
    if (passcred && setsockopt(listener, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
        return die("SO_PASSCRED");
    if (norights && setsockopt(listener, SOL_SOCKET, SO_PASSRIGHTS, &zero, sizeof zero) < 0)
        return die("SO_PASSRIGHTS");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&sa, sizeof sa) < 0)
        return die("connect");
    if (send_call(fd) != 0)
        return 1;

    volatile long long* stamp =
        mmap(NULL, sizeof *stamp, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stamp == MAP_FAILED)
        return die("mmap");
    *stamp = 0;
    pid_t child = fork();
    if (child < 0)
        return die("fork");
    if (child == 0) {
        if (listener != 3) {
            if (dup2(listener, 3) < 0)
                _exit(die("dup2"));
            close(listener);
        }
        char pid[32];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_PID", pid, 1);
        setenv("LISTEN_FDNAMES", fdname, 1);
        unsetenv("NOTIFY_SOCKET");
        *stamp = now();
        execvp(cmd[0], cmd);
        _exit(die("execvp"));
    }
    close(listener);
    long long t1 = read_reply(fd);
    int status = 0;
    struct rusage ru;
    kill(child, SIGTERM);
    if (wait4(child, &status, 0, &ru) < 0)
        memset(&ru, 0, sizeof ru);
    unlink(path);
    if (t1 < 0)
        return 1;
    printf("%lld %ld %ld\n", t1 - *stamp, ru.ru_minflt,
           (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "call") == 0)
        return cmd_call(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "spawn") == 0)
        return cmd_spawn(argc - 2, argv + 2);
    fprintf(stderr, "usage: client call PATH | client spawn [--passpidfd] [--passcred] [--no-passrights] "
                    "PATH FDNAME -- CMD [ARGS...]\n");
    return 2;
}
