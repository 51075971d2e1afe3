#pragma once
// What the example tests share: joining argument lists, and running a program that must succeed
// (its output shown when it does not).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tests/examples/run_program.h"

namespace dtrain::examples::testing {

inline std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline ProgramResult run_ok(const std::string& program, const std::vector<std::string>& arguments) {
  ProgramResult result = run_program(program, arguments);
  INFO(program << " stdout:\n" << result.out << "\nstderr:\n" << result.err);
  REQUIRE(result.exit_code == 0);
  return result;
}

}  // namespace dtrain::examples::testing
