#!/usr/bin/env python3
# The callers of tests/e2e/varlink_faults.sh: plain varlink over a unix socket, every call with a deadline, so
# a hang is counted as one instead of stalling the script. Each call is on a connection of its own.
#   client.py concurrent SOCKET N MS TIMEOUT [METHOD]
#                                             N calls METHOD(MS) (default Sleep) at once; prints "sent N" once
#                                             all are written
#   client.py sequence SOCKET COUNT TIMEOUT GAP_MS...
#                                             COUNT calls Pid() one after another, waiting GAP_MS (cycled)
#                                             between a reply and the next connect
#   client.py load SOCKET SECONDS TIMEOUT      Pid() calls back to back on 4 threads for SECONDS; prints
#                                             "first reply" once one has been answered
# Each mode ends with "replies=R errors=E hangs=H" (and pids=P: the distinct serving pids seen). An error is
# an error reply, a connection refused, reset or closed before the reply; a hang is a call still unanswered at
# its deadline.
import json
import socket
import sys
import threading
import time

counts = {"replies": 0, "errors": 0, "hangs": 0}
pids = set()
lock = threading.Lock()


def note(kind, detail=""):
    with lock:
        counts[kind] += 1
        if detail:
            print(f"{kind}: {detail}", flush=True)


def connect_and_send(path, method, parameters, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(json.dumps({"method": method, "parameters": parameters}).encode() + b"\0")
    return s


def finish(s, deadline):
    """Reads the reply (until its NUL) and counts it."""
    data = b""
    try:
        while b"\0" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                note("errors", "connection closed before the reply")
                return
            data += chunk
        reply = json.loads(data.split(b"\0", 1)[0])
        if "error" in reply:
            note("errors", reply["error"])
        else:
            with lock:
                pids.add(reply["parameters"]["pid"])
            note("replies")
    except socket.timeout:
        note("hangs", "no reply before the deadline")
    except OSError as e:
        note("errors", f"{type(e).__name__}: {e}")
    finally:
        s.close()


def call(path, method, parameters, timeout):
    deadline = time.monotonic() + timeout
    try:
        s = connect_and_send(path, method, parameters, timeout)
    except socket.timeout:
        note("hangs", "connect or send timed out")
        return
    except OSError as e:
        note("errors", f"{type(e).__name__}: {e}")
        return
    finish(s, deadline)


def summary():
    print(f"replies={counts['replies']} errors={counts['errors']} hangs={counts['hangs']} pids={len(pids)}",
          flush=True)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "concurrent":
        n, ms, timeout = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
        method = sys.argv[6] if len(sys.argv) > 6 else "Sleep"
        deadline = time.monotonic() + timeout
        sockets = []
        for _ in range(n):
            try:
                sockets.append(connect_and_send(path, f"io.svckit.test.Faults.{method}", {"ms": ms}, timeout))
            except OSError as e:
                note("errors", f"{type(e).__name__}: {e}")
        print(f"sent {len(sockets)}", flush=True)
        threads = [threading.Thread(target=finish, args=(s, deadline)) for s in sockets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif mode == "sequence":
        count, timeout = int(sys.argv[3]), float(sys.argv[4])
        gaps = [int(g) / 1000 for g in sys.argv[5:]] or [0.2]
        for i in range(count):
            call(path, "io.svckit.test.Faults.Pid", {}, timeout)
            time.sleep(gaps[i % len(gaps)])
    elif mode == "load":
        seconds, timeout = float(sys.argv[3]), float(sys.argv[4])
        end = time.monotonic() + seconds

        def loop():
            while time.monotonic() < end:
                call(path, "io.svckit.test.Faults.Pid", {}, timeout)
                with lock:
                    if counts["replies"] >= 1 and not first:
                        first.append(True)
                        print("first reply", flush=True)

        first = []

        threads = [threading.Thread(target=loop) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        sys.exit(f"unknown mode {mode}")
    summary()


main()
