#!/usr/bin/env bash
# Every .service unit an example prints from its ServiceSpec scores an exposure of at most MAX in
# `systemd-analyze security --offline=yes` (systemd's own 0.0-10.0 scale, lower is better; systemd-hostnamed
# scores 1.7): the sandbox of docs/security.md cannot be weakened without this test failing.
#   units_exposure.sh MAX EXAMPLE_BINARY...      (MAX: "1.5")
set -u
max=$1
shift
check_name=units_exposure
. "$(dirname "$0")/../lib/check.sh"
command -v systemd-analyze >/dev/null || skip "no systemd-analyze here (run it in the dev root)"
# --threshold= takes the exposure times ten; it fails when the unit scores above it.
threshold=$(awk -v m="$max" 'BEGIN { printf "%d", m * 10 + 0.5 }')
out=$(mktemp -d)
at_exit 'rm -rf "$out"'
for binary in "$@"; do
    name=$(basename "$binary")
    mkdir "$out/$name"
    if ! "$binary" --print-units="$out/$name" >/dev/null 2>&1; then
        flunk "$name --print-units=DIR succeeds"
        continue
    fi
    for unit in "$out/$name"/*.service; do
        [ -e "$unit" ] || continue
        report=$(systemd-analyze security --offline=yes --threshold="$threshold" --no-pager "$unit" 2>&1)
        rc=$?
        score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$report")
        if [ "$rc" -eq 0 ] && [ -n "$score" ]; then
            pass "$(basename "$unit"): exposure $score <= $max"
        else
            flunk "$(basename "$unit"): exposure ${score:-unknown} <= $max (exit $rc)" "$(grep -E '✗|Overall' <<<"$report")"
        fi
    done
done
summary
