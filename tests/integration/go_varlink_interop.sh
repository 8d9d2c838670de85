#!/usr/bin/env bash
# The bench example on svckit's varlink engine, called by the Go varlink client (github.com/varlink/go, Debian's
# golang-github-varlink-go-dev, through the command dev/go-varlink builds): introspection, every method, "more"
# with every reply, oneway, the interface's error and the org.varlink.service errors. The same checks run first
# against sd-varlink's server of the same interface (bench/varlink/reference_server.c) as a control: a check
# that fails there too is about the Go client (or the check), not about svckit.
#   go_varlink_interop.sh BENCH_EXAMPLE GO_VARLINK [REFERENCE_SERVER]
set -u
server=$1
client=$2
reference=${3:-}
check_name=go_varlink_interop
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/check.sh"
[ -x "$client" ] || skip "no Go varlink client at $client (build it with dev/go-varlink)"
idl=$here/../../bench/varlink/org.example.bench.varlink

dir=$(mktemp -d)
pid=
at_exit '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"'

# gv ARGS...: the client's standard output and error, then "[exit N]" on a line of its own.
gv() {
    local out rc
    out=$("$client" "$@" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    printf '[exit %d]' "$rc"
}

# scenario LABEL SERVER: starts SERVER on a socket of its own and runs every check against it.
scenario() {
    local label=$1 cmd=$2 sock=$dir/$1.sock addr out
    echo "# $label: $cmd"
    "$cmd" "$sock" 2>"$dir/$label.log" &
    pid=$!
    if ! wait_for 60 test -S "$sock"; then
        flunk "$label: the server listens" "$(cat "$dir/$label.log")"
        return
    fi
    addr=unix:$sock

    out=$(gv info "$addr")
    contains "$label: info succeeds" "$out" "[exit 0]"
    contains "$label: info lists org.example.bench" "$out" $'\n  org.example.bench\n'
    contains "$label: info lists org.varlink.service" "$out" $'\n  org.varlink.service\n'

    out=$(gv help "$addr/org.example.bench")
    contains "$label: help succeeds" "$out" "[exit 0]"
    # Servers may lay the description out differently (sd-varlink re-formats it); its tokens and comments are fixed.
    equals "$label: help returns the interface description, comments included" \
        "$(sed '$d' <<<"$out" | tr -d ' \t\n')" "$(tr -d ' \t\n' <"$idl")"
    equals "$label: help of an unknown interface is InterfaceNotFound" "$(gv help "$addr/org.example.nope")" \
        $'error org.varlink.service.InterfaceNotFound {"interface":"org.example.nope"}\n[exit 1]'

    equals "$label: Echo returns its text" "$(gv call "$addr/org.example.bench.Echo" '{"text":"héllo \"x\" \\ \n"}')" \
        $'{"text":"héllo \\"x\\" \\\\ \\n"}\n[exit 0]'
    equals "$label: Add adds" "$(gv call "$addr/org.example.bench.Add" '{"a":40,"b":2}')" $'{"sum":42}\n[exit 0]'
    equals "$label: Add reaches INT64_MAX exactly" \
        "$(gv call "$addr/org.example.bench.Add" '{"a":9223372036854775806,"b":1}')" \
        $'{"sum":9223372036854775807}\n[exit 0]'
    equals "$label: Add reaches INT64_MIN exactly" \
        "$(gv call "$addr/org.example.bench.Add" '{"a":-9223372036854775807,"b":-1}')" \
        $'{"sum":-9223372036854775808}\n[exit 0]'
    equals "$label: Add overflowing int64 is the Overflow error" \
        "$(gv call "$addr/org.example.bench.Add" '{"a":9223372036854775807,"b":1}')" \
        $'error org.example.bench.Overflow {}\n[exit 1]'

    equals "$label: Count with --more returns every reply, then ends" \
        "$(gv call --more "$addr/org.example.bench.Count" '{"n":3}')" $'{"i":0}\n{"i":1}\n{"i":2}\n[exit 0]'
    equals "$label: Count with --more and n = 1 is one reply" \
        "$(gv call --more "$addr/org.example.bench.Count" '{"n":1}')" $'{"i":0}\n[exit 0]'
    equals "$label: Count without more is ExpectedMore" "$(gv call "$addr/org.example.bench.Count" '{"n":3}')" \
        $'error org.varlink.service.ExpectedMore {}\n[exit 1]'

    equals "$label: an unknown method is MethodNotFound naming it" "$(gv call "$addr/org.example.bench.Nope" '{}')" \
        $'error org.varlink.service.MethodNotFound {"method":"org.example.bench.Nope"}\n[exit 1]'
    equals "$label: a missing parameter is InvalidParameter naming it" \
        "$(gv call "$addr/org.example.bench.Add" '{"a":1}')" \
        $'error org.varlink.service.InvalidParameter {"parameter":"b"}\n[exit 1]'
    equals "$label: a parameter of the wrong type is InvalidParameter naming it" \
        "$(gv call "$addr/org.example.bench.Add" '{"a":true,"b":2}')" \
        $'error org.varlink.service.InvalidParameter {"parameter":"a"}\n[exit 1]'
    equals "$label: a call without parameters is InvalidParameter" "$(gv call "$addr/org.example.bench.Echo")" \
        $'error org.varlink.service.InvalidParameter {"parameter":"text"}\n[exit 1]'
    equals "$label: Count with n = 0 is InvalidParameter" \
        "$(gv call --more "$addr/org.example.bench.Count" '{"n":0}')" \
        $'error org.varlink.service.InvalidParameter {"parameter":"n"}\n[exit 1]'

    equals "$label: a oneway call is accepted and has no reply" "$(gv call --oneway "$addr/org.example.bench.Echo" '{"text":"x"}')" \
        '[exit 0]'
    equals "$label: the server answers after all of that" "$(gv call "$addr/org.example.bench.Echo" '{"text":"y"}')" \
        $'{"text":"y"}\n[exit 0]'

    check "$label: the server is still running" kill -0 $pid
    kill -TERM $pid
    wait $pid
    equals "$label: SIGTERM stops it with status 0" "$?" 0
    pid=
}

if [ -n "$reference" ] && [ -x "$reference" ]; then
    scenario sd-varlink "$reference"
else
    echo "# no sd-varlink reference server: the control is skipped"
fi
scenario svckit "$server"
summary
