#!/usr/bin/env bash
# End-to-end: the identity example socket-activated by a real systemd >= 258, booted as PID 1 in the dev root's
# container, called by real clients in their own units (systemd-run), checked from outside.
#   tests/e2e/peercred_activation.sh [BUILD_DIR]   (BUILD_DIR: built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_peercred_activation
. tests/lib/check.sh

[ -x "$build/examples/peercred/svckit-example-peercred" ] || skip "no build in $build (dev/build $build)"
name=svckit-e2e-$$
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "the container boots" "$out"
c() { dev/root exec "$name" "$@"; }
# A client in a unit of its own, as a real caller would be; its stdout is ours. A hanging call fails after
# RuntimeMaxSec= instead of stalling the script.
call() { c systemd-run --quiet --wait --pipe --collect --service-type=exec -p RuntimeMaxSec=120 \
    /usr/bin/svckit-example-peercred-client "$@"; }
# journal_has UNIT TEXT: the unit's journal has a line with TEXT (journald writes asynchronously: poll this).
journal_has() { c sh -c 'journalctl -b --no-pager -o cat -u "$1" | grep -qF -- "$2"' _ "$1" "$2"; }

stream=/run/svckit-example-peercred.sock
seqpacket=/run/svckit-example-peercred.seqpacket
accept=/run/svckit-example-peercred-accept.sock
options='{"SO_PASSCRED":1,"SO_PASSPIDFD":1,"SO_PASSRIGHTS":0}'

version=$(c systemctl --version | awk 'NR==1 {print $2}')
check "systemd in the container is >= 258 (found $version)" test "${version:-0}" -ge 258
check "the build installs into the container" c sh -c "meson install -C /src/$build --no-rebuild --quiet >/dev/null && ldconfig"

# systemd-analyze verify exits 0 even on warnings: any output is a failure.
for unit in units/*.socket units/*.service; do
    out=$(c systemd-analyze verify "/src/$unit" 2>&1)
    equals "systemd-analyze verify $(basename "$unit") prints nothing" "$out" ""
done

c systemctl daemon-reload
check "the sockets start" c systemctl start svckit-example-peercred.socket svckit-example-peercred-identity-seqpacket.socket \
    svckit-example-peercred-identity-accept.socket
equals "the service is not running before the first connection" \
    "$(c systemctl is-active svckit-example-peercred.service)" inactive

# --- Accept=no, stream
out=$(call --verify-self "$stream" 2>&1)
contains "stream: the service reports the calling process's pid, uid, gid and cgroup" "$out" "verify-self: ok"
contains "stream: the listening fd had SO_PASSCRED=1 SO_PASSPIDFD=1 SO_PASSRIGHTS=0" "$out" "\"listener\":$options"
contains "stream: the accepted fd had SO_PASSCRED=1 SO_PASSPIDFD=1 SO_PASSRIGHTS=0" "$out" "\"connection\":$options"
contains "stream: the caller's unit is read through its pidfd" "$out" '"unit":"run-'
equals "the first connection activated the service" "$(c systemctl is-active svckit-example-peercred.service)" active

# --- seqpacket: identity per message
out=$(call --seqpacket --count 3 --verify-self "$seqpacket" 2>&1)
equals "seqpacket: each of 3 messages names the calling process" "$(grep -c 'verify-self: ok' <<<"$out")" 3
contains "seqpacket: identity from SCM_CREDENTIALS + SCM_PIDFD" "$out" '"via":"SCM_PIDFD"'
contains "seqpacket: listener and accepted fd options" "$out" "\"listener\":$options,\"connection\":$options"

# --- fds are refused by the kernel
out=$(call --send-fd --verify-self "$stream" 2>&1)
contains "a client's sendmsg with SCM_RIGHTS gets EPERM" "$out" "send-fd: EPERM"
contains "after the refused fd the service still answers" "$out" "verify-self: ok"
out=$(call --seqpacket --send-fd --verify-self "$seqpacket" 2>&1)
contains "seqpacket: sendmsg with SCM_RIGHTS gets EPERM" "$out" "send-fd: EPERM"

# --- Accept=yes
out=$(call --verify-self "$accept" 2>&1)
contains "Accept=yes: the instance reports the calling process" "$out" "verify-self: ok"
contains "Accept=yes: the connected fd had the unit's options" "$out" "\"connection\":$options"
check "Accept=yes: the connection ran in a per-connection instance" \
    wait_for 60 journal_has 'svckit-example-peercred-identity-accept@*' '(identity-accept, raw, one connection)'

# --- a .socket without PassPIDFD=yes: the service refuses to start and says which line to add
c systemctl stop svckit-example-peercred.service svckit-example-peercred.socket svckit-example-peercred-identity-seqpacket.socket
c sh -c 'mkdir -p /run/systemd/system/svckit-example-peercred.socket.d &&
    printf "[Socket]\nPassPIDFD=no\n" >/run/systemd/system/svckit-example-peercred.socket.d/50-no-pidfd.conf &&
    systemctl daemon-reload && systemctl reset-failed'
check "the sockets start without PassPIDFD" c systemctl start svckit-example-peercred.socket svckit-example-peercred-identity-seqpacket.socket
# (The reset comes as soon as the service fails; the long timeout only keeps a slow answer from passing.)
out=$(call --timeout 60 "$stream" 2>&1)
rc=$?
lacks "the caller gets no identity from a misconfigured service" "$out" '"via"'
check "its connection is dropped (reset or no reply), not answered" \
    bash -c '[ "$1" -ne 0 ] && grep -qE "Failed to read the reply|without a reply|No reply" <<<"$2"' _ "$rc" "$out"
check "the service failed" wait_for 60 c systemctl is-failed --quiet svckit-example-peercred.service
check "the journal names the missing line PassPIDFD=yes" \
    wait_for 60 journal_has svckit-example-peercred.service "add 'PassPIDFD=yes'"
journal=$(c journalctl -b --no-pager -o cat -u svckit-example-peercred.service)
contains "the journal says which systemd has it" "$(grep -F "add 'PassPIDFD=yes'" <<<"$journal")" "(systemd >= 258)"
status=$(c systemctl status --no-pager -l svckit-example-peercred.service 2>&1)
contains "systemctl status shows it too" "$status" "PassPIDFD=yes"

# --- and recovers when the unit is fixed
c sh -c 'rm -r /run/systemd/system/svckit-example-peercred.socket.d && systemctl daemon-reload &&
    systemctl reset-failed && systemctl restart svckit-example-peercred.socket svckit-example-peercred-identity-seqpacket.socket'
out=$(call --verify-self "$stream" 2>&1)
contains "with the unit fixed the service is activated again" "$out" "verify-self: ok"

summary
