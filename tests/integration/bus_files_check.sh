#!/usr/bin/env bash
# The files bus mode writes (BusName= units, the D-Bus activation file, the bus policy file) are accepted by
# the programs that read them: dbus-daemon starts with a configuration that includes the policy file and
# lists the activation file's name as activatable, and systemd-analyze verify prints nothing for the units.
#   bus_files_check.sh BUS_FILES_WRITER   (tests/integration/bus_files_writer.cpp: a spec with every kind of rule)
set -u
writer=$1
check_name=bus_files_check
. "$(dirname "$0")/../lib/check.sh"
command -v dbus-daemon >/dev/null || skip "no dbus-daemon here (the dev root has it)"
command -v systemd-analyze >/dev/null || skip "no systemd-analyze here (the dev root has it)"

dir=$(mktemp -d)
daemon=
at_exit '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"'
check "the writer writes the files" "$writer" "$dir/out"
name=org.svckit.test.BusFiles1
policy=$dir/out/dbus-1/system.d/$name.conf
activation=$dir/out/dbus-1/system-services/$name.service
check "the policy file is in dbus-1/system.d/" test -f "$policy"
check "the activation file is in dbus-1/system-services/" test -f "$activation"

# A system bus of our own, configured like the real one: the policy file included, the activation files'
# directory as its service directory. dbus-daemon refuses to start on a file it cannot parse or a rule it does
# not know, and warns about a user or group it cannot find; either is a failure here (only the warning that an
# unprivileged daemon cannot raise its fd limit is expected).
cat >"$dir/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <!-- the default policy of dbus-daemon's own system.conf -->
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
  <include>$policy</include>
  <servicedir>$(dirname "$activation")</servicedir>
</busconfig>
XML
dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile --nosyslog --print-address=1 \
    >"$dir/address" 2>"$dir/stderr" &
daemon=$!
if wait_for 30 test -s "$dir/address"; then
    pass "dbus-daemon starts with the generated policy file included"
else
    flunk "dbus-daemon starts with the generated policy file included" "$(cat "$dir/stderr")"
fi
equals "dbus-daemon has nothing to say about the policy file" \
    "$(grep -v 'Failed to set fd limit' "$dir/stderr")" ""
out=$(busctl --address="unix:path=$dir/bus" call org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus ListActivatableNames 2>&1)
contains "dbus-daemon reads the activation file: $name is activatable" "$out" "\"$name\""

# systemd-analyze verify exits 0 even for unknown settings (it only warns): any output is a failure.
units=()
for unit in "$dir"/out/*.service "$dir"/out/*.socket; do units+=("$unit"); done
out=$(cd "$dir/out" && systemd-analyze verify "${units[@]}" 2>&1)
rc=$?
exits "systemd-analyze verify accepts the units" "$rc" 0 "$out"
equals "systemd-analyze verify prints nothing for $(cd "$dir/out" && echo *.service *.socket)" "$out" ""
summary
