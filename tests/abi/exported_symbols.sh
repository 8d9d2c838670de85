#!/bin/sh
# tests/abi/exported_symbols.sh LIBSVCKIT_SO — libsvckit.so exports the public API and nothing else
# (docs/abi.md): no svckit::internal, no yyjson, nothing of svckit's detail namespaces but what inline code and
# generated code call (the list below), and the public classes and functions are there.
set -eu
lib=${1:?usage: exported_symbols.sh LIBSVCKIT_SO}
symbols=$(nm -D --defined-only -C "$lib" | sed 's/^[0-9a-f]* [A-Za-z] //')
status=0

# What headers' inline code and generated code call in detail namespaces.
allowed_detail='^svckit::detail::runMain$|^svckit::varlink::detail::method$|^svckit::varlink::detail::errorOf$'

# The names alone, without parameter lists (a public function may take a detail type).
bad=$(printf '%s\n' "$symbols" | sed 's/(.*//' | grep -E 'svckit::internal::|yyjson|svckit::([a-z]+::)?detail::' |
    grep -Ev "$allowed_detail" || true)
if [ -n "$bad" ]; then
    echo "exported but not public API:"
    printf '%s\n' "$bad" | head -n 40
    status=1
fi

for wanted in 'svckit::Service::run(' 'svckit::varlink::Server::create(' 'svckit::varlink::JsonDocument::parse(' \
    'svckit::varlink::detail::method(' 'svckit::varlink::codec::decode(' 'svckit::bindSocket(' \
    'typeinfo for svckit::Service'; do
    if ! printf '%s\n' "$symbols" | grep -qF "$wanted"; then
        echo "public symbol not exported: $wanted"
        status=1
    fi
done
[ $status -eq 0 ] && echo "$(printf '%s\n' "$symbols" | wc -l) exported symbols, all public API"
exit $status
