#!/usr/bin/env bash
# End-to-end: calc's peer-to-peer D-Bus endpoint (org.svckit.example.Calc1, examples/calc) socket-activated by
# a real systemd >= 258 booted as PID 1 in the dev root's container, with the units the binary prints itself
# (units/), called by busctl --address=unix:path=... (no bus daemon) from units of its own (systemd-run), checked
# from outside: the handler sees busctl's own pid and cgroup, pinned by a pidfd; fds pass where the socket
# accepts them; Reset is root only (AccessDenied); introspection works.
#   tests/e2e/dbus_p2p.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_dbus_p2p
. tests/lib/check.sh

[ -x "$build/examples/calc/svckit-example-calc" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-dbus-p2p-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# A command in a unit of its own, as a real caller; its stdout and stderr are ours, its exit status too. A call
# that hangs fails after RuntimeMaxSec= instead of stalling the script.
as_unit() { c systemd-run --quiet --wait --pipe --collect --service-type=exec --expand-environment=no \
    -p RuntimeMaxSec=120 "$@"; }

socket=/run/svckit-example-calc-dbus.sock
address=unix:path=$socket
# busctl needs a valid destination to send to; a peer-to-peer server ignores it.
dest=org.svckit.example.Calc1
path=/org/svckit/example/Calc1
iface=org.svckit.example.Calc1
# busctl in a unit of its own, as root: bc BUSCTL_ARGS...
bc() { as_unit busctl --address="$address" "$@" 2>&1; }

check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"
c systemctl daemon-reload

# The installed units are the ones the binary prints from its spec, among them the D-Bus socket's own unit, and
# systemd 262 finds nothing to say about any of them.
out=$(c sh -ec 'd=$(mktemp -d); svckit-example-calc --print-units=$d >&2; cd $d
    for f in *; do cmp $f /usr/lib/systemd/system/$f; done; echo units:; ls' 2>&1)
rc=$?
units=$(sed -n '/^units:$/,$p' <<<"$out" | tail -n +2)
exits "installed units are what --print-units writes ($(echo $units))" "$rc" 0 "$out"
contains "...among them the D-Bus socket's unit" "$units" "svckit-example-calc-dbus.socket"
for unit in $units; do
    v=$(c systemd-analyze verify "/usr/lib/systemd/system/$unit" 2>&1)
    equals "systemd-analyze verify $unit prints nothing" "$v" ""
done
unit=$(c cat /usr/lib/systemd/system/svckit-example-calc-dbus.socket)
contains "the D-Bus socket's unit listens on $socket" "$unit" "ListenStream=$socket"
contains "...names its fd 'dbus'" "$unit" "FileDescriptorName=dbus"
contains "...passes pidfds" "$unit" "PassPIDFD=yes"
contains "...accepts fds" "$unit" "AcceptFileDescriptors=yes"
contains "...and starts calc's one service" "$unit" "Service=svckit-example-calc.service"

check "the sockets start" c systemctl start svckit-example-calc.socket svckit-example-calc-dbus.socket
equals "svckit-example-calc.service is not running before the first call" \
    "$(c systemctl is-active svckit-example-calc.service)" inactive

# --- method calls
out=$(bc call $dest $path $iface Apply sxx add 40 2)
equals "Apply add 40 2 over p2p D-Bus (busctl --address)" "$out" "x 42"
equals "the first D-Bus call activated the service" "$(c systemctl is-active svckit-example-calc.service)" active
equals "Apply divide -9 2" "$(bc call $dest $path $iface Apply sxx divide -- -9 2)" "x -4"
out=$(bc call $dest $path $iface Apply sxx divide 1 0)
contains "Apply divide by zero fails with the interface's error" "$out" "Division by zero"
out=$(bc call $dest $path $iface Apply sxx power 1 2)
contains "an unknown operation is refused" "$out" "Unknown operation 'power'"
equals "Sum" "$(bc call $dest $path $iface Sum ax 4 1 2 3 36)" "xx 42 4"
equals "Fibonacci returns the numbers as one array" "$(bc call $dest $path $iface Fibonacci x 6)" "ax 6 0 1 1 2 3 5"

# --- the caller the handler sees is the busctl process itself (the shell execs it, keeping its pid)
out=$(as_unit sh -c 'echo "pid=$$"; echo "cgroup=$(sed -n "s/^0:://p" /proc/self/cgroup)"; exec busctl --address='"$address"' call '"$dest $path $iface"' Caller' 2>&1)
pid=$(sed -n 's/^pid=//p' <<<"$out")
cgroup=$(sed -n 's/^cgroup=//p' <<<"$out")
reply=$(grep '^uuusb' <<<"$out")
[ -n "$pid" ] && [ -n "$cgroup" ] || flunk "the caller's unit reports its pid and cgroup" "$out"
equals "Caller: the handler sees root, busctl's pid ($pid) and cgroup, pinned by its pidfd" \
    "$reply" "uuusb 0 0 $pid \"$cgroup\" true"
out=$(as_unit -p User=nobody sh -c 'echo "pid=$$"; exec busctl --address='"$address"' call '"$dest $path $iface"' Caller' 2>&1)
pid=$(sed -n 's/^pid=//p' <<<"$out")
contains "Caller from another user (nobody): its uid, gid and pid" "$out" "uuusb 65534 65534 $pid "

# --- fds: the socket accepts them (AcceptFileDescriptors=yes) and SumFile reads one (pipe and regular file).
# busctl takes the fd of an 'h' argument from those passed to it the systemd way (LISTEN_FDS, from fd 3): the
# helper passes its stdin as fd 3.
c sh -c 'printf "%s\n" "#!/bin/sh" "exec 3<&0 0</dev/null" "export LISTEN_FDS=1 LISTEN_PID=\$\$" "exec busctl \"\$@\"" \
    >/tmp/busctl-stdin-as-fd3 && chmod +x /tmp/busctl-stdin-as-fd3'
c sh -c 'printf "1\n2\n\n39\n" >/tmp/numbers'
out=$(as_unit sh -c "/tmp/busctl-stdin-as-fd3 --address=$address call $dest $path $iface SumFile h 3 </tmp/numbers" 2>&1)
equals "SumFile reads a regular file passed with the call" "$out" "xx 42 3"
out=$(as_unit sh -c "cat /tmp/numbers | /tmp/busctl-stdin-as-fd3 --address=$address call $dest $path $iface SumFile h 3" 2>&1)
equals "SumFile reads a pipe passed with the call" "$out" "xx 42 3"
c sh -c 'printf "1\nzwei\n" >/tmp/bad'
out=$(as_unit sh -c "/tmp/busctl-stdin-as-fd3 --address=$address call $dest $path $iface SumFile h 3 </tmp/bad" 2>&1)
contains "SumFile: a line that is no integer is BadLine" "$out" "Line 2 is not an integer: 'zwei'"

# --- the property, and a method only root may call
calls=$(bc get-property $dest $path $iface Calls)
[[ $calls =~ ^t\ [1-9][0-9]*$ ]] && pass "the property Calls counts the calls so far ($calls)" ||
    flunk "the property Calls counts the calls so far: got '$calls'"
out=$(as_unit -p User=nobody busctl --address="$address" call $dest $path $iface Reset 2>&1)
rc=$?
contains "Reset from another user (nobody) is AccessDenied" "$out" "Access denied"
exits "...and busctl fails" "$rc" nonzero "$out"
out=$(bc get-property $dest $path $iface Calls)
[[ $out =~ ^t\ [0-9]+$ ]] && [ "$out" = "$calls" ] && pass "...and Calls is left alone ($out)" ||
    flunk "...and Calls is left alone: got '$out', want '$calls'"
out=$(bc call $dest $path $iface Reset)
exits "Reset from root succeeds" "$?" 0 "$out"
equals "...and Calls is 0" "$(bc get-property $dest $path $iface Calls)" "t 0"

# --- introspection
out=$(bc introspect $dest $path)
contains "busctl introspect lists the interface" "$out" "$iface"
contains "...its methods" "$out" ".SumFile"
contains "...its signal" "$out" ".Computed"
contains "...its property, announced on change" "$out" ".Calls"
contains "...and the standard interfaces" "$out" "org.freedesktop.DBus.Properties"

# --- one Service, both protocols: the varlink socket of the same process answers, counted by the same Calculator
main=$(c systemctl show -P MainPID svckit-example-calc.service)
out=$(as_unit varlinkctl call --json=short /run/svckit-example-calc.sock io.svckit.example.Calc.Apply '{"op":"add","a":40,"b":2}' 2>&1)
equals "the varlink interface of the same service answers" "$out" '{"result":42}'
equals "...and the D-Bus property counts that call too" "$(bc get-property $dest $path $iface Calls)" "t 1"
now=$(c systemctl show -P MainPID svckit-example-calc.service)
[ "$main" != 0 ] && [ "$now" = "$main" ] && pass "...in the same process (MainPID $main)" ||
    flunk "...in the same process: MainPID $main before the varlink call, $now after"

summary
