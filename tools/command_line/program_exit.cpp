#include "tools/command_line/program_exit.h"

#include <cstdio>
#include <exception>

namespace dtrain::command_line {

namespace {

std::string one_line(const std::string& text) {
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      line += "; ";
    } else {
      line += c;
    }
  }
  return line;
}

}  // namespace

int run_program(const std::string& program, const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const ProgramExit& exit) {
    if (exit.code() == 0) {
      std::fputs(exit.what(), stdout);
    } else {
      std::fprintf(stderr, "%s: %s\n", program.c_str(), one_line(exit.what()).c_str());
    }
    return exit.code();
  } catch (const std::exception& error) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), one_line(error.what()).c_str());
    return kExitFailure;
  }
}

}  // namespace dtrain::command_line
