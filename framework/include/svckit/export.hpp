// svckit/export.hpp — what libsvckit.so exports. The library is built with hidden symbols
// (gnu_symbol_visibility: 'inlineshidden'); SVCKIT_EXPORT marks the public API — classes, free functions and
// what generated code and inline templates call — so that only it is in the shared library's dynamic symbol
// table. Everything else (svckit::internal, the engine's connections, yyjson) stays inside. See docs/abi.md.
#pragma once

#define SVCKIT_EXPORT __attribute__((visibility("default")))
