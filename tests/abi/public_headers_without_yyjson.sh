#!/bin/sh
# tests/abi/public_headers_without_yyjson.sh INCLUDE_DIR CXX [CXX_ARGS...] — the installed headers a service
# includes do not bring in yyjson (docs/abi.md): a file including every header in INCLUDE_DIR/svckit except the
# codec header of generated code is preprocessed, and yyjson must not appear in it. It is also compiled, so each
# header stays self-contained.
set -eu
include=${1:?usage: public_headers_without_yyjson.sh INCLUDE_DIR CXX [CXX_ARGS...]}
shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

count=0
for header in "$include"/svckit/*.hpp; do
    name=$(basename "$header")
    [ "$name" = varlink_codec.hpp ] && continue
    echo "#include <svckit/$name>" >>"$dir/all.cpp"
    count=$((count + 1))
done
[ $count -gt 0 ] || { echo "no headers in $include/svckit"; exit 1; }

"$@" -std=c++23 -D_GNU_SOURCE -I"$include" -E "$dir/all.cpp" -o "$dir/all.ii"
if grep -n -i yyjson "$dir/all.ii" | head -n 5 | grep .; then
    echo "yyjson reaches service code through the public headers (one of them includes it)"
    exit 1
fi
"$@" -std=c++23 -D_GNU_SOURCE -I"$include" -fsyntax-only "$dir/all.cpp"
echo "$count public headers, none brings in yyjson"
