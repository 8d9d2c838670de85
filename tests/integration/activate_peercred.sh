#!/usr/bin/env bash
# The identity example under `svckit activate`, without systemd: the same scenarios as the end-to-end test under
# a real systemd (tests/e2e/peercred_activation.sh), with the repository's own unit files.
#   activate_peercred.sh SVCKIT EXAMPLE CLIENT UNITS_DIR
set -u
svckit=$1 example=$2 client=$3 units=$4
check_name=activate_peercred
. "$(dirname "$0")/../lib/check.sh"

[ -w /run ] || skip "needs a writable /run (the units' socket paths); run as root or in the dev root"

stream=/run/svckit-example-peercred.sock
seqpacket=/run/svckit-example-peercred.seqpacket
accept=/run/svckit-example-peercred-accept.sock
options='{"SO_PASSCRED":1,"SO_PASSPIDFD":1,"SO_PASSRIGHTS":0}'
logs=$(mktemp -d)
runs=0
at_exit 'kill $(jobs -p) 2>/dev/null; rm -rf "$logs"'

# Each run logs to a file of its own: a per-connection instance of an earlier run may still be writing to its
# log after that run was stopped, and its lines must not be taken for the next run's.
start() { # start ENV... -- ARGS: runs svckit activate in the background
    runs=$((runs + 1))
    log=$logs/$runs.log
    "$@" >"$log" 2>&1 &
    pid=$!
}

# --- Accept=no, two sockets, strict verification passes
start env "$svckit" activate --socket "$units/svckit-example-peercred.socket" \
    --socket "$units/svckit-example-peercred-identity-seqpacket.socket" -- "$example"
# The socket files appear before the options are set (as under systemd); the log line comes after.
wait_for 60 grep -q 'listening on' "$log" || flunk "svckit activate listens" "$(cat "$log")"
out=$("$client" --verify-self "$stream" 2>&1)
contains "stream: the service reports this client's pid, uid, gid and cgroup" "$out" "verify-self: ok"
contains "stream: the listening fd has SO_PASSCRED=1 SO_PASSPIDFD=1 SO_PASSRIGHTS=0" "$out" "\"listener\":$options"
contains "stream: the accepted fd has the same options" "$out" "\"connection\":$options"
contains "stream: the identity came from SO_PEERPIDFD" "$out" '"via":"SO_PEERPIDFD"'
out=$("$client" --seqpacket --count 3 --verify-self "$seqpacket" 2>&1)
equals "seqpacket: each of 3 messages names this client" "$(grep -c 'verify-self: ok' <<<"$out")" 3
contains "seqpacket: the identity came from SCM_PIDFD" "$out" '"via":"SCM_PIDFD"'
contains "seqpacket: listener and accepted fd options" "$out" "\"listener\":$options,\"connection\":$options"
out=$("$client" --send-fd "$stream" 2>&1)
contains "a client's sendmsg with SCM_RIGHTS gets EPERM" "$out" "send-fd: EPERM"
contains "the service is still serving after the refused fd" "$out" '"via":"SO_PEERPIDFD"'
out=$("$client" --seqpacket --send-fd "$seqpacket" 2>&1)
contains "seqpacket: sendmsg with SCM_RIGHTS gets EPERM" "$out" "send-fd: EPERM"
kill -TERM $pid
wait $pid
equals "SIGTERM stops the service with status 0" "$?" 0

# --- Accept=yes: one instance per connection
start "$svckit" activate --socket "$units/svckit-example-peercred-identity-accept.socket" -- "$example"
wait_for 60 grep -q 'listening on' "$log" || flunk "svckit activate listens (Accept=yes)" "$(cat "$log")"
out1=$("$client" --verify-self "$accept" 2>&1)
out2=$("$client" --verify-self "$accept" 2>&1)
contains "Accept=yes: first connection names this client" "$out1" "verify-self: ok"
contains "Accept=yes: second connection names this client" "$out2" "verify-self: ok"
contains "Accept=yes: the connected fd has the unit's options" "$out1" "\"connection\":$options"
kill -TERM $pid
wait $pid
exits "Accept=yes: SIGTERM stops svckit activate with status 0" "$?" 0 "$(cat "$log")"

# --- a socket without the promised options: strict refuses, naming the unit lines; repair fixes and warns
out=$(SVCKIT_ACTIVATE_SKIP_OPTIONS=1 timeout 60 "$svckit" activate --socket "$units/svckit-example-peercred.socket" \
    --socket "$units/svckit-example-peercred-identity-seqpacket.socket" -- "$example" 2>&1)
status=$?
equals "strict: the service refuses to start (exit 1)" "$status" 1
contains "strict: the error names PassPIDFD=yes" "$out" "PassPIDFD=yes"
contains "strict: the error names PassCredentials=yes" "$out" "PassCredentials=yes"
contains "strict: the error names AcceptFileDescriptors=no" "$out" "AcceptFileDescriptors=no"
contains "strict: errors are logged at priority err" "$out" "<3>"

start env SVCKIT_ACTIVATE_SKIP_OPTIONS=1 "$svckit" activate --socket "$units/svckit-example-peercred.socket" \
    --socket "$units/svckit-example-peercred-identity-seqpacket.socket" -- "$example" --repair
wait_for 60 grep -q ': serving ' "$log" || flunk "repair: the service starts" "$(cat "$log")"
out=$("$client" --verify-self "$stream" 2>&1)
contains "repair: the service runs and sees the repaired options" "$out" "\"listener\":$options"
# The repair's own warnings (svckit activate's SKIP_OPTIONS notice is at <4> too: the level alone proves nothing).
for repaired in SO_PASSCRED=1 SO_PASSPIDFD=1 SO_PASSRIGHTS=0; do
    contains "repair: it warned (<4>) that it set $repaired on the stream socket" \
        "$(grep -F "(repaired for now: set $repaired)" "$log")" "<4>socket 'identity' ($stream): "
done
kill -TERM $pid
wait $pid
exits "repair: SIGTERM stops it with status 0" "$?" 0 "$(cat "$log")"

summary
