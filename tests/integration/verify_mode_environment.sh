#!/usr/bin/env bash
# $SVCKIT_VERIFY under `svckit activate`, without systemd: sockets that lack the unit's options (the harness skips
# its setsockopt step, as systemd < 258 would for PassPIDFD= and AcceptFileDescriptors=) make the service refuse,
# naming the units to edit; SVCKIT_VERIFY=repair in its environment turns the refusal into warnings and a served
# socket; SVCKIT_VERIFY=strict overrides the service's own repair default; any other value is a clear error.
#   verify_mode_environment.sh SVCKIT EXAMPLE CLIENT UNITS_DIR
set -u
svckit=$1 example=$2 client=$3 units=$4
check_name=verify_mode_environment
. "$(dirname "$0")/../lib/check.sh"

[ -w /run ] || skip "needs a writable /run (the units' socket paths); run as root or in the dev root"

stream=/run/svckit-example-peercred.sock
options='{"SO_PASSCRED":1,"SO_PASSPIDFD":1,"SO_PASSRIGHTS":0}'
logs=$(mktemp -d)
at_exit 'kill $(jobs -p) 2>/dev/null; rm -rf "$logs"'
# activate [ENV...] [timeout N]: the example under svckit activate without the options set, on its two Accept=no
# sockets
activate() {
    exec env SVCKIT_ACTIVATE_SKIP_OPTIONS=1 "$@" "$svckit" activate --socket "$units/svckit-example-peercred.socket" \
        --socket "$units/svckit-example-peercred-identity-seqpacket.socket" -- "$example"
}

out=$("$example" --help)
contains "--help documents SVCKIT_VERIFY" "$out" "SVCKIT_VERIFY=strict|repair"
contains "--help documents SVCKIT_LOG_LEVEL" "$out" "SVCKIT_LOG_LEVEL=LEVEL"

# --- no SVCKIT_VERIFY: the spec's strict mode refuses, and says what to edit
out=$(activate timeout 60 2>&1)
equals "unset: the service refuses to start (exit 1)" "$?" 1
contains "unset: the refusal names the socket unit to edit" "$out" "systemctl edit svckit-example-peercred.socket"
contains "unset: and the settings to add under [Socket]" "$out" "$(printf '[Socket]\n<3>PassCredentials=yes\n<3>PassPIDFD=yes\n<3>AcceptFileDescriptors=no')"
contains "unset: the refusal says whether the running systemd can set them" "$out" "The running systemd"

# --- SVCKIT_VERIFY=repair: warnings, then served
log=$logs/repair.log
activate SVCKIT_VERIFY=repair >"$log" 2>&1 &
pid=$!
wait_for 60 grep -q ': serving ' "$log" || flunk "repair: the service starts" "$(cat "$log")"
out=$("$client" --verify-self "$stream" 2>&1)
contains "repair: the service answers on the repaired socket" "$out" "verify-self: ok"
contains "repair: with the options the unit should have set" "$out" "\"listener\":$options"
contains "repair: it warned that it set SO_PASSPIDFD itself" \
    "$(grep -F '(repaired for now: set SO_PASSPIDFD=1)' "$log")" "<4>socket 'identity' ($stream): "
lacks "repair: nothing was refused" "$(cat "$log")" "Failed to verify"
kill -TERM $pid
wait $pid
exits "repair: SIGTERM stops it with status 0" "$?" 0 "$(cat "$log")"

# --- SVCKIT_VERIFY=strict overrides the service's own choice (the example's --repair sets VerifyMode::Repair)
out=$(SVCKIT_ACTIVATE_SKIP_OPTIONS=1 SVCKIT_VERIFY=strict timeout 60 "$svckit" activate \
    --socket "$units/svckit-example-peercred.socket" -- "$example" --repair 2>&1)
equals "strict over a repairing spec: the service refuses (exit 1)" "$?" 1
contains "strict over a repairing spec: the refusal names PassPIDFD=yes" "$out" "PassPIDFD=yes"

# --- anything else is a start-up error naming the valid values
out=$(activate SVCKIT_VERIFY=Repair timeout 60 2>&1)
equals "an invalid SVCKIT_VERIFY refuses to start (exit 1)" "$?" 1
contains "an invalid SVCKIT_VERIFY is named with the valid values" "$out" \
    "SVCKIT_VERIFY='Repair' is not a verification mode: set it to 'strict'"

summary
