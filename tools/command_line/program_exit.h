#pragma once
// How every dtrain program (the examples and the tools) ends early: a ProgramExit carries the
// exit code and a one-line message. Each main() runs everything through run_program, which
// turns a ProgramExit or any error into that message and code, never into an abort.
#include <functional>
#include <stdexcept>
#include <string>

#include "core/error.h"

namespace dtrain::command_line {

// Exit codes: 0 after --help, 2 for a usage problem (a bad flag, a missing dataset), 1 for any
// other failure while running.
inline constexpr int kExitUsage = 2;
inline constexpr int kExitFailure = 1;

class ProgramExit : public std::runtime_error {
 public:
  ProgramExit(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// Ends the program with exit code 2 and the parts as the reason: usage_error("--batch must be >= 1").
template <typename... Parts>
[[noreturn]] void usage_error(const Parts&... parts) {
  throw ProgramExit(kExitUsage, detail::concat(parts...));
}

// Runs body and returns the exit code for main: 0 when it returns; for a ProgramExit its code,
// its message on stdout (code 0) or stderr; for any other exception 1, with "<program>: error:
// <what>" on stderr. Messages reduce to one line (newlines become "; "), so a script or a test
// reading stderr gets the reason, not a wall of text.
int run_program(const std::string& program, const std::function<void()>& body);

// Reads a program's input data: a dtrain::Error from read (a missing or unreadable file)
// becomes a usage error, exit code 2, with its message as the reason.
template <typename Read>
auto read_input(const Read& read) {
  try {
    return read();
  } catch (const Error& error) {
    usage_error(error.what());
  }
}

}  // namespace dtrain::command_line

// The examples (examples/) call these by their own namespace's names.
namespace dtrain::examples {
using command_line::kExitFailure;
using command_line::kExitUsage;
using command_line::ProgramExit;
using command_line::read_input;
using command_line::run_program;
using command_line::usage_error;
}  // namespace dtrain::examples
