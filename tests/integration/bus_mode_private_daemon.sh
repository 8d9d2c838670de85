#!/usr/bin/env bash
# Bus mode against a private dbus-daemon (a system bus of its own, DBUS_SYSTEM_BUS_ADDRESS), without systemd:
# the test-only bus service (tests/e2e/dbus_bus_service) owns its name once READY=1 and answers; a second
# instance cannot own the taken name and fails to start, saying so; when the daemon goes away the service exits
# with status 1 ("Lost the connection to the system bus"). The generated policy file is the daemon's policy.
#   bus_mode_private_daemon.sh SERVICE_BINARY CALLERS_CLIENT   (tests/integration/bus_callers_client.cpp)
set -u
binary=$1
client=$2
check_name=bus_mode_private_daemon
. "$(dirname "$0")/../lib/check.sh"
command -v dbus-daemon >/dev/null || skip "no dbus-daemon here (the dev root has it)"
[ "$(id -u)" = 0 ] || skip "the generated policy lets root own the name: run as root (the dev root does)"

dir=$(mktemp -d)
daemon=
service=
at_exit 'for p in $service $daemon; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"'
name=org.svckit.test.BusProbe1
check "the service writes its files" "$binary" --print-units="$dir/out"
cat >"$dir/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>$dir/out/dbus-1/system.d/$name.conf</include>
</busconfig>
XML
dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile --nosyslog --print-address=1 \
    >"$dir/address" 2>"$dir/daemon.err" &
daemon=$!
wait_for 30 test -s "$dir/address" || bail "the private dbus-daemon starts" "$(cat "$dir/daemon.err")"
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/bus
owner() { busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s "$name"; }

"$binary" >"$dir/service.out" 2>"$dir/service.err" &
service=$!
if wait_for 30 owner; then pass "the service owns $name"; else flunk "the service owns $name" "$(cat "$dir/service.err")"; fi
out=$(busctl --system call "$name" /org/svckit/test/BusProbe1 org.svckit.test.BusProbe1 Whoami 2>&1)
contains "it answers root's busctl" "$out" "uibss 0 "
# Each caller is itself, not a sender seen before (identities are kept per unique name): three busctl
# processes, each told its own pid, pinned (dbus-daemon 1.16 gives ProcessFD).
for i in 1 2 3; do
    out=$(sh -c 'echo "pid=$$"; exec busctl --system call '"$name"' /org/svckit/test/BusProbe1 org.svckit.test.BusProbe1 Whoami' 2>&1)
    pid=$(sed -n 's/^pid=//p' <<<"$out")
    contains "caller $i: Whoami names this busctl (pid $pid), pinned" "$out" "uibss 0 $pid true "
done
# Two senders at once: the parent's identity is known to the service while its child calls.
out=$("$client" "$name" /org/svckit/test/BusProbe1 org.svckit.test.BusProbe1 2>&1)
for who in parent child parent-again; do
    line=$(grep "^$who " <<<"$out")
    read -r _ own reported pinned <<<"$line"
    equals "$who: reported as itself (pid ${own:-?}), pinned, while another sender is known" \
        "$reported $pinned" "${own:-none} true"
done
out=$(busctl --system call "$name" /org/svckit/test/BusProbe1 org.svckit.test.BusProbe1.Admin Secret 2>&1)
contains "root, the owner, may call the Admin interface" "$out" 's "secret"'

out=$(timeout 60 "$binary" 2>&1)
rc=$?
exits "a second instance fails to start" "$rc" 1 "$out"
contains "...saying the name is taken or not allowed" "$out" "Failed to own the name '$name' on the system bus"

out=$(timeout 60 "$binary" --listen="$dir/x.sock" 2>&1)
rc=$?
exits "--listen=PATH on a bus-only service is refused" "$rc" 1 "$out"
contains "...saying it has no socket" "$out" "has no socket, only the bus name '$name'"

kill "$daemon"
wait "$daemon" 2>/dev/null
daemon=
deadline=$((SECONDS + 60))
while kill -0 "$service" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
wait "$service"
rc=$?
service=
exits "without its bus the service exits with status 1" "$rc" 1 "$(cat "$dir/service.err")"
contains "...saying why" "$(cat "$dir/service.err")" "Lost the connection to the system bus: exiting"
summary
