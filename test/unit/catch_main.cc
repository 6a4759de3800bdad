// catch_main.cc: the one Catch2 main that every test executable links (compiled once: it is slow).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
