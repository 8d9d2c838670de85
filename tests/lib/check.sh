# tests/lib/check.sh — a few assertions for the scenario scripts, with TAP-like output and a closing
# "NAME: N passed, N failed" line. Source it, set check_name, call the checks, end with `summary`.
#
# The closing line is printed however the script ends: a script that exits (or dies, e.g. on an unbound
# variable) before its `summary` gets one failure more ("the script ended before its summary") and its line.
# Clean-ups go through `at_exit`, not `trap ... EXIT` (which would replace this file's handler).
# A script that cannot run here calls `skip REASON`: exit 77, with the reason and a closing line saying so.
passed=0
failed=0
check_name=${check_name:-checks}
_check_summarized=
_check_at_exit=()

pass() { passed=$((passed + 1)); echo "ok - $1"; }
flunk() {
    failed=$((failed + 1))
    echo "not ok - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 25 | sed 's/^/    | /'
    return 0
}

# check DESC CMD...: passes when CMD exits 0; shows its output otherwise.
check() {
    local desc=$1 out rc
    shift
    if out=$("$@" 2>&1); then pass "$desc"; else rc=$?; flunk "$desc (exit $rc)" "$out"; fi
}

# exits DESC GOT WANT [OUTPUT]: passes when the exit status GOT is WANT ("nonzero": anything but 0); shows
# OUTPUT otherwise. For a status taken from a pipeline, pass ${PIPESTATUS[N]}, never $?.
exits() {
    local ok=
    case $3 in
        nonzero) [ "$2" != 0 ] && ok=1 ;;
        *) [ "$2" = "$3" ] && ok=1 ;;
    esac
    if [ -n "$ok" ]; then pass "$1"; else flunk "$1: exit status $2, want $3" "${4:-}"; fi
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

# wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds or the time is up (then returns 1). The
# deadline is only how long before "never": give it generously, the wait ends as soon as CMD succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}

# at_exit CMD: runs the shell command CMD when the script exits (the last registered first).
at_exit() { _check_at_exit+=("$1"); }

# bail DESC [OUTPUT]: a failure after which nothing else can be checked: counts it, prints the closing line,
# exits 1 (clean-ups still run).
bail() {
    flunk "$1" "${2:-}"
    summary
    exit 1
}

# skip REASON: this script cannot run here. Exits 77 (meson's "skipped") with the reason and a closing line
# that says it skipped; a script that already failed a check exits 1 instead.
skip() {
    echo "SKIP: $1"
    if [ "$failed" -gt 0 ]; then summary; exit 1; fi
    echo "$check_name: $passed passed, $failed failed, 1 skipped"
    _check_summarized=1
    exit 77
}

summary() {
    echo "$check_name: $passed passed, $failed failed"
    _check_summarized=1
    [ "$failed" -eq 0 ]
}

_check_exit() {
    local rc=$? i
    trap - EXIT
    for ((i = ${#_check_at_exit[@]} - 1; i >= 0; i--)); do
        eval "${_check_at_exit[i]}"
    done
    if [ -z "$_check_summarized" ]; then
        flunk "the script ended before its summary (exit $rc)"
        summary
        exit 1
    fi
    exit "$rc"
}
trap _check_exit EXIT
# A signal (a timeout's SIGTERM, ^C) ends the script through the same path: clean-ups, then the closing line.
trap 'exit 143' TERM
trap 'exit 130' INT
