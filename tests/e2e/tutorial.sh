#!/usr/bin/env bash
# End-to-end: docs/tutorial.md, word for word. The shell blocks of its steps 2 to 9 (the dev root's path: the
# blocks for a host of your own, with sudo, are left out) run in order, as one shell session, in a container
# booted with systemd 262; then the output is checked for what the tutorial says each step shows. When the
# tutorial changes, this test runs the new text.
#   tests/e2e/tutorial.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_tutorial
. tests/lib/check.sh

[ -x "$build/tools/svckit/svckit" ] || skip "no build in $build (dev/build $build)"
[ "$build" = build/root ] || skip "the tutorial installs /src/build/root; given $build"
name=svckit-e2e-tutorial-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"

# The blocks from "## 2." up to "## Where next", without those that use sudo (a host of your own). A command
# put in the background (step 5: the service with --listen) is followed by a wait for its sockets, as a reader
# waits before typing the next line.
script=$(awk '
    /^## 2\./ { on = 1 } /^## Where next/ { on = 0 }
    on && /^```sh$/ { block = ""; inblock = 1; next }
    on && inblock && /^```$/ { inblock = 0; if (block !~ /sudo /) printf "%s", block; next }
    on && inblock { block = block $0 "\n"
        if ($0 ~ / &$/) block = block "for i in $(seq 200); do [ -S /tmp/hello.sock ] && [ -S /tmp/hello-dbus.sock ] && break; sleep 0.05; done\n" }
' docs/tutorial.md)
contains "the tutorial has its steps' commands" "$script" "svckit new hello --both"
out=$(dev/root exec "$name" bash -c "cd ~ && set -x && $script" 2>&1)
echo "$out" | sed "s/^/    | /" | tail -n 40
printf "%s\n" "$out" >"${TUTORIAL_LOG:-/dev/null}"

contains "step 2: svckit is installed and found by pkg-config" "$out" $'\n0.1.0'
contains "step 2: the svckit command runs" "$out" "svckit 0.1.0"
contains "step 3: svckit new wrote the project" "$out" "Wrote 7 files into hello/"
contains "step 4: the project's own test passes" "$out" "Ok:                1"
contains "step 4: the build wrote the units" "$out" "build/hello-dbus.socket"
contains "step 4: ...the varlink socket carries PassPIDFD=yes" "$out" "PassPIDFD=yes"
lines=$(grep -c 'Hello, world! You are uid 0, pid' <<<"$out")
[ "$lines" -ge 5 ] && pass "steps 5, 7, 8: every call as root is answered with the caller's uid and pid ($lines answers)" ||
    flunk "steps 5, 7, 8: every call as root is answered with the caller's uid and pid" "$lines answers"
contains "step 5: busctl's answer is as the tutorial prints it" "$out" 'suu "Hello, world! You are uid 0, pid'
contains "step 6: the sockets are enabled" "$out" "sockets.target.wants/hello.socket"
contains "step 6: nothing runs before the first call" "$out" "Active: inactive (dead)"
contains "step 7: the first call started the service" "$out" "Active: active (running)"
contains "step 7: varlinkctl introspect shows the interface" "$out" "interface org.example.Hello"
contains "step 7: list-registry lists the service" "$out" "org.example.Hello        unix:/run/hello.sock"
contains "step 7: another user's uid" "$out" "Hello, nobody! You are uid 65534"
contains "step 8: with SocketMode=0660 nobody is refused" "$out" "Failed to connect to '/run/hello.sock': Permission denied"
contains "step 8: PassPIDFD=no makes the service refuse: the journal names the socket" "$out" \
    "SO_PASSPIDFD is off but the service requires it"
contains "step 8: ...and the running systemd" "$out" "The running systemd is version 262"
contains "step 8: ...and the line to add" "$out" "run 'systemctl edit hello.socket' and add"
contains "step 8: systemctl revert removes the drop-ins" "$out" "Removed '/etc/systemd/system/hello.socket.d/override.conf'"
left=$(dev/root exec "$name" sh -c 'ls /usr/local/bin /usr/local/lib/systemd/system 2>/dev/null; systemctl list-unit-files "hello*" --no-legend' 2>&1)
equals "step 9: nothing of the service is left" "$left" "/usr/local/bin:"
summary
