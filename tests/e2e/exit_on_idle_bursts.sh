#!/usr/bin/env bash
# End-to-end: an exit-on-idle service survives bursty callers under a real systemd >= 258 (PID 1 in the dev
# root's container). svckit-example-calc, started with --exit-on-idle=500 (a drop-in), gets 50 bursts of 8
# concurrent varlinkctl calls, exiting on idle between bursts (the script waits for it to be inactive): every
# call is answered, none is reset, the socket stays active, and systemd started the service once per burst,
# never restarting it. First the same load against systemd's default start limit (5 starts in 10 s, which the
# generated unit raises to what exit-on-idle can reach): the service hits it, and its socket fails with it.
#   tests/e2e/exit_on_idle_bursts.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_exit_on_idle_bursts
. tests/lib/check.sh

[ -x "$build/examples/calc/svckit-example-calc" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-bursts-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }

unit=svckit-example-calc
socket=/run/svckit-example-calc.sock
bursts=50
clients=8

# bursts N CLIENTS STOP_ON_FAILURE: in the container, N times: wait (poll) until the service is inactive, then
# CLIENTS concurrent calls; one line per call: "answered B C" or "failed B C: ERROR". With STOP_ON_FAILURE=1 it
# stops after the first burst with a failure.
burst_script='
n=$1 clients=$2 stop=$3 unit=$4 socket=$5
for b in $(seq 1 "$n"); do
    deadline=$((SECONDS + 60))
    until [ "$(systemctl is-active "$unit.service")" != active ] &&
        [ "$(systemctl is-active "$unit.service")" != deactivating ]; do
        [ $SECONDS -ge $deadline ] && { echo "timeout B: $unit.service still active after 60 s"; break; }
        sleep 0.05
    done
    for k in $(seq 1 "$clients"); do
        varlinkctl call --json=short --timeout=60 "$socket" io.svckit.example.Calc.Apply \
            "{\"op\":\"add\",\"a\":$b,\"b\":$k}" >"/tmp/burst.$k" 2>&1 &
    done
    wait
    bad=0
    for k in $(seq 1 "$clients"); do
        if [ "$(cat "/tmp/burst.$k")" = "{\"result\":$((b + k))}" ]; then echo "answered $b $k"
        else echo "failed $b $k: $(tr "\n" " " <"/tmp/burst.$k")"; bad=1; fi
    done
    [ "$stop" = 1 ] && [ $bad = 1 ] && break
done
exit 0'
run_bursts() { c bash -c "$burst_script" _ "$1" "$clients" "$2" "$unit" "$socket"; }
# How often the service logged TEXT: each start logs "NAME VERSION: serving ...", each exit on idle "No
# connection for 500 ms: exiting until the next one" (journald writes asynchronously: poll for a count).
logged() { c sh -c 'journalctl -b -q -o cat _SYSTEMD_UNIT="$1" | grep -cF -- "$2"' _ "$unit.service" "$1"; }

check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"
# The units of the spec with a 500 ms exit-on-idle (in /run, before the installed ones), and a drop-in that
# starts the service with it.
check "the units of calc with --exit-on-idle=500 are written into /run/systemd/system" \
    c "$unit" --exit-on-idle=500 --print-units=/run/systemd/system
check "a drop-in starts the service with --exit-on-idle=500" c sh -c "mkdir -p /run/systemd/system/$unit.service.d &&
    printf '[Service]\nExecStart=\nExecStart=/usr/bin/$unit --exit-on-idle=500\n' >/run/systemd/system/$unit.service.d/50-idle.conf &&
    systemctl daemon-reload"
equals "the generated unit raises the start limit to 10 s / 500 ms + 6 starts in 10 s" \
    "$(c systemctl show -P StartLimitBurst $unit.service) $(c systemctl show -P StartLimitIntervalUSec $unit.service)" "26 10s"

# --- systemd's default start limit, as the unit had it before: the bursts take the service and its socket down
c sh -c "printf '[Unit]\nStartLimitIntervalSec=10s\nStartLimitBurst=5\n' >/run/systemd/system/$unit.service.d/60-default-limit.conf &&
    systemctl daemon-reload"
check "the sockets start (default start limit)" c systemctl start $unit.socket $unit-dbus.socket
out=$(run_bursts 10 1)
refused=$(grep -c "^failed" <<<"$out")
check "with the default start limit a burst fails (the start limit is hit within 10 bursts)" test "$refused" -gt 0
echo "# default start limit: $(grep -c '^answered' <<<"$out") answered, $refused failed; first failures:"
grep -m 3 '^failed' <<<"$out" | sed 's/^/#   /'
equals "...the service's result is start-limit-hit" "$(c systemctl show -P Result $unit.service)" start-limit-hit
check "...and its socket failed with it" wait_for 30 c systemctl is-failed --quiet $unit.socket

# --- the generated unit: no start limit
c sh -c "rm /run/systemd/system/$unit.service.d/60-default-limit.conf && systemctl daemon-reload &&
    systemctl reset-failed $unit.service $unit.socket $unit-dbus.socket"
check "the sockets start (the generated units)" c systemctl start $unit.socket $unit-dbus.socket
starts=$(logged ": serving ")
idles=$(logged "exiting until the next one")
out=$(run_bursts "$bursts" 0)
answered=$(grep -c '^answered' <<<"$out")
equals "$bursts bursts of $clients concurrent calls: every call answered" "$answered" $((bursts * clients))
equals "...none failed" "$(grep -v '^answered' <<<"$out" | head -n 5)" ""
lacks "...none was reset" "$out" "reset"
equals "the socket is still active" "$(c systemctl is-active $unit.socket)" active
check "the service exited on idle after the last burst" \
    wait_for 60 sh -c "[ \"\$(dev/root exec $name systemctl is-active $unit.service)\" = inactive ]"
equals "...having succeeded (Result)" "$(c systemctl show -P Result $unit.service)" success
equals "systemd never restarted it (NRestarts)" "$(c systemctl show -P NRestarts $unit.service)" 0
equals "the socket refused no connection (NRefused)" "$(c systemctl show -P NRefused $unit.socket)" 0
# (One start per burst: every burst found it inactive, and its calls came within the idle time.)
deadline=$((SECONDS + 30))
until [ $(($(logged ": serving ") - starts)) -ge "$bursts" ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
equals "it was started once per burst" "$(( $(logged ": serving ") - starts ))" "$bursts"
equals "...and exited on idle once per burst" "$(( $(logged "exiting until the next one") - idles ))" "$bursts"
lacks "the journal never mentions the start limit" "$(c journalctl -b -q -o cat -u "$unit.*" --no-pager | tail -n 2000)" \
    "start-limit"

summary
