#!/usr/bin/env python3
"""bench/activation/inside.py — the part of bench/activation/run that runs inside the booted container (real
systemd as PID 1), with svckit's build installed there. Prints the results as markdown on stdout, progress on
stderr; exits 1 when a server did not answer.

    python3 inside.py BENCH_BUILD TRIALS EXEC_TRIALS [--smoke]

BENCH_BUILD holds bench/activation's client, bare and stamp. What it measures (bench/README.md):
  1. cold activation, connect() -> first reply, interleaved rounds over: svckit-example-bench from its installed
     units; bare.c under every sandbox line of svckit's generated .service ("bare, svckit's sandbox"); bare.c
     with none of them ("bare, no sandbox"); bare.c with one group of those lines at a time (cost per group);
  2. exec -> first reply under systemd: the same units with ExecStart= wrapped by stamp (drop-ins);
  3. exec -> first reply and syscalls without systemd: `client spawn`, plain and under strace;
  4. idle RSS / PSS / private memory of each example after activation and one call.
"""
import os
import re
import shutil
import subprocess
import sys
import time

BENCH = sys.argv[1]
TRIALS = int(sys.argv[2])
EXEC_TRIALS = int(sys.argv[3])
SMOKE = "--smoke" in sys.argv[4:]
CLIENT = os.path.join(BENCH, "client")
UNIT_DIR = "/run/systemd/system"
BARE = "/usr/bin/svckit-bench-bare"
STAMP = "/usr/bin/svckit-bench-stamp"
SVCKIT = "svckit-example-bench"

failures = []


def log(msg):
    print(f"activation: {msg}", file=sys.stderr, flush=True)


def sh(*cmd, check=True, capture=True):
    r = subprocess.run(cmd, capture_output=capture, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout.strip() if capture else ""


def parse_unit(text):
    """[(section, key, value)] of a unit file, in order (repeated keys kept)."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key, value))
    return out


def wait_until(pred, seconds=30, what="condition"):
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def is_active(unit):
    return sh("systemctl", "is-active", unit, check=False)


def stop(unit):
    sh("systemctl", "stop", unit, check=False)
    wait_until(lambda: is_active(unit) in ("inactive", "failed"), 30, f"{unit} to stop")
    if is_active(unit) == "failed":
        sh("systemctl", "reset-failed", unit, check=False)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else float("nan")


def p90(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.9 * len(s) + 0.999999) - 1)] if s else float("nan")


def ms(ns):
    return f"{ns / 1e6:.2f}"


# --- the units -------------------------------------------------------------------------------------------------

# Which group each sandbox setting of a .service belongs to, for the cost of one group at a time (anything not
# named here is "other"). Mount namespace: settings that make systemd's executor set up a mount namespace.
GROUPS = {
    "mount namespace": {"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                        "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc",
                        "ProcSubset", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem",
                        "BindPaths", "BindReadOnlyPaths", "PrivateMounts", "ProtectHostname", "PrivateIPC",
                        "ProtectClock", "RuntimeDirectory", "StateDirectory", "CacheDirectory", "LogsDirectory",
                        "ConfigurationDirectory", "NoExecPaths", "ExecPaths", "PrivatePIDs"},
    "seccomp and prctl": {"SystemCallFilter", "SystemCallArchitectures", "SystemCallErrorNumber",
                          "SystemCallLog", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
                          "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "NoNewPrivileges",
                          "RestrictFileSystems"},
    "network": {"PrivateNetwork", "IPAddressDeny", "IPAddressAllow", "NetworkNamespacePath", "SocketBindDeny",
                "SocketBindAllow", "RestrictNetworkInterfaces"},
    "user": {"DynamicUser", "User", "Group", "SupplementaryGroups", "PrivateUsers"},
    "capabilities": {"CapabilityBoundingSet", "AmbientCapabilities"},
}
# Lines of svckit's .service that are not sandbox: the bare service has its own ExecStart= and does not ping a
# watchdog; Type=notify and NotifyAccess= are kept for every bare variant (bare.c sends READY=1 as svckit does).
NOT_SANDBOX = {"ExecStart", "Type", "NotifyAccess", "WatchdogSec"}


def group_of(key):
    for name, keys in GROUPS.items():
        if key in keys:
            return name
    return "other"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def socket_path(unit_text):
    return next(v for s, k, v in parse_unit(unit_text) if s == "Socket" and k == "ListenStream")


def make_bare_units(name, socket_lines, service_lines):
    """svckit-bench-NAME.socket/.service: svckit's socket options on a path of its own, bare.c under
    `service_lines` ([(key, value)])."""
    path = f"/run/svckit-bench-{name}.sock"
    sock = "[Unit]\nDescription=bench/activation: bare C, " + name + "\n\n[Socket]\nListenStream=" + path + "\n"
    sock += "".join(f"{k}={v}\n" for k, v in socket_lines)
    svc = "[Unit]\nDescription=bench/activation: bare C, " + name + "\n\n[Service]\nType=notify\nNotifyAccess=main\n"
    svc += f"ExecStart={BARE}\n" + "".join(f"{k}={v}\n" for k, v in service_lines)
    write(f"{UNIT_DIR}/svckit-bench-{name}.socket", sock)
    write(f"{UNIT_DIR}/svckit-bench-{name}.service", svc)
    return path


def setup():
    shutil.copy(os.path.join(BENCH, "bare"), BARE)
    shutil.copy(os.path.join(BENCH, "stamp"), STAMP)
    units = "/tmp/svckit-bench-units"
    shutil.rmtree(units, ignore_errors=True)
    sh(f"/usr/bin/{SVCKIT}", f"--print-units={units}")
    service_text = open(f"{units}/{SVCKIT}.service").read()
    socket_text = open(f"{units}/{SVCKIT}.socket").read()
    service = parse_unit(service_text)
    sandbox = [(k, v) for s, k, v in service if s == "Service" and k not in NOT_SANDBOX]
    # svckit's socket options, not its path, registry symlinks or [Install]
    socket_lines = [(k, v) for s, k, v in parse_unit(socket_text)
                    if s == "Socket" and k not in ("ListenStream", "Symlinks", "Service")]
    exec_start = next(v for s, k, v in service if s == "Service" and k == "ExecStart")

    servers = {"svckit": {"unit": SVCKIT, "path": socket_path(socket_text), "exec": exec_start}}
    servers["bare, svckit's sandbox"] = {"unit": "svckit-bench-sandboxed",
                                         "path": make_bare_units("sandboxed", socket_lines, sandbox)}
    servers["bare, no sandbox"] = {"unit": "svckit-bench-plain", "path": make_bare_units("plain", socket_lines, [])}
    groups = []
    for g in list(GROUPS) + ["other"]:
        lines = [(k, v) for k, v in sandbox if group_of(k) == g]
        if not lines:
            continue
        slug = re.sub(r"[^a-z]+", "-", g).strip("-")
        label = f"bare, only {g}"
        servers[label] = {"unit": f"svckit-bench-{slug}", "path": make_bare_units(slug, socket_lines, lines),
                          "lines": lines}
        groups.append(label)
    for s in servers.values():
        s["exec"] = s.get("exec", BARE)
        # Many starts in a row are the point here: no start limit (the same drop-in on every service measured).
        write(f"{UNIT_DIR}/{s['unit']}.service.d/50-bench-no-start-limit.conf", "[Unit]\nStartLimitIntervalSec=0\n")
    sh("systemctl", "daemon-reload")
    for s in servers.values():
        stop(s["unit"] + ".service")
        sh("systemctl", "start", s["unit"] + ".socket")
    return servers, sandbox, socket_lines, groups


# --- the trials --------------------------------------------------------------------------------------------------

def trial(server):
    """One cold activation: the service is inactive; connect, call, first reply; then stop it. Returns
    (connect -> reply ns, CLOCK_MONOTONIC at the reply ns, the service's InvocationID) or None."""
    unit = server["unit"] + ".service"
    if is_active(unit) != "inactive":
        stop(unit)
    r = subprocess.run([CLIENT, "call", server["path"]], capture_output=True, text=True)
    invocation = sh("systemctl", "show", "-P", "InvocationID", unit, check=False)
    cpu = cgroup_cpu(unit)
    stop(unit)
    if r.returncode != 0:
        failures.append(f"{server['unit']}: {r.stderr.strip()}")
        log(f"{server['unit']}: no answer: {r.stderr.strip()}")
        return None
    elapsed, at = (int(x) for x in r.stdout.split())
    return elapsed, at, invocation, cpu


def cgroup_cpu(unit):
    """CPU time (µs) used so far in the unit's cgroup: systemd's executor from the fork on (the sandbox set-up),
    then the service; unlike wall-clock time it does not depend on what else runs on the machine."""
    cgroup = sh("systemctl", "show", "-P", "ControlGroup", unit, check=False)
    try:
        for line in open(f"/sys/fs/cgroup{cgroup}/cpu.stat"):
            if line.startswith("usage_usec "):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def exec_stamp(server, t0, t1):
    """The CLOCK_MONOTONIC stamp logs just before it execs the service, in [t0, t1] (polls the journal)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = sh("journalctl", "-u", server["unit"] + ".service", "-o", "cat", "-n", "200", "--no-pager", check=False)
        for line in reversed(out.splitlines()):
            m = re.match(r"svckit-bench-exec-ns=(\d+)$", line.strip())
            if m and t0 <= int(m.group(1)) <= t1:
                return int(m.group(1))
        time.sleep(0.05)
    return None


def spawn_flags(socket_lines):
    flags = []
    opts = dict(socket_lines)
    if opts.get("PassPIDFD") == "yes":
        flags.append("--passpidfd")
    if opts.get("PassCredentials") == "yes":
        flags.append("--passcred")
    if opts.get("AcceptFileDescriptors") == "no":
        flags.append("--no-passrights")
    return flags


def count_syscalls(trace, program):
    """Syscalls in an strace -f log from PROGRAM's execve to the first write of a reply (inclusive)."""
    n, started = 0, False
    names = {}
    for line in open(trace):
        if not started:
            if re.search(r'execve\("' + re.escape(program) + '"', line):
                started = True
            else:
                continue
        if "resumed>" in line or line.rstrip().endswith("+++") or "--- SIG" in line:
            continue
        m = re.match(r"\s*(?:\d+\s+)?(\w+)\(", line)
        if not m:
            continue
        n += 1
        names[m.group(1)] = names.get(m.group(1), 0) + 1
        if re.match(r"\s*(?:\d+\s+)?(write|sendto|sendmsg|writev)\(\d+, .*parameters", line):
            return n, names
    return None, names


def smaps(pid):
    out = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def main():
    load_before = open("/proc/loadavg").read().split()[:3]
    servers, sandbox, socket_lines, groups = setup()
    log(f"servers: {', '.join(servers)}; sandbox lines: {' '.join(k + '=' + v for k, v in sandbox)}")

    # 1. cold activation, interleaved
    results = {name: [] for name in servers}
    cpu = {name: [] for name in servers}
    for i in range(TRIALS):
        for name, s in servers.items():
            r = trial(s)
            if r:
                results[name].append(r[0])
                if r[3] is not None:
                    cpu[name].append(r[3])
        log(f"round {i + 1}/{TRIALS}")

    # 2. exec -> first reply under systemd: ExecStart= wrapped by stamp
    stamped = ["svckit", "bare, svckit's sandbox", "bare, no sandbox"]
    for name in stamped:
        s = servers[name]
        write(f"{UNIT_DIR}/{s['unit']}.service.d/60-bench-stamp.conf",
              f"[Service]\nExecStart=\nExecStart={STAMP} {s['exec']}\n")
    sh("systemctl", "daemon-reload")
    exec_results = {name: [] for name in stamped}
    for i in range(EXEC_TRIALS):
        for name in stamped:
            r = trial(servers[name])
            if not r:
                continue
            t0, t1 = r[1] - r[0], r[1]
            stamp = exec_stamp(servers[name], t0, t1)
            if stamp is None:
                failures.append(f"{servers[name]['unit']}: no exec stamp in the journal")
                continue
            exec_results[name].append(t1 - stamp)
        log(f"exec round {i + 1}/{EXEC_TRIALS}")
    for name in stamped:
        os.unlink(f"{UNIT_DIR}/{servers[name]['unit']}.service.d/60-bench-stamp.conf")
    sh("systemctl", "daemon-reload")

    # 3. without systemd: exec -> first reply, page faults, CPU; syscalls under strace. The svckit binary binds
    # its own unit's path (it checks it), so its socket unit is stopped for this.
    svckit_bin = servers["svckit"]["exec"].split()[0]
    sh("systemctl", "stop", SVCKIT + ".socket", SVCKIT + ".service")
    flags = spawn_flags(socket_lines)
    fdname = dict(socket_lines).get("FileDescriptorName", "varlink")
    spawned = {"svckit": (servers["svckit"]["path"], svckit_bin), "bare": ("/run/svckit-bench-spawn.sock", BARE)}
    spawn_results = {name: [] for name in spawned}
    for i in range(EXEC_TRIALS):
        for name, (path, program) in spawned.items():
            r = subprocess.run([CLIENT, "spawn", *flags, path, fdname, "--", program], capture_output=True, text=True)
            if r.returncode != 0:
                failures.append(f"spawn {name}: {r.stderr.strip()}")
                continue
            spawn_results[name].append([int(x) for x in r.stdout.split()])
    syscalls = {}
    for name, (path, program) in spawned.items():
        trace = f"/tmp/strace-{name}.txt"
        r = subprocess.run([CLIENT, "spawn", *flags, path, fdname, "--", "strace", "-D", "-f", "-s", "64", "-o", trace,
                            program], capture_output=True, text=True)
        count, names = count_syscalls(trace, program) if r.returncode == 0 else (None, {})
        if count is None:
            failures.append(f"strace {name}: no reply found ({r.stderr.strip()})")
        syscalls[name] = (count, names)
    sh("systemctl", "start", SVCKIT + ".socket")

    # 4. idle memory after activation and one call
    memory = {}
    calls = {
        "svckit-example-bench": [CLIENT, "call", servers["svckit"]["path"]],
        "svckit-example-identity": ["varlinkctl", "call", "/run/svckit-example-identity.sock",
                                    "io.svckit.example.Identity.Whoami", "{}"],
        "svckit-example-calc": ["varlinkctl", "call", "/run/svckit-example-calc.sock", "io.svckit.example.Calc.Apply",
                                '{"op":"add","a":40,"b":2}'],
        "svckit-example-peercred": ["svckit-example-peercred-client", "/run/svckit-example-peercred.sock"],
        "bare, svckit's sandbox": [CLIENT, "call", servers["bare, svckit's sandbox"]["path"]],
        "bare, no sandbox": [CLIENT, "call", servers["bare, no sandbox"]["path"]],
    }
    units = {"bare, svckit's sandbox": servers["bare, svckit's sandbox"]["unit"],
             "bare, no sandbox": servers["bare, no sandbox"]["unit"]}
    for name, cmd in calls.items():
        unit = units.get(name, name) + ".service"
        if name.startswith("svckit-example-") and name != SVCKIT:
            sockets = sh("systemctl", "list-unit-files", "--no-legend", name + "*.socket", check=False)
            for line in sockets.splitlines():
                sh("systemctl", "start", line.split()[0], check=False)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"memory {name}: the call failed: {r.stderr.strip()}")
            continue
        time.sleep(1)  # idle: the call answered, nothing else to do
        pid = sh("systemctl", "show", "-P", "MainPID", unit, check=False)
        if not pid or pid == "0":
            failures.append(f"memory {name}: {unit} is not running after its call")
            continue
        memory[name] = smaps(pid)
        stop(unit)
    load_after = open("/proc/loadavg").read().split()[:3]

    # --- the report
    p = print
    p(f"Cold activation under systemd {sh('systemctl', '--version').split()[1]}, {TRIALS} interleaved trials "
      f"each; load average {' '.join(load_before)} before, {' '.join(load_after)} after.\n")
    p("svckit's sandbox lines (from its generated .service): `" + " ".join(f"{k}={v}" for k, v in sandbox) + "`\n")
    p("| server | median ms | p90 ms | min ms | vs bare, svckit's sandbox (median) | cgroup CPU ms (median) | n |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    ref = median(results["bare, svckit's sandbox"])
    for name, xs in results.items():
        p(f"| {name} | {ms(median(xs))} | {ms(p90(xs))} | {ms(min(xs)) if xs else '-'} | "
          f"{median(xs) / ref:.2f}× | {median(cpu[name]) / 1000:.2f} | {len(xs)} |")
    p("\n(cgroup CPU: CPU time used in the service's cgroup up to the reply, read before the stop: systemd's "
      "executor from the fork on, its sandbox set-up included, then the service. It does not depend on the "
      "machine's load the way wall-clock time does.)")
    if groups:
        p("\nGroups (`bare, only G`: bare.c with only these lines of svckit's sandbox):\n")
        for g in groups:
            p(f"- {g}: `" + " ".join(f"{k}={v}" for k, v in servers[g]["lines"]) + "`")
    p(f"\nexec -> first reply under systemd (ExecStart= wrapped by stamp, which logs CLOCK_MONOTONIC just "
      f"before execve(); the client's CLOCK_MONOTONIC at the reply), {EXEC_TRIALS} interleaved trials:\n")
    p("| server | median ms | p90 ms | n |")
    p("|---|---:|---:|---:|")
    for name, xs in exec_results.items():
        p(f"| {name} | {ms(median(xs))} | {ms(p90(xs))} | {len(xs)} |")
    p(f"\nexec -> first reply without systemd (`client spawn`: the socket made and the call sent before fork, "
      f"CLOCK_MONOTONIC just before execve()), {EXEC_TRIALS} interleaved trials; minor faults and CPU over the "
      f"process's life (start, one call, SIGTERM); syscalls from execve() to the reply's write (strace -f):\n")
    p("| program | median ms | p90 ms | minor faults | CPU µs | syscalls to the reply | n |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in spawn_results.items():
        t = [r[0] for r in rows]
        p(f"| {name} | {ms(median(t))} | {ms(p90(t))} | {median([r[1] for r in rows]):.0f} | "
          f"{median([r[2] for r in rows]):.0f} | {syscalls[name][0]} | {len(t)} |")
    for name, (count, names) in syscalls.items():
        top = sorted(names.items(), key=lambda kv: -kv[1])
        p(f"\n{name} syscalls: " + ", ".join(f"{k} {v}" for k, v in top))
    p("\nIdle memory after activation and one call (/proc/PID/smaps_rollup, KiB):\n")
    p("| service | Rss | Pss | Private_Clean + Private_Dirty | Private_Dirty | Anonymous |")
    p("|---|---:|---:|---:|---:|---:|")
    for name, m in memory.items():
        p(f"| {name} | {m.get('Rss', 0)} | {m.get('Pss', 0)} | "
          f"{m.get('Private_Clean', 0) + m.get('Private_Dirty', 0)} | {m.get('Private_Dirty', 0)} | "
          f"{m.get('Anonymous', 0)} |")
    if failures:
        p("\nFailures:\n")
        for f in failures:
            p(f"- {f}")
        sys.exit(1)


if __name__ == "__main__":
    main()
