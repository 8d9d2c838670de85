#!/usr/bin/env bash
# End-to-end, under a real systemd >= 258 as PID 1 in the dev root's container: a .socket unit that lacks
# PassPIDFD=yes makes the identity example refuse to start; the refusal is in the journal as one entry with its
# MESSAGE_ID and SVCKIT_* fields, naming the running systemd's version and the unit to edit; a .service drop-in with
# Environment=SVCKIT_VERIFY=repair makes it serve, with a warning (docs/socket-verification.md).
#   tests/e2e/refusal_and_repair.sh [BUILD_DIR]   (BUILD_DIR: built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_refusal_and_repair
. tests/lib/check.sh

[ -x "$build/examples/peercred/svckit-example-peercred" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-refusal-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# A client in a unit of its own; a hanging call fails after RuntimeMaxSec= instead of stalling the script.
call() { c systemd-run --quiet --wait --pipe --collect --service-type=exec -p RuntimeMaxSec=120 \
    /usr/bin/svckit-example-peercred-client "$@"; }
# The fixed MESSAGE_ID of a socket verification refusal (docs/service.md, framework/service/refusal.cpp).
refusal_id=6471a2ade41e40298996227b37d09b45
# refusal_logged: the journal has a refusal entry of the service (journald writes asynchronously: poll this).
refusal_logged() { c journalctl -b --no-pager -q MESSAGE_ID=$refusal_id _SYSTEMD_UNIT=svckit-example-peercred.service -o cat | grep -q .; }
journal_has() { c sh -c 'journalctl -b --no-pager -o cat -u "$1" | grep -qF -- "$2"' _ "$1" "$2"; }

stream=/run/svckit-example-peercred.sock
service=svckit-example-peercred.service
sockets="svckit-example-peercred.socket svckit-example-peercred-identity-seqpacket.socket"
options='{"SO_PASSCRED":1,"SO_PASSPIDFD":1,"SO_PASSRIGHTS":0}'

version=$(c systemctl --version | awk 'NR==1 {print $2}')
check "systemd in the container is >= 258 (found $version)" test "${version:-0}" -ge 258
check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"
# The version is asked over the system bus, as any client of the manager does.
check "the system bus is up" wait_for 60 c busctl --system status org.freedesktop.systemd1

# --- a .socket unit without PassPIDFD=yes: the service refuses, and the journal says what to do
c sh -c 'mkdir -p /run/systemd/system/svckit-example-peercred.socket.d &&
    printf "[Socket]\nPassPIDFD=no\n" >/run/systemd/system/svckit-example-peercred.socket.d/50-no-pidfd.conf &&
    systemctl daemon-reload'
check "the sockets start without PassPIDFD" c systemctl start $sockets
out=$(call --timeout 60 "$stream" 2>&1)
lacks "the caller gets no identity from the refusing service" "$out" '"via"'
check "the service failed" wait_for 60 c systemctl is-failed --quiet $service
check "the journal has the refusal under its MESSAGE_ID" wait_for 60 refusal_logged
entry=$(c journalctl -b --no-pager -q MESSAGE_ID=$refusal_id _SYSTEMD_UNIT=$service -o verbose -n 1)
contains "the refusal has priority err" "$entry" "PRIORITY=3"
contains "it names the socket" "$entry" "SVCKIT_SOCKET=identity"
contains "it names the unit to fix" "$entry" "SVCKIT_UNIT=svckit-example-peercred.socket"
contains "it names the running systemd's version" "$entry" "SVCKIT_SYSTEMD_VERSION=$version"
contains "it names the setting to add" "$entry" "SVCKIT_FIX=PassPIDFD=yes"
contains "it names the service unit" "$entry" "SVCKIT_SERVICE_UNIT=$service"
message=$(c journalctl -b --no-pager -q MESSAGE_ID=$refusal_id _SYSTEMD_UNIT=$service -o cat -n 1)
contains "the message names systemd $version" "$message" "The running systemd is version $version, which can set PassPIDFD="
contains "the message says to systemctl edit the .socket unit" "$message" \
    "$(printf "run 'systemctl edit svckit-example-peercred.socket' and add\n[Socket]\nPassPIDFD=yes")"
contains "the message keeps the mismatch line" "$message" "SO_PASSPIDFD is off but the service requires it"
# Sent once, natively: not a second time through stderr's stream.
stream_lines=$(c journalctl -b --no-pager -q _SYSTEMD_UNIT=$service _TRANSPORT=stdout -o cat)
lacks "the refusal is not also a stderr line" "$stream_lines" "Failed to verify the activated sockets"
status=$(c systemctl status --no-pager -l $service 2>&1)
contains "systemctl status shows it" "$status" "systemctl edit svckit-example-peercred.socket"

# --- the administrator's drop-in: repair mode from the environment
c sh -c 'mkdir -p /run/systemd/system/svckit-example-peercred.service.d &&
    printf "[Service]\nEnvironment=SVCKIT_VERIFY=repair\n" >/run/systemd/system/svckit-example-peercred.service.d/50-repair.conf &&
    systemctl daemon-reload && systemctl reset-failed && systemctl restart '"$sockets"
out=$(call --verify-self "$stream" 2>&1)
contains "with SVCKIT_VERIFY=repair the service answers" "$out" "verify-self: ok"
contains "on a listener it repaired itself" "$out" "\"listener\":$options"
equals "the service runs" "$(c systemctl is-active $service)" active
check "it warned that it set SO_PASSPIDFD itself" \
    wait_for 60 journal_has $service "(repaired for now: set SO_PASSPIDFD=1)"
warnings=$(c journalctl -b --no-pager -q -u $service -p warning..warning -o cat)
contains "the warning has priority warning" "$warnings" "(repaired for now: set SO_PASSPIDFD=1)"

# --- a drop-in with an invalid SVCKIT_VERIFY: refused, under the environment refusal's MESSAGE_ID
environment_id=3d3b8962c8634ddb826765c5bd7cfa35
c sh -c 'systemctl stop '"$service"' &&
    printf "[Service]\nEnvironment=SVCKIT_VERIFY=fix\n" >/run/systemd/system/svckit-example-peercred.service.d/50-repair.conf &&
    systemctl daemon-reload && systemctl reset-failed'
out=$(call --timeout 60 "$stream" 2>&1)
lacks "with SVCKIT_VERIFY=fix the caller gets no answer" "$out" '"via"'
check "with SVCKIT_VERIFY=fix the service fails" wait_for 60 c systemctl is-failed --quiet $service
environment_logged() { c journalctl -b --no-pager -q MESSAGE_ID=$environment_id _SYSTEMD_UNIT=$service -o cat | grep -q .; }
check "the journal has it under the environment refusal's MESSAGE_ID" wait_for 60 environment_logged
entry=$(c journalctl -b --no-pager -q MESSAGE_ID=$environment_id _SYSTEMD_UNIT=$service -o verbose -n 1)
contains "it names the variable" "$entry" "SVCKIT_ENVIRONMENT=SVCKIT_VERIFY"
contains "it says which values are valid" "$entry" "SVCKIT_VERIFY='fix' is not a verification mode: set it to 'strict'"

summary
