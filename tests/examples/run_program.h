#pragma once
// Runs a program as a subprocess and collects what it printed and how it exited.
#include <string>
#include <vector>

namespace dtrain::examples::testing {

struct ProgramResult {
  int exit_code = -1;  // -1 when it did not exit normally (a signal, an abort)
  std::string out;
  std::string err;
};

// Runs program with arguments (no shell involved), stdin empty, and waits for it.
ProgramResult run_program(const std::string& program, const std::vector<std::string>& arguments);

// text split at '\n', without a trailing empty line.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace dtrain::examples::testing
