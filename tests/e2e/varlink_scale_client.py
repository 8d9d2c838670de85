#!/usr/bin/env python3
"""tests/e2e/varlink_scale_client.py — many idle varlink connections from several uids, and one timed call.

The client of tests/e2e/varlink_scale.sh (run as root in the container, where it sees the service's socket):

  varlink_scale_client.py hold SOCKET STATE_DIR --uids FIRST-LAST --per-uid N [--no-call]
      Forks one child per uid; each takes that uid (setresuid, no groups) and opens N connections to SOCKET,
      makes ONE call on each (org.example.bench.Echo; none with --no-call) and reads its reply, then keeps
      them all open and idle. When every child has its connections, writes STATE_DIR/ready:
          connected=C served=S failed=F seconds=T
      (C connections open, S calls answered with the echoed text, F connections that failed to connect or
      got no answer). Then waits for SIGUSR1 (or SIGTERM): every child closes all its connections and exits;
      once all have exited, writes STATE_DIR/closed. STATE_DIR/pid is the parent's pid.

  varlink_scale_client.py call SOCKET
      One connection, one Echo call: prints "ms=M" (from before connect() to the reply's last byte) and
      exits 0 when the reply is the echoed text.

Plain blocking sockets: N blocking connects and calls per child are quick enough (AF_UNIX), and every wait is
bounded by a socket timeout (a server that never answers fails the run instead of hanging it).
"""
import argparse
import os
import resource
import signal
import socket
import struct
import sys
import time

TEXT = "scale"
CALL = b'{"method":"org.example.bench.Echo","parameters":{"text":"' + TEXT.encode() + b'"}}\0'
REPLY = b'{"parameters":{"text":"' + TEXT.encode() + b'"}}'
TIMEOUT = 120.0


def read_reply(sock):
    data = b""
    while not data.endswith(b"\0"):
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data[:-1]


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # A blocking connect() waits while the listen queue is full (a non-blocking one, which is what Python's
    # settimeout() makes, fails with EAGAIN instead); SO_SNDTIMEO bounds that wait.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(TIMEOUT), 0))
    sock.connect(path)
    sock.settimeout(TIMEOUT)
    return sock


def child(path, uid, count, call, report_fd, release_fd):
    """Runs as `uid`: opens `count` connections, calls once on each, reports, holds them until released."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    socks, failed, served = [], 0, 0
    for _ in range(count):
        try:
            socks.append(connect(path))
        except OSError as e:
            failed += 1
            print(f"uid {uid}: connect: {e}", file=sys.stderr)
    if call:
        # All calls first, then all replies: the server answers them while the rest are being sent.
        for s in socks:
            try:
                s.sendall(CALL)
            except OSError:
                pass
        for s in socks:
            try:
                reply = read_reply(s)
            except OSError:
                reply = None
            if reply == REPLY:
                served += 1
            else:
                failed += 1
    os.write(report_fd, f"{len(socks)} {served} {failed}\n".encode())
    os.close(report_fd)
    os.read(release_fd, 1)  # EOF when the parent closes its end: time to go
    for s in socks:
        s.close()
    os._exit(0)


def hold(args):
    first, last = (int(x) for x in args.uids.split("-"))
    uids = list(range(first, last + 1))
    # Each child holds per_uid connections: raise the fd limit (we are root) before the children inherit it.
    need = args.per_uid + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
    os.makedirs(args.state, exist_ok=True)
    with open(os.path.join(args.state, "pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
    start = time.monotonic()
    release_r, release_w = os.pipe()
    reports, pids = [], []
    for uid in uids:
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(report_r)
                os.close(release_w)
                child(args.socket, uid, args.per_uid, not args.no_call, report_w, release_r)
            finally:
                os._exit(1)
        os.close(report_w)
        reports.append(report_r)
        pids.append(pid)
    os.close(release_r)
    connected = served = failed = 0
    for r in reports:
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(r, 64)
            if not chunk:
                break
            line += chunk
        os.close(r)
        parts = line.split()
        if len(parts) == 3:
            c, s, f = (int(x) for x in parts)
        else:
            c, s, f = 0, 0, args.per_uid  # the child died before reporting
        connected, served, failed = connected + c, served + s, failed + f
    seconds = time.monotonic() - start
    ready = os.path.join(args.state, "ready")
    with open(ready + ".tmp", "w") as f:
        f.write(f"connected={connected} served={served} failed={failed} seconds={seconds:.1f}\n")
    os.rename(ready + ".tmp", ready)
    signal.sigwait({signal.SIGUSR1, signal.SIGTERM})
    os.close(release_w)
    for pid in pids:
        os.waitpid(pid, 0)
    with open(os.path.join(args.state, "closed"), "w") as f:
        f.write("closed\n")
    return 0


def call(args):
    start = time.monotonic()
    with connect(args.socket) as s:
        s.sendall(CALL)
        reply = read_reply(s)
    ms = (time.monotonic() - start) * 1000
    print(f"ms={ms:.1f}")
    if reply != REPLY:
        print(f"unexpected reply: {reply!r}", file=sys.stderr)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("hold")
    h.add_argument("socket")
    h.add_argument("state")
    h.add_argument("--uids", required=True, help="FIRST-LAST")
    h.add_argument("--per-uid", type=int, required=True)
    h.add_argument("--no-call", action="store_true")
    c = sub.add_parser("call")
    c.add_argument("socket")
    args = parser.parse_args()
    return hold(args) if args.mode == "hold" else call(args)


if __name__ == "__main__":
    sys.exit(main())
