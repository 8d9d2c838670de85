#!/usr/bin/env bash
# The bench example on svckit's varlink engine, called by systemd's own client, varlinkctl: every method, the
# flags, the errors, introspection (whose output `varlinkctl validate-idl` must accept).
#   bench_example_varlinkctl.sh BENCH_EXAMPLE
set -u
server=$1
check_name=bench_example_varlinkctl
. "$(dirname "$0")/../lib/check.sh"
command -v varlinkctl >/dev/null || skip "varlinkctl (systemd >= 255) is not installed"

dir=$(mktemp -d)
sock=$dir/bench.sock
"$server" "$sock" 2>"$dir/log" &
pid=$!
at_exit 'kill $pid 2>/dev/null; rm -rf "$dir"'
wait_for 60 test -S "$sock" || bail "the server listens" "$(cat "$dir/log")"
addr=unix:$sock

equals "Echo returns its text" "$(varlinkctl call -j "$addr" org.example.bench.Echo '{"text":"héllo \"x\""}')" \
    '{"text":"héllo \"x\""}'
equals "Add adds" "$(varlinkctl call -j "$addr" org.example.bench.Add '{"a":40,"b":2}')" '{"sum":42}'
out=$(varlinkctl call "$addr" org.example.bench.Add '{"a":9223372036854775807,"b":1}' 2>&1)
contains "Add overflowing int64 is the Overflow error" "$out" "org.example.bench.Overflow"
out=$(varlinkctl call "$addr" org.example.bench.Add '{"a":1}' 2>&1)
# varlinkctl prints the well-known errors as errno text (InvalidParameter: "Invalid argument") and their parameters.
contains "a missing parameter is InvalidParameter naming it" "$out" '{"parameter":"b"}'
equals "Count with --more streams 0..n-1" "$(varlinkctl call -j --more "$addr" org.example.bench.Count '{"n":3}' | tr -d ' \n\036')" \
    '{"i":0}{"i":1}{"i":2}'
out=$(varlinkctl call "$addr" org.example.bench.Count '{"n":3}' 2>&1)
contains "Count without more is ExpectedMore" "$out" "'more'"
check "a oneway call succeeds" varlinkctl call --oneway "$addr" org.example.bench.Echo '{"text":"x"}'
out=$(varlinkctl call "$addr" org.example.bench.Nope '{}' 2>&1)
contains "an unknown method is MethodNotFound naming it" "$out" '{"method":"org.example.bench.Nope"}'
out=$(varlinkctl info "$addr" 2>&1)
contains "info lists the interface" "$out" "org.example.bench"
check "introspect writes the description" sh -c 'varlinkctl introspect "$1" org.example.bench >"$2"' _ "$addr" "$dir/idl.varlink"
check "introspect's description passes validate-idl" varlinkctl validate-idl "$dir/idl.varlink"
contains "the description keeps its documentation comments" "$(cat "$dir/idl.varlink")" "# returns text unchanged"
contains "introspection shows that Count requires more (systemd's marker, from the .varlink file)" \
    "$(cat "$dir/idl.varlink")" $'# [Requires \'more\' flag]\nmethod Count('
check "the server is still running" kill -0 $pid
kill -TERM $pid
wait $pid
equals "SIGTERM stops it with status 0" "$?" 0
summary
