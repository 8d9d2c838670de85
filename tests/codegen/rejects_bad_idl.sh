#!/usr/bin/env bash
# varlink-codegen refuses every file in tests/codegen/bad/ with exit status 1, writes nothing, and prints the
# error listed for it in bad/expected-errors.txt (FILE:LINE: message); systemd's `varlinkctl validate-idl`
# refuses the same files when it is installed (the grammar is systemd's), except those listed as svckit-only.
#   tests/codegen/rejects_bad_idl.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
codegen=$root/tools/varlink-codegen/varlink_codegen.py
check_name=codegen_rejects_bad_idl
. "$here/../lib/check.sh"

# What systemd accepts and svckit refuses: a clash with generated names (structs, classes, handler aliases), a
# type it cannot map yet, a type holding itself by value (no C++ struct can), an interface name without a dot
# (the engine needs reverse-domain names).
svckit_only=" clashes_with_generated.varlink clashes_with_alias.varlink settings_type.varlink any_type.varlink holds_itself.varlink bad_interface_name.varlink "

tmp=$(mktemp -d)
at_exit 'rm -rf "$tmp"'
cd "$here/bad"
count=0
while IFS=$'\t' read -r file expected; do
    case $file in '#'* | '') continue ;; esac
    count=$((count + 1))
    out=$(python3 "$codegen" --output-dir "$tmp" "$file" 2>&1)
    status=$?
    if [ $status -eq 1 ] && [[ $out == *"$expected"* ]]; then
        pass "$file: $expected"
    else
        flunk "$file: want exit 1 and '$expected'; got exit $status" "$out"
    fi
    if command -v varlinkctl >/dev/null && [[ $svckit_only != *" $file "* ]]; then
        if varlinkctl validate-idl "$file" >/dev/null 2>&1; then
            flunk "$file: varlinkctl validate-idl accepts it too"
        else
            pass "$file: varlinkctl validate-idl refuses it too"
        fi
    fi
done <expected-errors.txt
equals "every file in bad/ has an expected error" "$(ls ./*.varlink | wc -l)" "$count"
equals "nothing was written for refused input" "$(ls "$tmp" | wc -l)" 0
summary
