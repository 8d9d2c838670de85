# tests/lib/check.sh — a few assertions for the scenario scripts, with TAP-like output and a closing
# "NAME: N passed, N failed" line. Source it, set check_name, call the checks, end with `summary`.
passed=0
failed=0
check_name=${check_name:-checks}

pass() { passed=$((passed + 1)); echo "ok - $1"; }
flunk() {
    failed=$((failed + 1))
    echo "not ok - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 25 | sed 's/^/    | /'
    return 0
}

# check DESC CMD...: passes when CMD exits 0; shows its output otherwise.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$desc"; else flunk "$desc (exit $?)" "$out"; fi
}

# contains DESC TEXT NEEDLE: passes when TEXT contains NEEDLE (fixed string).
contains() {
    if [[ $2 == *"$3"* ]]; then pass "$1"; else flunk "$1: expected to find '$3'" "$2"; fi
}

# lacks DESC TEXT NEEDLE: passes when TEXT does not contain NEEDLE.
lacks() {
    if [[ $2 != *"$3"* ]]; then pass "$1"; else flunk "$1: did not expect '$3'" "$2"; fi
}

# equals DESC GOT WANT
equals() {
    if [ "$2" = "$3" ]; then pass "$1"; else flunk "$1: got '$2', want '$3'"; fi
}

# wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds or the time is up.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}

summary() {
    echo "$check_name: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
