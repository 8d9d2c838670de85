#!/usr/bin/env bash
# The committed units of the examples are exactly what each binary prints from its ServiceSpec: the
# code and the units cannot drift apart. To update them: `svckit-example-NAME --print-units=units`.
#   units_match_spec.sh UNITS_DIR EXAMPLE_BINARY...
set -u
units=$1
shift
check_name=units_match_spec
. "$(dirname "$0")/../lib/check.sh"
for binary in "$@"; do
    name=$(basename "$binary")
    out=$(mktemp -d)
    if ! "$binary" --print-units="$out" >/dev/null 2>&1; then
        flunk "$name --print-units=DIR succeeds"
        continue
    fi
    # Every file, the D-Bus ones under dbus-1/ too (as --print-units=DIR lays them out).
    files=$(cd "$out" && find . -type f | sed 's|^\./||' | sort)
    for unit in $files; do
        check "$name: units/$unit is what the binary prints (else: $name --print-units=units)" \
            diff -u "$units/$unit" "$out/$unit"
    done
    # and no unit of this example is left in units/ that the binary no longer prints
    for committed in "$units/$name".* "$units/$name"-*; do
        [ -e "$committed" ] || continue
        check "$name: units/$(basename "$committed") is still printed" test -e "$out/$(basename "$committed")"
    done
    # Printing to stdout gives the same text.
    printed=$("$binary" --print-units)
    for unit in $files; do
        contains "$name: --print-units prints $unit too" "$printed" "# $unit
$(cat "$out/$unit")"
    done
    rm -rf "$out"
done
summary
