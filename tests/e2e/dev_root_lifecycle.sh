#!/usr/bin/env bash
# The dev root's container leaves nothing behind: after `dev/root stop` no process, mount or cgroup of it remains,
# and what was written inside (on the overlay) never reached the cached root.
#   tests/e2e/dev_root_lifecycle.sh [BUILD_DIR]   (BUILD_DIR is not used: dev/test passes one to every e2e test)
set -u
cd "$(dirname "$0")/../.."
check_name=e2e_dev_root_lifecycle
. tests/lib/check.sh

name=svckit-life-$$
root=$(dev/root path)
[ -d "$root" ] || skip "no dev root at $root (dev/root ensure)"
# If the script ends early, the container goes anyway (stop is a no-op once it is gone).
at_exit 'dev/root stop "$name"'
out=$(dev/root boot "$name" 2>&1) || bail "boots" "$out"
pass "boots"
leader=$(dev/root leader "$name" 2>/dev/null)
cg=$(cat "/run/svckit-devroot/$name/cgroup" 2>/dev/null)
# Every later check needs these: without them "is gone" and "is removed" would pass vacuously.
[ -n "$leader" ] && kill -0 "$leader" 2>/dev/null || bail "its PID 1 is known and alive (leader '$leader')"
[ -n "$cg" ] && [ -d "$cg" ] || bail "its cgroup is known and exists (cgroup '$cg')"
pass "its PID 1 ($leader) and cgroup ($cg) are known"
equals "PID 1 inside is systemd" "$(dev/root exec "$name" cat /proc/1/comm)" systemd
equals "the system comes up running" "$(dev/root exec "$name" systemctl is-system-running)" running
check "the checkout is at /src" dev/root exec "$name" test -f /src/dev/root
marker=/etc/svckit-lifecycle-$$
check "the container can write its root (overlay)" dev/root exec "$name" touch "$marker"
check "the write does not reach the cached root" test ! -e "$root$marker"
check "a service starts in the container" dev/root exec "$name" systemd-run --quiet --unit=svckit-sleeper sleep 600
procs=$cg/system.slice/svckit-sleeper.service/cgroup.procs
wait_for 60 grep -q . "$procs"  # (cgroupfs files have size 0: test -s cannot tell)
sleeper=$(cat "$procs" 2>/dev/null)
check "a service in the container runs in the container's cgroup (host PID ${sleeper:-none})" test -n "$sleeper"
check "stops" dev/root stop "$name"
check "PID 1 is gone" bash -c "! kill -0 '$leader' 2>/dev/null"
check "no process of the container is left" bash -c "[ -n '$sleeper' ] && ! kill -0 $sleeper 2>/dev/null"
check "its cgroup is removed" test ! -d "$cg"
# The container's overlay names the root only as its lowerdir= (after a comma): any mention counts.
check "no mount of the root or its overlay is left on the host" \
    bash -c "! grep -e '$root' -e /run/svckit-devroot-overlay /proc/self/mountinfo"
check "its state is removed" test ! -d "/run/svckit-devroot/$name"
check "the cached root is unchanged" test ! -e "$root$marker"
summary
