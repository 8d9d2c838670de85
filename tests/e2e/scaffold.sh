#!/usr/bin/env bash
# End-to-end: projects made by `svckit new` (varlink; D-Bus; both with Accept=yes and fds), outside svckit's
# tree, build against svckit installed with `meson install --destdir` into a staging tree (found through
# pkg-config, the installed svckit-varlink-codegen found on PATH) and pass their own tests; then, in a real
# systemd >= 258 booted as PID 1 in the dev root's container, svckit and the projects are installed with
# `meson install`, their generated units are enabled as their READMEs say, and varlinkctl / busctl, run from
# units of their own (systemd-run), get answers naming the calling process.
#   tests/e2e/scaffold.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_scaffold
. tests/lib/check.sh

svckit=$build/tools/svckit/svckit
[ -x "$svckit" ] || skip "no build in $build (dev/build $build)"
# Under the checkout, which the dev root and the container both see at /src.
work=build/scaffold-e2e-$$
rm -rf "$work"
mkdir -p "$work"
at_exit 'rm -rf "$work"'
stage=/src/$work/stage

# --- svckit, installed into a staging tree
out=$(dev/root run meson install -C "$build" --destdir "$stage" --no-rebuild --quiet 2>&1)
exits "svckit installs into a staging tree (meson install --destdir)" "$?" 0 "$out"
pc=$(cd "$work/stage" && find . -name svckit.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || bail "the staging tree has svckit.pc" "$(cd "$work/stage" && find . -maxdepth 4)"
pass "the staging tree has svckit.pc (${pc#.})"
pcdir=$(dirname "${pc#.}")
libdir=$(dirname "$pcdir")
# What a user's shell would set for an svckit installed under a prefix of its own: pkg-config finds svckit.pc
# (its paths under the staging tree: PKG_CONFIG_SYSROOT_DIR), PATH the code generator, the loader the library.
staged=(env "PKG_CONFIG_PATH=$stage$pcdir" "PKG_CONFIG_SYSROOT_DIR=$stage" "PATH=$stage/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "LD_LIBRARY_PATH=$stage$libdir")

# --- the projects, each built once, against the staged svckit
# variant directory (= service name), then the options of `svckit new`
variants=("hello-vl|" "hello-db|--dbus" "hello-both|--both --accept --fds")
for v in "${variants[@]}"; do
    name=${v%%|*}
    # shellcheck disable=SC2086 # the options are words
    check "$name: svckit new $name ${v#*|}" dev/root run "$svckit" new "$name" ${v#*|} --dir "$work/$name"
    out=$(dev/root run "${staged[@]}" meson setup "$work/$name/build" "$work/$name" --prefix=/usr 2>&1)
    exits "$name: meson setup finds what it needs" "$?" 0 "$out"
    log=$(cat "$work/$name/build/meson-logs/meson-log.txt" 2>&1)
    contains "$name: ...svckit through pkg-config, from the staging tree" "$log" \
        "Run-time dependency svckit found: YES"
    contains "$name: ...(its svckit.pc)" "$log" "$stage$pcdir"
    if [ "$name" != hello-db ]; then
        contains "$name: ...and the installed svckit-varlink-codegen" "$log" \
            "Program svckit-varlink-codegen found: YES ($stage/usr/bin/svckit-varlink-codegen)"
    fi
    out=$(dev/root run "${staged[@]}" meson compile -C "$work/$name/build" 2>&1)
    exits "$name: it builds" "$?" 0 "$out"
    lacks "$name: ...without a warning (warning_level=3)" "$out" "warning:"
    out=$(dev/root run "${staged[@]}" meson test -C "$work/$name/build" --print-errorlogs 2>&1)
    exits "$name: its own test passes (meson test)" "$?" 0 "$out"
    contains "$name: ...and ran" "$out" "Ok:                1"
done
exec_start=$(cat "$work/hello-vl/build/hello-vl.service" 2>&1)
contains "the units generated at build time start the binary in the bindir" "$exec_start" "ExecStart=/usr/bin/hello-vl"

# --- under systemd, installed
name=svckit-e2e-scaffold-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# A command in a unit of its own, as a real caller; its stdout and stderr are ours, its exit status too. A call
# that hangs fails after RuntimeMaxSec= instead of stalling the script.
as_unit() { c systemd-run --quiet --wait --pipe --collect --service-type=exec --expand-environment=no \
    -p RuntimeMaxSec=120 "$@"; }
# A call from a unit of its own whose shell prints its pid, then execs the client (which keeps that pid):
# prints "pid=N" and the client's output. call_as USER COMMAND
call_as() { as_unit -p "User=$1" sh -c "echo \"pid=\$\$\"; exec $2" 2>&1; }

check "svckit installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"
for v in "${variants[@]}"; do
    n=${v%%|*}
    check "$n installs into the container (meson install)" c meson install -C "/src/$work/$n/build" --no-rebuild --quiet
done
c systemctl daemon-reload
for unit in hello-vl.socket hello-vl.service hello-db.socket hello-db.service hello-both-varlink.socket \
    hello-both-varlink@.service hello-both-dbus.socket hello-both-dbus@.service; do
    v=$(c systemd-analyze verify "/usr/lib/systemd/system/$unit" 2>&1)
    equals "$unit is installed, and systemd-analyze verify finds nothing to say" "$v" ""
done
# As the READMEs say.
check "systemctl enable --now the sockets" c systemctl enable --now hello-vl.socket hello-db.socket \
    hello-both-varlink.socket hello-both-dbus.socket
equals "hello-vl.service does not run before the first call" "$(c systemctl is-active hello-vl.service)" inactive

# varlink, Accept=no
out=$(call_as root "varlinkctl call --json=short /run/hello-vl.sock org.example.HelloVl.Hello '{\"name\":\"e2e\"}'")
pid=$(sed -n 's/^pid=//p' <<<"$out")
contains "hello-vl: varlinkctl call Hello answers with the caller's uid and pid ($pid)" "$out" \
    "{\"greeting\":\"Hello, e2e! You are uid 0, pid $pid.\",\"uid\":0,\"pid\":$pid}"
equals "hello-vl: the call activated the service" "$(c systemctl is-active hello-vl.service)" active
out=$(call_as nobody "varlinkctl call --json=short /run/hello-vl.sock org.example.HelloVl.Hello '{\"name\":\"e2e\"}'")
contains "hello-vl: another user's call names that user (nobody) and its pid" "$out" \
    "\"uid\":65534,\"pid\":$(sed -n 's/^pid=//p' <<<"$out")}"
out=$(as_unit varlinkctl introspect /run/hello-vl.sock org.example.HelloVl 2>&1)
contains "hello-vl: introspection serves the documented interface" "$out" "# Greets the caller by name"

# D-Bus, peer-to-peer, Accept=no
out=$(call_as root "busctl --address=unix:path=/run/hello-db-dbus.sock call org.example.HelloDb1 /org/example/HelloDb1 org.example.HelloDb1 Hello s e2e")
pid=$(sed -n 's/^pid=//p' <<<"$out")
contains "hello-db: busctl call Hello answers with the caller's uid and pid ($pid)" "$out" \
    "suu \"Hello, e2e! You are uid 0, pid $pid.\" 0 $pid"
equals "hello-db: the call activated the service" "$(c systemctl is-active hello-db.service)" active

# both, Accept=yes, fds accepted
equals "hello-both: its varlink socket has Accept=yes" "$(c systemctl show -P Accept hello-both-varlink.socket)" yes
out=$(call_as root "varlinkctl call --json=short /run/hello-both.sock org.example.HelloBoth.Hello '{\"name\":\"e2e\"}'")
pid=$(sed -n 's/^pid=//p' <<<"$out")
contains "hello-both: varlinkctl call Hello over Accept=yes answers with the caller's pid ($pid)" "$out" \
    "\"uid\":0,\"pid\":$pid}"
size=$(c stat -c %s /etc/hostname)
out=$(as_unit sh -c "varlinkctl call --json=short --push-fd=0 /run/hello-both.sock org.example.HelloBoth.Inspect '{\"fd\":0}' </etc/hostname" 2>&1)
equals "hello-both: Inspect over varlink describes the fd passed with the call" "$out" \
    "{\"kind\":\"regular file\",\"size\":$size}"
out=$(call_as root "busctl --address=unix:path=/run/hello-both-dbus.sock call org.example.HelloBoth1 /org/example/HelloBoth1 org.example.HelloBoth1 Hello s e2e")
pid=$(sed -n 's/^pid=//p' <<<"$out")
contains "hello-both: busctl call Hello over Accept=yes answers with the caller's uid and pid ($pid)" "$out" \
    "suu \"Hello, e2e! You are uid 0, pid $pid.\" 0 $pid"
# busctl takes the fd of an 'h' argument from those passed to it the systemd way (LISTEN_FDS, from fd 3).
out=$(as_unit sh -c "exec 3</etc/hostname; LISTEN_FDS=1 LISTEN_PID=\$\$ exec busctl --address=unix:path=/run/hello-both-dbus.sock call org.example.HelloBoth1 /org/example/HelloBoth1 org.example.HelloBoth1 Inspect h 3" 2>&1)
equals "hello-both: Inspect over D-Bus describes the fd passed with the call" "$out" "sx \"regular file\" $size"

# Removal, as the READMEs say: the sockets stop listening, and nothing starts the services any more.
check "systemctl disable --now the sockets" c systemctl disable --now hello-vl.socket hello-db.socket \
    hello-both-varlink.socket hello-both-dbus.socket
for s in hello-vl hello-db hello-both-varlink hello-both-dbus; do
    equals "$s.socket is inactive" "$(c systemctl is-active $s.socket)" inactive
done
out=$(as_unit varlinkctl call /run/hello-vl.sock org.example.HelloVl.Hello '{"name":"e2e"}' 2>&1)
exits "a call after the removal fails" "$?" nonzero "$out"

summary
