#!/usr/bin/env bash
# End-to-end: 10 000 concurrent idle varlink connections to the bench example, socket-activated by a real
# systemd >= 258 booted as PID 1 in the dev root's container, from its own units (docs/service.md, "Limits:
# scale"). The connections come from 10 uids (1000 each, under the per-UID cap of 1024, so that cap does not
# decide it); the service runs with --max-connections (above the default 4096) through a drop-in that also
# sets the LimitNOFILE= the binary's own --print-units asks for with that option.
#
# Two rounds, each on a freshly started service: connections that make no call (reported), and connections
# that make ONE call each and then stay idle (checked). For each: the service's RSS (VmRSS) and fd count before
# and with all connections open, RSS per connection, then all closed: the time a newcomer's call takes to be
# answered, and the fd count back to its baseline. The figures are in the check names.
#   tests/e2e/varlink_scale.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_varlink_scale
. tests/lib/check.sh

uids=60001-60010
uid_count=10
per_uid=1000
total=$((uid_count * per_uid))
max_connections=12000
rss_per_connection_max=16384 # bytes (issue: <= 16 KiB per idle connection)
rss_total_max=$((200 * 1024 * 1024))
newcomer_max_ms=5000 # a generous bound, not a speed test: the figure itself is printed

[ -x "$build/examples/bench/svckit-example-bench" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-scale-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }

socket=/run/svckit-example-bench.sock
unit=svckit-example-bench.service
client=/src/tests/e2e/varlink_scale_client.py
state=/run/svckit-scale

check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"

# The drop-in: the option, and the LimitNOFILE= that --print-units writes for it (2 fds per connection).
limit=$(c sh -ec "d=\$(mktemp -d); svckit-example-bench --max-connections=$max_connections --print-units=\$d >/dev/null
    sed -n 's/^LimitNOFILE=//p' \$d/$unit")
# 2 fds per connection, the reserve of 64 and the listening socket (svckit/internal/fd_limits.hpp).
equals "--print-units with --max-connections=$max_connections asks for LimitNOFILE=$limit" \
    "$limit" $((65 + 2 * max_connections))
[ -n "$limit" ] || bail "--print-units with --max-connections=$max_connections writes LimitNOFILE="
out=$(c svckit-example-bench --max-connections=0 --print-units 2>&1)
exits "--max-connections=0 is a usage error" "$?" 2 "$out"
c mkdir -p /run/systemd/system/$unit.d
c sh -c "printf '[Service]\nExecStart=\nExecStart=/usr/bin/svckit-example-bench --max-connections=$max_connections\nLimitNOFILE=$limit\n' \
    >/run/systemd/system/$unit.d/scale.conf"
c systemctl daemon-reload
v=$(c systemd-analyze verify /usr/lib/systemd/system/$unit 2>&1)
equals "systemd-analyze verify $unit with the drop-in prints nothing" "$v" ""
check "the socket starts" c systemctl start svckit-example-bench.socket

main_pid() { c systemctl show -P MainPID $unit; }
fd_count() { c sh -c "ls /proc/$1/fd | wc -l"; }
rss_kib() { c awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
nofile() { c awk '/^Max open files/ { print $4 }' "/proc/$1/limits"; }
fds_at_most() { [ "$(fd_count "$1")" -le "$2" ]; }
fds_at_least() { [ "$(fd_count "$1")" -ge "$2" ]; }
ready() { c test -e $state/ready; }
closed() { c test -e $state/closed; }
kib() { echo $((($1 + 512) / 1024)); }

# round LABEL [--no-call]: one round on a freshly activated service.
round() {
    local label=$1 nocall=${2:-} out pid fd0 rss0 fd1 rss1 got growth per ms client_unit=svckit-scale-client
    c systemctl stop $unit >/dev/null 2>&1
    c rm -rf $state
    out=$(c python3 $client call $socket 2>&1)
    contains "$label: the first call activates the service" "$out" "ms="
    pid=$(main_pid)
    if [ -z "$pid" ] || [ "$pid" = 0 ]; then flunk "$label: the service runs (MainPID '$pid')"; return; fi
    # The service's soft limit is the hard one (raised at start): LimitNOFILE=, unless the container's own
    # hard limit is lower (systemd as PID 1 cannot go above it). Where even that is short of 10 000
    # connections (2 fds each, and the service's reserve of 64 and its socket: fd_limits.hpp), the service
    # lowers its cap to what fits, and so does this test, saying so.
    local have
    have=$(nofile "$pid")
    echo "# $label: the service's RLIMIT_NOFILE: $have (the unit asks for $limit)"
    if [ $((65 + 2 * total)) -gt "$have" ]; then
        per_uid=$(((have - 65) / 2 / uid_count))
        total=$((per_uid * uid_count))
        echo "# NOTE: RLIMIT_NOFILE $have (the container's hard limit) fits no more than $(((have - 65) / 2))" \
            "connections: $uid_count x $per_uid = $total connections instead of 10000"
    fi
    pass "$label: the service runs with RLIMIT_NOFILE $have, room for $total connections"
    fd0=$(fd_count "$pid")
    rss0=$(rss_kib "$pid")
    echo "# $label: before: fds $fd0, VmRSS $rss0 KiB"

    # The client in a unit of its own; it raises its own fd limit (root) for its children.
    c systemctl reset-failed $client_unit >/dev/null 2>&1
    check "$label: the client starts ($total connections from uids $uids)" \
        c systemd-run --quiet --unit=$client_unit --service-type=exec -p LimitNOFILE=4096 \
        python3 $client hold $socket $state --uids=$uids --per-uid=$per_uid ${nocall:+"$nocall"}
    if ! wait_for 150 ready; then
        flunk "$label: the client opens its connections" \
            "$(c journalctl -b -u $client_unit --no-pager 2>&1 | tail -n 20)"
        c systemctl stop $client_unit
        return
    fi
    got=$(c cat $state/ready)
    echo "# $label: client: $got"
    contains "$label: all $total connections are open" "$got" "connected=$total "
    if [ -z "$nocall" ]; then
        contains "$label: all $total connections made their call and got its answer" "$got" "served=$total failed=0"
    else
        contains "$label: no connection failed" "$got" "failed=0"
    fi
    # Accepted by the service: 2 fds each (socket and pidfd). A call answered proves its connection accepted;
    # without calls, this is the proof.
    check "$label: the service holds all $total connections (fds >= $fd0 + 2 x $total)" \
        wait_for 60 fds_at_least "$pid" $((fd0 + 2 * total))
    fd1=$(fd_count "$pid")
    rss1=$(rss_kib "$pid")
    growth=$(((rss1 - rss0) * 1024))
    per=$((growth / total))
    echo "# $label: with $total idle connections: fds $fd1, VmRSS $rss1 KiB (+$(kib $growth) KiB), $per bytes per connection"
    if [ -z "$nocall" ]; then
        if [ "$per" -le $rss_per_connection_max ]; then
            pass "$label: RSS per idle connection $per B <= $rss_per_connection_max B"
        else
            flunk "$label: RSS per idle connection $per B <= $rss_per_connection_max B"
        fi
        if [ "$growth" -lt $rss_total_max ]; then
            pass "$label: RSS growth $((growth / 1024 / 1024)) MiB for $total connections < 200 MiB"
        else
            flunk "$label: RSS growth $((growth / 1024 / 1024)) MiB for $total connections < 200 MiB"
        fi
    else
        pass "$label: RSS per idle connection $per B (reported; RSS growth $((growth / 1024 / 1024)) MiB)"
    fi

    # All close at once; then one newcomer, timed.
    c sh -c "kill -USR1 \$(cat $state/pid)"
    check "$label: the client closes all its connections" wait_for 120 closed
    out=$(c python3 $client call $socket 2>&1)
    ms=$(sed -n 's/^ms=//p' <<<"$out")
    if [ -n "$ms" ] && [ "${ms%.*}" -lt $newcomer_max_ms ]; then
        pass "$label: a newcomer after all closed is answered in $ms ms (< $newcomer_max_ms ms)"
    else
        flunk "$label: a newcomer after all closed is answered (< $newcomer_max_ms ms): '$ms'" "$out"
    fi
    check "$label: the service's fds return to their baseline ($fd0)" wait_for 60 fds_at_most "$pid" "$fd0"
    echo "# $label: after close: fds $(fd_count "$pid"), VmRSS $(rss_kib "$pid") KiB"
    equals "$label: the same service process served the round" "$(main_pid)" "$pid"
    wait_for 30 sh -c "! dev/root exec $name systemctl is-active -q $client_unit" ||
        c systemctl stop $client_unit
}

round "no call" --no-call
round "one call"

summary
