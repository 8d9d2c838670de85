#!/usr/bin/env bash
# The dev root's container leaves nothing behind: after `dev/root stop` no process, mount or cgroup of it remains,
# and what was written inside (on the overlay) never reached the cached root.
set -u
cd "$(dirname "$0")/../.."
check_name=e2e_dev_root_lifecycle
. tests/lib/check.sh

name=svckit-life-$$
root=$(dev/root path)
check "boots" dev/root boot "$name"
leader=$(dev/root leader "$name" 2>/dev/null)
cg=$(cat "/run/svckit-devroot/$name/cgroup" 2>/dev/null)
equals "PID 1 inside is systemd" "$(dev/root exec "$name" cat /proc/1/comm)" systemd
equals "the system comes up running" "$(dev/root exec "$name" systemctl is-system-running)" running
check "the checkout is at /src" dev/root exec "$name" test -f /src/dev/root
marker=/etc/svckit-lifecycle-$$
check "the container can write its root (overlay)" dev/root exec "$name" touch "$marker"
check "the write does not reach the cached root" test ! -e "$root$marker"
dev/root exec "$name" systemd-run --quiet --unit=svckit-sleeper sleep 600
sleeper=$(cat "$cg/system.slice/svckit-sleeper.service/cgroup.procs" 2>/dev/null)
check "a service in the container runs in the container's cgroup (host PID ${sleeper:-none})" test -n "$sleeper"
check "stops" dev/root stop "$name"
check "PID 1 is gone" bash -c "! kill -0 '$leader' 2>/dev/null"
check "no process of the container is left" bash -c "! kill -0 '${sleeper:-0}' 2>/dev/null"
check "its cgroup is removed" test ! -d "$cg"
check "no mount of the root is left on the host" bash -c "! grep -q ' $root' /proc/self/mountinfo"
check "its state is removed" test ! -d "/run/svckit-devroot/$name"
check "the cached root is unchanged" test ! -e "$root$marker"
summary
