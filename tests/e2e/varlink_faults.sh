#!/usr/bin/env bash
# End-to-end: faults under a real systemd >= 258 booted as PID 1 in the dev root's container, with a small
# test-only service (tests/e2e/fault_service: Sleep(ms) answered later from a timer through Call::defer(),
# exitOnIdle of 200 ms, PassPIDFD=yes) activated by the units it prints from its spec. The callers are
# tests/e2e/fault_service/client.py in units of their own (systemd-run), each call with a deadline so that a
# hang fails a check instead of stalling the script; they count replies, errors and hangs.
#   1. SIGTERM (systemctl stop) while 16 calls are in flight and others keep arriving: every call gets its
#      reply (16/16, and none of the others lost), the service exits 0, the next call activates it again.
#      And SIGTERM while the loop is busy and 8 callers have just connected and written their call: each is
#      answered, by the stopping instance if it had accepted them, by the next one otherwise.
#   2. SIGKILL (systemctl kill -s KILL) under load: every caller sees a reply or an error before its deadline,
#      none hangs; the socket stays listening and the next call activates the service again.
#   3. Exit-on-idle racing new connections: 300 calls at gaps around the 200 ms of exit-on-idle are all
#      answered while the service exits on idle and is activated again many times meanwhile.
#   tests/e2e/varlink_faults.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_varlink_faults
. tests/lib/check.sh

service=svckit-e2e-faults
binary=/src/$build/tests/e2e/fault_service/$service
[ -x "$build/tests/e2e/fault_service/$service" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-faults-$$
tmp=$(mktemp -d)
at_exit 'rm -rf "$tmp"'
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# PID 1 logs to the console here: into the journal instead, for its view of each exit ("Deactivated
# successfully", "Main process exited, code=killed").
c systemd-analyze set-log-target journal
# A command in a unit of its own, as a real caller; its stdout and stderr are ours, its exit status too.
as_unit() { c systemd-run --quiet --wait --pipe --collect --service-type=exec -p RuntimeMaxSec=120 "$@"; }
sock=/run/$service.sock
# client.py MODE ARGS... (see the file); every call has its own deadline, shorter than RuntimeMaxSec=.
client() { as_unit python3 /src/tests/e2e/fault_service/client.py "$1" "$sock" "${@:2}"; }
show() { c systemctl show -P "$1" "$service.${2:-service}"; }
journal() { c journalctl -b -q -o cat -u "$service.service" --no-pager; }
# The pid a Pid() call returns (empty if the call failed).
pid_call() { as_unit varlinkctl call --timeout=30 --json=short "$sock" io.svckit.test.Faults.Pid '{}' 2>&1 |
    sed -n 's/^{"pid":\([0-9]*\)}$/\1/p'; }
# Waits until the service says N calls are pending (its STATUS=).
pending() { wait_for 60 sh -c "[ \"\$(dev/root exec $name systemctl show -P StatusText $service.service)\" = '$1 call(s) pending' ]"; }

check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"
# The units are the ones the service prints from its spec, ExecStart= naming the binary in the build directory.
check "$service prints its units into /run/systemd/system" c "$binary" --print-units=/run/systemd/system
contains "...whose ExecStart= is the built binary" "$(c cat /run/systemd/system/$service.service)" "ExecStart=$binary"
# systemd allows 5 starts in 10 s by default (StartLimitBurst=, DefaultStartLimitBurst=): scenario 3 has the
# service exit on idle and start again far more often than that, on purpose, so the test lifts the limit.
c mkdir -p "/run/systemd/system/$service.service.d"
c sh -c "printf '[Unit]\nStartLimitIntervalSec=0\n' >/run/systemd/system/$service.service.d/no-start-limit.conf"
c systemctl daemon-reload
check "the socket starts" c systemctl start "$service.socket"
equals "the socket carries PassPIDFD=yes" "$(show PassPIDFD socket)" yes
equals "the service is not running before the first call" "$(c systemctl is-active $service.service)" inactive

# --- 1. SIGTERM while 16 calls are in flight, and others keep arriving
client concurrent 16 2000 60 >"$tmp/term16" 2>&1 &
term16=$!
check "SIGTERM: 16 calls of 2 s are in flight in the service" pending 16
pid=$(show MainPID)
# Callers that keep calling through the stop: each call is answered by this instance or, once it no longer
# accepts, waits in the socket's queue for the next one.
client load 8 30 >"$tmp/termload" 2>&1 &
termload=$!
check "SIGTERM: the callers under load have had a reply" wait_for 60 grep -q "first reply" "$tmp/termload"
equals "SIGTERM: ...and the 16 calls are still in flight" "$(show StatusText)" "16 call(s) pending"
t0=$(date +%s%N)
stop_out=$(c systemctl stop "$service.service" 2>&1)
exits "SIGTERM: systemctl stop returns" "$?" 0 "$stop_out"
echo "# SIGTERM: systemctl stop took $((($(date +%s%N) - t0) / 1000000)) ms (the calls in flight had up to 2 s to go)"
wait "$term16"
out=$(cat "$tmp/term16")
contains "SIGTERM: every call in flight got its reply: 16/16" "$out" "replies=16 errors=0 hangs=0"
# (Its exit status is read from the journal: callers under load may have activated it again since.)
log=$(journal)
contains "SIGTERM: the service stopped cleanly" "$log" "$service.service: Deactivated successfully"
lacks "SIGTERM: ...with status 0" "$log" "Main process exited"
contains "SIGTERM: stop() ran with the 16 calls pending" "$log" "faults: pid $pid stop() with 16 call(s) pending"
contains "SIGTERM: ...and the process answered them all before it exited" "$log" "faults: pid $pid answered"
[[ $log =~ faults:\ pid\ $pid\ answered\ [0-9]+\ call\(s\),\ left\ ([0-9]+)\ unanswered ]]
equals "SIGTERM: ...none left unanswered at exit" "${BASH_REMATCH[1]:-missing}" 0
wait "$termload"
out=$(cat "$tmp/termload")
echo "# SIGTERM: the callers under load: $(tail -n 1 <<<"$out")"
contains "SIGTERM: no call of the callers under load was lost or hung" "$out" " errors=0 hangs=0"
lacks "SIGTERM: ...none saw an error" "$out" "errors:"
next=$(pid_call)
check "SIGTERM: the next call is answered" test -n "$next"
check "SIGTERM: ...by a new activation (pid $next, was $pid)" test "${next:-0}" != "$pid"

# --- 1b. SIGTERM while the loop is busy and callers have just connected: a call the service accepted before
# the signal is served; one it did not accept waits in the socket's queue for the next activation. The
# service blocks its loop (Block), 8 callers connect and write their call meanwhile, SIGTERM arrives; when the
# loop goes on it has the signal and the waiting callers at once.
c systemctl stop "$service.service" 2>/dev/null # a fresh instance: its count of answers is this scenario's
client concurrent 1 3000 60 Block >"$tmp/block" 2>&1 &
block=$!
check "SIGTERM, busy loop: the service blocks its loop" \
    wait_for 60 sh -c "[ \"\$(dev/root exec $name systemctl show -P StatusText $service.service)\" = 'blocking the loop' ]"
pid=$(show MainPID)
client concurrent 8 0 60 >"$tmp/queued" 2>&1 &
queued=$!
check "SIGTERM, busy loop: 8 more callers have connected and written their call" wait_for 60 grep -q "sent 8" "$tmp/queued"
check "SIGTERM, busy loop: systemctl kill -s TERM" c systemctl kill -s TERM "$service.service"
equals "SIGTERM, busy loop: ...which arrived while the loop was still blocked" "$(show StatusText)" "blocking the loop"
wait "$block" "$queued"
contains "SIGTERM, busy loop: the blocking call got its reply" "$(cat "$tmp/block")" "replies=1 errors=0 hangs=0"
out=$(cat "$tmp/queued")
contains "SIGTERM, busy loop: every one of the 8 callers got its reply" "$out" "replies=8 errors=0 hangs=0"
echo "# SIGTERM, busy loop: the 8 callers: $(tail -n 1 <<<"$out") (pids: those that served them)"
check "SIGTERM, busy loop: the service stopped" wait_for 60 sh -c "! dev/root exec $name kill -0 $pid"
[[ $(journal) =~ faults:\ pid\ $pid\ answered\ ([0-9]+)\ call\(s\),\ left\ ([0-9]+) ]]
echo "# SIGTERM, busy loop: the stopped instance answered ${BASH_REMATCH[1]:-?} call(s) (the Block call and the callers it had accepted), left ${BASH_REMATCH[2]:-?} unanswered"

# --- 2. SIGKILL under load
client concurrent 16 5000 60 >"$tmp/kill16" 2>&1 &
kill16=$!
check "SIGKILL: 16 calls of 5 s are in flight in the service" pending 16
pid=$(show MainPID)
client load 8 30 >"$tmp/killload" 2>&1 &
killload=$!
check "SIGKILL: the callers under load have had a reply" wait_for 60 grep -q "first reply" "$tmp/killload"
equals "SIGKILL: ...and the 16 calls are still in flight" "$(show StatusText)" "16 call(s) pending"
check "SIGKILL: systemctl kill -s KILL" c systemctl kill -s KILL "$service.service"
wait "$kill16"
out=$(cat "$tmp/kill16")
contains "SIGKILL: every call in flight ended with an error, none hung" "$out" "replies=0 errors=16 hangs=0"
equals "SIGKILL: systemd saw the signal" "$(c journalctl -b -q -o cat -u $service.service --no-pager | grep -c "Main process exited, code=killed, status=9/KILL")" 1
wait "$killload"
out=$(cat "$tmp/killload")
echo "# SIGKILL: the callers under load: $(tail -n 1 <<<"$out")"
contains "SIGKILL: no caller under load hung" "$out" " hangs=0"
equals "SIGKILL: the socket still listens" "$(show ActiveState socket)" active
next=$(pid_call)
check "SIGKILL: the next call is answered" test -n "$next"
check "SIGKILL: ...by a new activation (pid $next, was $pid)" test "${next:-0}" != "$pid"

# --- 3. exit-on-idle racing new connections
c systemctl stop "$service.service" 2>/dev/null
c systemctl reset-failed "$service.service" >/dev/null 2>&1
before=$(journal | grep -c 'serving$')
idle_before=$(journal | grep -c 'No connection for 200 ms')
# Gaps from well under to well over the 200 ms: the service exits at every long one, and the short ones land
# around the moment its idle timer fires.
t0=$SECONDS
client sequence 300 30 120 160 180 190 195 200 205 210 220 240 300 >"$tmp/idle" 2>&1
out=$(cat "$tmp/idle")
contains "exit-on-idle: every one of 300 calls was answered" "$out" "replies=300 errors=0 hangs=0"
activations=$(($(journal | grep -c 'serving$') - before))
idles=$(($(journal | grep -c 'No connection for 200 ms') - idle_before))
echo "# exit-on-idle: $(tail -n 1 <<<"$out") in $((SECONDS - t0)) s; $idles exits on idle, $activations activations"
check "exit-on-idle: the service exited on idle many times meanwhile ($idles)" test "$idles" -ge 10
check "exit-on-idle: ...and was activated again each time ($activations activations)" test "$activations" -ge "$idles"
lacks "exit-on-idle: systemd never refused to start it" "$(c journalctl -b -q -o cat -u "$service.*" --no-pager)" "start-limit"

summary
