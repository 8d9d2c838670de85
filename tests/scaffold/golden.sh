#!/usr/bin/env bash
# `svckit new` writes, for each variant below, exactly the committed tree in tests/scaffold/expected/VARIANT/,
# byte for byte (and the same bytes when run twice).
#   tests/scaffold/golden.sh SVCKIT            compare (SVCKIT: the built svckit command)
#   tests/scaffold/golden.sh SVCKIT --update   rewrite the expected trees after an intended change (review the diff)
set -u
here=$(cd "$(dirname "$0")" && pwd)
svckit=$(realpath "${1:?usage: golden.sh SVCKIT [--update]}")
# variant name, then the arguments of `svckit new`
variants=(
    "varlink|hello"
    "varlink-accept|hello --accept"
    "dbus|hello --dbus"
    "both-accept-fds|hello --both --accept --fds"
)
if [ "${2:-}" = --update ]; then
    for v in "${variants[@]}"; do
        name=${v%%|*}
        rm -rf "${here:?}/expected/$name"
        # shellcheck disable=SC2086 # the arguments are words
        "$svckit" new ${v#*|} --dir "$here/expected/$name" >/dev/null || exit 1
    done
    echo "updated $here/expected"
    exit
fi

check_name=scaffold_golden
. "$here/../lib/check.sh"
tmp=$(mktemp -d)
at_exit 'rm -rf "$tmp"'
for v in "${variants[@]}"; do
    name=${v%%|*}
    # shellcheck disable=SC2086
    check "$name: svckit new ${v#*|} succeeds" "$svckit" new ${v#*|} --dir "$tmp/$name"
    if out=$(diff -ru "$here/expected/$name" "$tmp/$name" 2>&1); then
        pass "$name: the project equals tests/scaffold/expected/$name"
    else
        flunk "$name: the project differs from tests/scaffold/expected/$name (if intended: tests/scaffold/golden.sh SVCKIT --update)" "$out"
    fi
    # shellcheck disable=SC2086
    "$svckit" new ${v#*|} --dir "$tmp/$name-again" >/dev/null 2>&1
    check "$name: a second run writes the same bytes" diff -r "$tmp/$name" "$tmp/$name-again"
done

# The command line: help, a refused name and a refused directory (exit 1, the rule named, nothing written).
out=$("$svckit" new --help 2>&1)
exits "svckit new --help succeeds" "$?" 0 "$out"
contains "...and explains the variants" "$out" "--both            both, from one process"
out=$(cd "$tmp" && "$svckit" new 2fa 2>&1)
exits "svckit new 2fa fails" "$?" 1 "$out"
equals "...naming the rule" "$out" "svckit new: Invalid service name '2fa': it must start with a letter (a C++ class name is made of it)"
check "...and writes nothing" test ! -e "$tmp/2fa"
mkdir "$tmp/taken" && echo keep >"$tmp/taken/mine"
out=$("$svckit" new hello --dir "$tmp/taken" 2>&1)
exits "svckit new into a non-empty directory fails" "$?" 1 "$out"
contains "...saying why" "$out" "the directory is not empty"
equals "...and writes nothing there" "$(ls "$tmp/taken")" "mine"
out=$("$svckit" new hello --bogus 2>&1)
exits "an unknown option is a usage error" "$?" 2 "$out"
summary
