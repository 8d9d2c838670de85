#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — builds the libFuzzer targets (clang, ASan+UBSan, in the dev root, build/fuzz)
# and runs each for SECONDS (default 60) on a fresh copy of its seed corpus (tests/fuzz/corpus/TARGET; nothing
# is written into the repository), two at a time, and the varlink IDL mutation test for as long. One check
# per target, with its number of executions: a crash, a leak, a timeout, an out-of-memory or any sanitizer
# report fails it, and the input that did it is kept under build/fuzz/artifacts/ (reproduce it as
# docs/testing.md, "Fuzzing", says). Run from the host, as dev/test does; exit 77 when the dev root has no clang.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
check_name=fuzz
. "$root/tests/lib/check.sh"
cd "$root" || exit 1

seconds=${1:-60}
dir=build/fuzz
targets=(varlink_server_input varlink_client_replies listen_environment socket_unit)

dev/root ensure >/dev/null || bail "dev/root ensure failed"
dev/root run sh -c 'command -v clang++ >/dev/null' || skip "no clang++ in the dev root (dev/packages)"

# Configured once, with clang (the normal build is gcc's and stays as it is).
out=$(dev/root run env CC=clang CXX=clang++ sh -c '
    dir=$1
    # A directory configured while tests was a boolean option: meson cannot reconfigure an option that changed
    # type, so it is set up afresh (ninja keeps its objects).
    if [ -f "$dir/build.ninja" ] &&
        ! meson introspect "$dir" --buildoptions | grep -q "\"name\": \"tests\", \"value\": \"disabled\""; then
        mv "$dir/meson-private/coredata.dat" "$dir/meson-private/coredata.dat.old" && rm -f "$dir/build.ninja"
    fi
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" -Dfuzz=true -Dtests=disabled -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false || exit 1
    fi
    meson compile -C "$dir"' sh "$dir" 2>&1) || bail "the fuzz targets build ($dir)" "$out"

rm -rf "$dir/run" "$dir/artifacts"
mkdir -p "$dir/run" "$dir/artifacts"

# run_target TARGET: its log is $dir/run/TARGET.log, its exit status $dir/run/TARGET.rc.
run_target() {
    local t=$1
    cp -r "tests/fuzz/corpus/$t" "$dir/run/corpus-$t"
    # halt_on_error: UBSan reports are fatal (by default it prints and goes on). -timeout: one input that takes
    # longer is a hang. -rss_limit_mb: libFuzzer's default, said aloud.
    dev/root run env UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
        "$dir/tests/fuzz/fuzz-${t//_/-}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" "$dir/run/corpus-$t" \
        >"$dir/run/$t.log" 2>&1
    echo $? >"$dir/run/$t.rc"
}

# report TARGET: one check, from its exit status and log.
report() {
    local t=$1 rc log runs cov artifact
    rc=$(cat "$dir/run/$t.rc" 2>/dev/null || echo none)
    log=$dir/run/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ "$rc" = 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:' "$log"; then
        pass "$t: ${runs:-?} inputs in ${seconds} s, no crash, leak or sanitizer report (${cov:-cov: ?})"
    else
        flunk "$t: exit $rc after ${runs:-?} inputs${artifact:+; the input: $artifact (reproduce: dev/root run $dir/tests/fuzz/fuzz-${t//_/-} $artifact)}" \
            "$(grep -E -A12 'ERROR:|runtime error:|SUMMARY:' "$log" | head -n 40)"
    fi
}

# Two at a time (a core each), the mutation test beside the second pair: the stage takes twice SECONDS.
run_target "${targets[0]}" &
run_target "${targets[1]}" &
wait
run_target "${targets[2]}" &
run_target "${targets[3]}" &
idl_out=$dir/run/varlink_idl_mutations.log
dev/root run python3 tests/fuzz/varlink_idl_mutations.py --seconds "$seconds" --crash-dir "$dir/artifacts/idl" \
    >"$idl_out" 2>&1 &
idl_pid=$!
wait "$idl_pid"
idl_rc=$?
wait
for t in "${targets[@]}"; do report "$t"; done

idl_line=$(grep 'mutations in' "$idl_out" | tail -n 1)
if [ "$idl_rc" = 0 ]; then
    pass "varlink_idl_mutations: ${idl_line#varlink_idl_mutations: }"
else
    flunk "varlink_idl_mutations: exit $idl_rc (failing inputs under $dir/artifacts/idl)" \
        "$(grep -v ': [0-9]* passed, ' "$idl_out" | head -n 40)"
fi
summary
