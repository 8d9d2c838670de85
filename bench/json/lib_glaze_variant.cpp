// glaze, one pass through a std::variant tagged by "method": lib_glaze.cpp compiled as a TU of its own.
#define BENCH_GLAZE_VARIANT
#include "lib_glaze.cpp"
