#!/usr/bin/env bash
# End-to-end: bus mode on the system bus of a real systemd >= 258 booted as PID 1 in the dev root's container
# (dbus-daemon 1.16, which gives ProcessFD). A test-only service (tests/e2e/dbus_bus_service) owns
# org.svckit.test.BusProbe1; its units, D-Bus activation file and bus policy file are the ones it prints from
# its spec (--print-units=DIR), installed where systemd and dbus-daemon read them. busctl, in units of its own
# (systemd-run), bus-activates it and calls it as root and as an unprivileged user; the policy says who may
# call what, and the handler reports the caller the bus gave it (pid, uid, pidfd-pinned, cgroup read through
# the pidfd).
#   tests/e2e/dbus_bus.sh [BUILD_DIR]   (built in the dev root; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_dbus_bus
. tests/lib/check.sh

service=svckit-e2e-dbus-bus
bus_name=org.svckit.test.BusProbe1
path=/org/svckit/test/BusProbe1
binary=/src/$build/tests/e2e/dbus_bus_service/$service
[ -x "$build/tests/e2e/dbus_bus_service/$service" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-dbus-bus-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# A command in a unit of its own, as a real caller; its stdout and stderr are ours, its exit status too.
as_unit() { c systemd-run --quiet --wait --pipe --collect --service-type=exec --expand-environment=no \
    -p RuntimeMaxSec=120 "$@"; }
# busctl call in a unit of its own; the shell prints its pid and cgroup, then execs busctl (same pid).
call_as() { # call_as USER INTERFACE METHOD
    as_unit -p User="$1" sh -c 'echo "pid=$$"; echo "cgroup=$(sed -n "s/^0:://p" /proc/self/cgroup)"
        exec busctl --system call '"$bus_name $path $2 $3" 2>&1
}

out=$(c sh -c 'dbus-daemon --version | head -n 1')
contains "the container's system bus is dbus-daemon 1.16" "$out" "D-Bus Message Bus Daemon 1.16"

# The files, as the service prints them, installed where the manager and the bus daemon look.
check "$service prints its files" c "$binary" --print-units=/run/svckit-bus-files
out=$(c sh -c 'cd /run/svckit-bus-files && find . -type f | sort')
equals "...a unit, the activation file and the policy file" "$out" "./dbus-1/system-services/$bus_name.service
./dbus-1/system.d/$bus_name.conf
./$service.service"
check "the files install" c sh -ec "cp /run/svckit-bus-files/$service.service /run/systemd/system/
    cp /run/svckit-bus-files/dbus-1/system-services/$bus_name.service /usr/share/dbus-1/system-services/
    cp /run/svckit-bus-files/dbus-1/system.d/$bus_name.conf /usr/share/dbus-1/system.d/"
c systemctl daemon-reload
check "dbus-daemon reloads its configuration" \
    c busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
v=$(c systemd-analyze verify "/run/systemd/system/$service.service" 2>&1)
equals "systemd-analyze verify $service.service prints nothing" "$v" ""
out=$(c busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ListActivatableNames)
contains "the bus lists $bus_name as activatable" "$out" "\"$bus_name\""
equals "the service is not running before the first call" "$(c systemctl is-active $service.service)" inactive

# --- root: bus-activated; the caller the handler sees is busctl, pinned by the daemon's ProcessFD
out=$(call_as root $bus_name Whoami)
pid=$(sed -n 's/^pid=//p' <<<"$out")
cgroup=$(sed -n 's/^cgroup=//p' <<<"$out")
reply=$(grep '^ubss\|^uibss' <<<"$out")
contains "root: Whoami succeeds (the call bus-activates the service)" "$out" "uibss 0 "
equals "root: the reported uid, pid, pinned, cgroup and comm are the calling busctl's" "$reply" \
    "uibss 0 $pid true \"$cgroup\" \"busctl\""
equals "the call started the service through systemd" "$(c systemctl is-active $service.service)" active
equals "...as a Type=notify unit with BusName=" "$(c systemctl show -P Type,BusName $service.service | paste -sd' ')" \
    "notify $bus_name"
out=$(call_as root $bus_name.Admin Secret)
contains "root (the owner) may call the Admin interface" "$out" 's "secret"'
out=$(call_as root $bus_name RootOnly)
contains "root passes the service's Policy::rootOnly()" "$out" 's "root only"'

# --- an unprivileged user: allowed, denied by the bus policy, denied by the service's policy
out=$(call_as nobody $bus_name Whoami)
pid=$(sed -n 's/^pid=//p' <<<"$out")
cgroup=$(sed -n 's/^cgroup=//p' <<<"$out")
equals "nobody: Whoami succeeds and names nobody's busctl (uid, pid, pinned, cgroup)" "$(grep '^uibss' <<<"$out")" \
    "uibss 65534 $pid true \"$cgroup\" \"busctl\""
out=$(call_as nobody $bus_name.Admin Secret)
rc=$?
contains "nobody: the bus policy denies the Admin interface" "$out" "Access denied"
lacks "...and the service never answers it" "$out" "secret"
exits "...and busctl fails" "$rc" nonzero "$out"
journal=$(c journalctl -b -q -o cat -u dbus.service --no-pager)
contains "...the daemon says it rejected the message" "$journal" "Rejected send message"
# (dbus-send prints the error's text, busctl only "Access denied": the text says who refused.)
out=$(as_unit -p User=nobody dbus-send --system --print-reply --dest=$bus_name $path $bus_name.RootOnly 2>&1)
rc=$?
contains "nobody: the service's Policy::rootOnly() answers AccessDenied" "$out" \
    "org.freedesktop.DBus.Error.AccessDenied: $bus_name.RootOnly is not allowed to uid 65534"
exits "...and the call fails" "$rc" nonzero "$out"

# --- stop releases the name; the next call activates the service again
first=$(c systemctl show -P MainPID $service.service)
check "the service stops" c systemctl stop $service.service
out=$(call_as root $bus_name Whoami)
contains "after a stop the next call activates it again" "$out" "uibss 0 "
second=$(c systemctl show -P MainPID $service.service)
check "...in a new process ($first, then $second)" test "$first" != "$second" -a "$second" != 0

# --- losing the bus: the service exits with an error; the next call (on the new bus) activates it again
pid=$(c systemctl show -P MainPID $service.service)
check "the bus daemon restarts" c systemctl restart dbus.service
check "the service notices the lost bus and exits" \
    wait_for 60 sh -c "[ \"\$(dev/root exec $name systemctl show -P MainPID $service.service)\" != $pid ]"
equals "...with status 1" "$(c systemctl show -P ExecMainStatus $service.service)" 1
out=$(c journalctl -b -q -o cat -u $service.service --no-pager)
contains "...saying why" "$out" "Lost the connection to the system bus: exiting"
out=$(call_as root $bus_name Whoami)
contains "the next call on the new bus activates it again" "$out" "uibss 0 "
summary
