#!/usr/bin/env bash
# The C++ that varlink-codegen writes for each input must equal the committed files in tests/codegen/expected/;
# each input must also pass systemd's own IDL check (`varlinkctl validate-idl`) when varlinkctl is installed.
#   tests/codegen/golden.sh            compare
#   tests/codegen/golden.sh --update   rewrite the expected files after an intended change (review the diff)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
codegen=$root/tools/varlink-codegen/varlink_codegen.py
inputs=("$root/examples/bench/org.example.bench.varlink" "$here"/org.example.*.varlink)
if [ "${1:-}" = --update ]; then
    python3 "$codegen" --output-dir "$here/expected" "${inputs[@]}" && echo "updated $here/expected"
    exit
fi

check_name=codegen_golden
. "$here/../lib/check.sh"
tmp=$(mktemp -d)
at_exit 'rm -rf "$tmp"'
for input in "${inputs[@]}"; do
    name=$(basename "$input")
    check "$name: the generator accepts it" python3 "$codegen" --output-dir "$tmp" "$input"
    for suffix in hpp cpp; do
        if out=$(diff -u "$here/expected/$name.$suffix" "$tmp/$name.$suffix" 2>&1); then
            pass "$name.$suffix equals the expected file"
        else
            flunk "$name.$suffix differs from tests/codegen/expected (if intended: tests/codegen/golden.sh --update)" "$out"
        fi
    done
    if command -v varlinkctl >/dev/null; then
        check "$name passes varlinkctl validate-idl" varlinkctl validate-idl "$input"
    fi
done
summary
