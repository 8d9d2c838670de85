// RapidJSON with its default recursive parser: lib_rapidjson.cpp compiled as a TU of its own.
#define BENCH_RAPIDJSON_RECURSIVE
#include "lib_rapidjson.cpp"
