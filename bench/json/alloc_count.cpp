// Counting malloc: every heap allocation in the process (operator new ends in malloc, and the C
// libraries call malloc directly) goes through these, which count and forward to glibc's allocator.
// A plain counter: the benchmark is single-threaded.
#include <cerrno>
#include <cstddef>
#include <cstdint>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace bench {
std::uint64_t g_allocations = 0;
}

extern "C" {
void* malloc(std::size_t n) {
    ++bench::g_allocations;
    return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) {
    ++bench::g_allocations;
    return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) {
    ++bench::g_allocations;
    return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t a, std::size_t n) {
    ++bench::g_allocations;
    return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
    ++bench::g_allocations;
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
    ++bench::g_allocations;
    void* p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
}
