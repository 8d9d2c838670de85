#!/usr/bin/env bash
# End-to-end: bench/activation/run --smoke — the cold-activation benchmark (bench/README.md) with 2 trials of
# each server under a real systemd 262 in the dev root's container: svckit-example-bench from its installed
# units, bare C under svckit's sandbox lines, without them and with one group of them at a time, each activated
# from its socket and answering; the exec stamps, the strace counts and the memory figures found. No speed is
# asserted (speed lives in bench/): this proves the benchmark still measures what it says.
#   tests/e2e/activation_bench_smoke.sh [BUILD_DIR]   (built in the dev root with --prefix=/usr; default build/root)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build/root}
check_name=e2e_activation_bench_smoke
. tests/lib/check.sh

[ -x "$build/examples/bench/svckit-example-bench" ] || skip "no build in $build (dev/build $build)"
out=$(bench/activation/run --smoke "$build" 2>&1)
exits "bench/activation/run --smoke succeeds (every server answered every trial)" "$?" 0 "$out"
# One row per server: name, median, p90, min, ratio, n (= 2 trials)
for server in "svckit" "bare, svckit's sandbox" "bare, no sandbox" "bare, only mount namespace" \
    "bare, only seccomp and prctl"; do
    contains "cold activation: '$server' answered both trials" "$out" "| $server |"
    row=$(grep -F "| $server |" <<<"$out" | head -n 1)
    equals "cold activation: '$server' counts 2 trials" "$(awk -F'|' '{gsub(/ /, "", $8); print $8}' <<<"$row")" 2
done
contains "the sandbox lines are read from the generated unit" "$out" "ProtectSystem="
contains "exec -> first reply under systemd is measured for svckit" "$out" "| svckit |"
row=$(grep -F "| svckit |" <<<"$out" | sed -n 2p)
equals "exec -> first reply: both svckit trials found their exec stamp" "$(awk -F'|' '{gsub(/ /, "", $5); print $5}' <<<"$row")" 2
row=$(grep -F "| svckit |" <<<"$out" | sed -n 3p)
lacks "syscalls to svckit's first reply were counted" "$(awk -F'|' '{print $7}' <<<"$row")" "None"
for service in svckit-example-bench svckit-example-identity svckit-example-calc svckit-example-peercred; do
    contains "idle memory of $service after one call" "$out" "| $service |"
done
lacks "nothing failed" "$out" "Failures:"
summary
