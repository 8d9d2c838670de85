// stamp — an ExecStart= wrapper for bench/activation: `stamp PROGRAM [ARGS...]` writes
// "svckit-bench-exec-ns=<CLOCK_MONOTONIC in ns>" to stderr (the journal, under systemd) and execs PROGRAM in
// the same process (its pid stays the unit's main pid, LISTEN_PID stays right). The timestamp is taken just
// before execve(): what follows it is PROGRAM's exec, dynamic linking, start-up and first reply, which the
// client's own CLOCK_MONOTONIC at the reply closes (bench/activation/run: "exec -> first reply").
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: stamp PROGRAM [ARGS...]\n");
        return 2;
    }
    char line[64];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(line, sizeof line, "svckit-bench-exec-ns=%lld\n",
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    (void)!write(2, line, (size_t)n);
    execv(argv[1], argv + 1);
    perror("stamp: execv");
    return 127;
}
