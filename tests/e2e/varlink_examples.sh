#!/usr/bin/env bash
# End-to-end: the varlink examples (identity, calc, bench) socket-activated by a real systemd >= 258 booted as
# PID 1 in the dev root's container, with the units they print themselves (units/), called by varlinkctl from
# units of their own (systemd-run), checked from outside.
#   tests/e2e/varlink_examples.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_varlink_examples
. tests/lib/check.sh

[ -x "$build/examples/identity/svckit-example-identity" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-varlink-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# A command in a unit of its own, as a real caller; its stdout and stderr are ours, its exit status too. A call
# that hangs fails after RuntimeMaxSec= instead of stalling the script.
# (--expand-environment=no: the shell snippets below use $$ themselves.)
as_unit() { c systemd-run --quiet --wait --pipe --collect --service-type=exec --expand-environment=no \
    -p RuntimeMaxSec=120 "$@"; }
# varlinkctl in a unit; JSON sequences (--more) come with RS separators, dropped here. Its exit status is
# varlinkctl's (not tr's).
vl() { as_unit varlinkctl "$@" 2>&1 | tr -d '\036'; return "${PIPESTATUS[0]}"; }

identity=/run/svckit-example-identity.sock
accept=/run/svckit-example-identity-accept.sock
calc=/run/svckit-example-calc.sock
bench=/run/svckit-example-bench.sock

check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"
c systemctl daemon-reload

# The installed units are the ones each binary prints from its spec, and systemd 262 finds nothing to say.
for example in identity calc bench; do
    out=$(c sh -ec "d=\$(mktemp -d); svckit-example-$example --print-units=\$d >&2; cd \$d
        for f in *; do cmp \$f /usr/lib/systemd/system/\$f; done; echo units:; ls" 2>&1)
    rc=$?
    units=$(sed -n '/^units:$/,$p' <<<"$out" | tail -n +2)
    exits "svckit-example-$example: installed units are what --print-units writes ($(echo $units))" "$rc" 0 "$out"
    contains "svckit-example-$example: ...among them its .socket" "$units" ".socket"
    for unit in $units; do
        v=$(c systemd-analyze verify "/usr/lib/systemd/system/$unit" 2>&1)
        equals "systemd-analyze verify $unit prints nothing" "$v" ""
    done
done

check "the sockets start" c systemctl start svckit-example-identity.socket svckit-example-identity-accept.socket \
    svckit-example-calc.socket svckit-example-bench.socket
for s in identity calc bench; do
    equals "svckit-example-$s.service is not running before the first call" \
        "$(c systemctl is-active svckit-example-$s.service)" inactive
done

# --- identity: the caller is the varlinkctl process itself (the shell execs it, keeping its pid)
out=$(as_unit sh -c 'echo "pid=$$"; echo "cgroup=$(sed -n "s/^0:://p" /proc/self/cgroup)"; exec varlinkctl call --json=short '"$identity"' io.svckit.example.Identity.Whoami "{}"' 2>&1)
pid=$(sed -n 's/^pid=//p' <<<"$out")
cgroup=$(sed -n 's/^cgroup=//p' <<<"$out")
reply=$(grep '^{' <<<"$out")
contains "identity: Whoami returns the calling varlinkctl's pid ($pid)" "$reply" "\"pid\":$pid,"
contains "identity: Whoami returns its cgroup ($cgroup)" "$reply" "\"cgroup\":\"$cgroup\""
contains "identity: Whoami returns its unit" "$reply" "\"unit\":\"$(basename "$cgroup")\""
contains "identity: uid and gid are root's" "$reply" '"uid":0,"gid":0'
contains "identity: exe read through the pidfd is varlinkctl" "$reply" '"exe":"/usr/bin/varlinkctl"'
contains "identity: comm is varlinkctl" "$reply" '"comm":"varlinkctl"'
equals "identity: the first call activated the service" "$(c systemctl is-active svckit-example-identity.service)" active
out=$(as_unit -p User=nobody sh -c 'echo "pid=$$"; exec varlinkctl call --json=short '"$identity"' io.svckit.example.Identity.Whoami "{}"' 2>&1)
contains "identity: another user's call names that user (nobody)" "$out" '"uid":65534,"gid":65534'
contains "identity: ...and its pid" "$out" "\"pid\":$(sed -n 's/^pid=//p' <<<"$out"),"
contains "identity: ...and its exe (CAP_SYS_PTRACE, the sandbox's one privilege here)" "$out" \
    '"exe":"/usr/bin/varlinkctl"'
uid=$(c sh -c 'sed -n "s/^Uid:\t\([0-9]*\).*/\1/p" /proc/$(systemctl show -P MainPID svckit-example-identity.service)/status')
check "identity: the service runs as a dynamic user, not root (uid $uid)" test "${uid:-0}" -ge 61184

out=$(vl info "$identity")
contains "identity: varlinkctl info names the product" "$out" "svckit-example-identity"
contains "identity: varlinkctl info lists the interface" "$out" "io.svckit.example.Identity"
contains "identity: varlinkctl info lists org.varlink.service" "$out" "org.varlink.service"
out=$(vl introspect "$identity" io.svckit.example.Identity)
contains "identity: introspect serves the interface with its comments" "$out" "# Who is calling"
check "identity: varlinkctl introspect writes the description" \
    c sh -c "varlinkctl introspect $identity io.svckit.example.Identity >/tmp/identity.varlink"
check "identity: varlinkctl validate-idl accepts the served description" c varlinkctl validate-idl /tmp/identity.varlink
out=$(vl call --oneway "$identity" io.svckit.example.Identity.Whoami '{}')
exits "identity: --oneway succeeds" "$?" 0 "$out"
equals "identity: ...with no output" "$out" ""
out=$(vl call --json=short "$identity" io.svckit.example.Identity.Stats '{}')
contains "identity: Stats answers root" "$out" '"connections":'
out=$(as_unit -p User=nobody varlinkctl call "$identity" io.svckit.example.Identity.Stats '{}' 2>&1)
rc=$?
contains "identity: Stats refuses another user: PermissionDenied" "$out" "Permission denied"
exits "identity: ...and the call fails" "$rc" 1 "$out"
out=$(as_unit sh -c "varlinkctl call --push-fd=0 $identity io.svckit.example.Identity.Whoami '{}' </etc/hostname" 2>&1)
rc=$?
contains "identity: sending an fd to the AcceptFileDescriptors=no socket fails with EPERM" "$out" "Operation not permitted"
exits "identity: ...and the call fails" "$rc" nonzero "$out"
lacks "identity: ...with no answer" "$out" '"uid"'
out=$(vl call --json=short "$identity" io.svckit.example.Identity.Whoami '{}')
contains "identity: the service still answers after the refused fd" "$out" '"uid":0'

# --- identity over Accept=yes: one instance per connection
out=$(as_unit sh -c 'echo "pid=$$"; exec varlinkctl call --json=short '"$accept"' io.svckit.example.Identity.Whoami "{}"' 2>&1)
contains "identity Accept=yes: the instance names the caller" "$out" "\"pid\":$(sed -n 's/^pid=//p' <<<"$out"),"
# (The listing must succeed: an empty listing from a failed command would pass vacuously.)
check "identity Accept=yes: the instance ends with its connection" \
    wait_for 60 bash -c "units=\$(dev/root exec $name systemctl list-units --no-legend 'svckit-example-identity-accept@*') &&
        ! grep -q running <<<\"\$units\""

# --- calc: typed errors, streaming, fds accepted (AcceptFileDescriptors=yes)
equals "calc: Apply add" "$(vl call --json=short "$calc" io.svckit.example.Calc.Apply '{"op":"add","a":40,"b":2}')" '{"result":42}'
equals "calc: Apply divide" "$(vl call --json=short "$calc" io.svckit.example.Calc.Apply '{"op":"divide","a":-9,"b":2}')" '{"result":-4}'
out=$(vl call --json=short "$calc" io.svckit.example.Calc.Apply '{"op":"divide","a":1,"b":0}')
contains "calc: division by zero is the typed error DivisionByZero" "$out" "io.svckit.example.Calc.DivisionByZero"
out=$(vl call --json=short "$calc" io.svckit.example.Calc.Apply '{"op":"multiply","a":9223372036854775807,"b":2}')
contains "calc: overflow is the typed error Overflow" "$out" "io.svckit.example.Calc.Overflow"
contains "calc: ...with its parameter" "$out" '{"op":"multiply"}'
out=$(vl call --json=short "$calc" io.svckit.example.Calc.Apply '{"op":"power","a":1,"b":2}')
contains "calc: an unknown enum value is InvalidParameter op" "$out" '{"parameter":"op"}'
equals "calc: Sum" "$(vl call --json=short "$calc" io.svckit.example.Calc.Sum '{"values":[1,2,3,36]}')" '{"sum":42,"count":4}'
out=$(vl call --more --collect --json=short "$calc" io.svckit.example.Calc.Fibonacci '{"n":6}')
equals "calc: Fibonacci --more streams every number" "$out" \
    '[{"index":0,"value":0},{"index":1,"value":1},{"index":2,"value":1},{"index":3,"value":2},{"index":4,"value":3},{"index":5,"value":5}]'
out=$(vl call "$calc" io.svckit.example.Calc.Fibonacci '{"n":6}')
contains "calc: Fibonacci without --more is ExpectedMore" "$out" "without 'more' flag"
c sh -c 'printf "1\n2\n\n39\n" >/tmp/numbers'
out=$(as_unit sh -c "varlinkctl call --json=short --push-fd=0 $calc io.svckit.example.Calc.SumFile '{\"fd\":0}' </tmp/numbers" 2>&1)
equals "calc: SumFile reads the fd passed with the call (AcceptFileDescriptors=yes)" "$out" '{"sum":42,"lines":3}'
out=$(vl call --json=short "$calc" io.svckit.example.Calc.SumFile '{"fd":0}')
contains "calc: SumFile without an fd is NoSuchFd" "$out" "io.svckit.example.Calc.NoSuchFd"
out=$(as_unit sh -c "varlinkctl call --json=short --push-fd=0 $calc io.svckit.example.Calc.Sum '{\"values\":[1]}' </tmp/numbers" 2>&1)
equals "calc: an fd sent to a method that takes none is closed, the call answered" "$out" '{"sum":1,"count":1}'
check "calc: varlinkctl introspect writes the description" \
    c sh -c "varlinkctl introspect $calc io.svckit.example.Calc >/tmp/calc.varlink"
check "calc: varlinkctl validate-idl accepts the served description" c varlinkctl validate-idl /tmp/calc.varlink
contains "calc: introspection shows that Fibonacci requires more" "$(c cat /tmp/calc.varlink)" \
    $'# [Requires \'more\' flag]\nmethod Fibonacci('
equals "calc: the socket carries AcceptFileDescriptors=yes" \
    "$(c systemctl show -P AcceptFileDescriptors svckit-example-calc.socket)" yes

# --- bench
equals "bench: Echo" "$(vl call --json=short "$bench" org.example.bench.Echo '{"text":"hi"}')" '{"text":"hi"}'
equals "bench: Add" "$(vl call --json=short "$bench" org.example.bench.Add '{"a":40,"b":2}')" '{"sum":42}'
equals "bench: Count --more" "$(vl call --more --collect --json=short "$bench" org.example.bench.Count '{"n":3}')" \
    '[{"i":0},{"i":1},{"i":2}]'
out=$(vl call --oneway "$bench" org.example.bench.Echo '{"text":"x"}')
exits "bench: --oneway succeeds" "$?" 0 "$out"
equals "bench: ...with no output" "$out" ""
check "bench: varlinkctl introspect writes the description" \
    c sh -c "varlinkctl introspect $bench org.example.bench >/tmp/bench.varlink"
check "bench: varlinkctl validate-idl accepts the served description" c varlinkctl validate-idl /tmp/bench.varlink
out=$(vl info "$bench")
contains "bench: info lists org.example.bench" "$out" "org.example.bench"

# --- systemd's conventions: the varlink registry, the watchdog
out=$(c varlinkctl list-registry 2>&1)
for interface in io.svckit.example.Identity io.svckit.example.Calc org.example.bench; do
    contains "varlinkctl list-registry lists $interface" "$out" "$interface"
done
equals "a call through the registry's path is answered" \
    "$(vl call --json=short /run/varlink/registry/io.svckit.example.Calc io.svckit.example.Calc.Apply '{"op":"add","a":1,"b":1}')" \
    '{"result":2}'
equals "bench: the unit sets WatchdogSec=30s" "$(c systemctl show -P WatchdogUSec svckit-example-bench.service)" 30s
# With a 2 s watchdog (a drop-in) systemd sees the pings: the watchdog timestamp moves while the process stays.
c mkdir -p /run/systemd/system/svckit-example-bench.service.d
c sh -c 'printf "[Service]\nWatchdogSec=2s\n" >/run/systemd/system/svckit-example-bench.service.d/50-watchdog.conf'
c systemctl daemon-reload
c systemctl restart svckit-example-bench.service
pid=$(c systemctl show -P MainPID svckit-example-bench.service)
first=$(c systemctl show -P WatchdogTimestampMonotonic svckit-example-bench.service)
# pinged SINCE: the watchdog timestamp differs from SINCE and the process is still the one started above (a
# service killed by the watchdog and started again has a new timestamp too).
pinged() { c sh -c '[ "$(systemctl show -P WatchdogTimestampMonotonic "$1")" != "$2" ] &&
    [ "$(systemctl show -P MainPID "$1")" = "$3" ]' _ svckit-example-bench.service "$1" "$pid"; }
check "bench: systemd receives watchdog pings (WatchdogTimestamp moves, same process)" wait_for 30 pinged "$first"
second=$(c systemctl show -P WatchdogTimestampMonotonic svckit-example-bench.service)
check "bench: ...and again" wait_for 30 pinged "$second"
equals "bench: ...from the same process, never killed" "$(c systemctl show -P MainPID svckit-example-bench.service)" "$pid"
c rm -r /run/systemd/system/svckit-example-bench.service.d
c systemctl daemon-reload

# --- a socket whose unit lost PassPIDFD=yes: the service refuses to start, naming the line to add
# (The socket must be listening, and without PassPIDFD: a call that fails because nothing listens proves nothing.)
c mkdir -p /run/systemd/system/svckit-example-calc.socket.d
c sh -c 'printf "[Socket]\nPassPIDFD=no\n" >/run/systemd/system/svckit-example-calc.socket.d/no-pidfd.conf'
c systemctl daemon-reload
c systemctl stop svckit-example-calc.service svckit-example-calc.socket
check "calc: the socket starts again without PassPIDFD" c systemctl start svckit-example-calc.socket
equals "calc: ...and its unit says PassPIDFD=no" "$(c systemctl show -P PassPIDFD svckit-example-calc.socket)" no
out=$(vl call --json=short "$calc" io.svckit.example.Calc.Sum '{"values":[]}')
exits "calc without PassPIDFD: the call fails" "$?" nonzero "$out"
lacks "calc without PassPIDFD: ...with no result" "$out" '"sum"'
check "calc without PassPIDFD: the journal names the unit line" \
    wait_for 60 sh -c "dev/root exec $name journalctl -b -u svckit-example-calc.service --no-pager | grep -q \"add 'PassPIDFD=yes'\""
c rm -r /run/systemd/system/svckit-example-calc.socket.d
c systemctl daemon-reload
c systemctl reset-failed svckit-example-calc.service svckit-example-calc.socket >/dev/null 2>&1
c systemctl restart svckit-example-calc.socket
equals "calc with the unit fixed answers again" \
    "$(vl call --json=short "$calc" io.svckit.example.Calc.Sum '{"values":[2]}')" '{"sum":2,"count":1}'

summary
