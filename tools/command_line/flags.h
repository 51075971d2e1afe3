#pragma once
// FlagParser: the command line of every dtrain program (the examples and the tools) — "--name
// value" and "--name=value" flags bound to variables, required arguments in order, and a
// generated --help. Each variable's value at add() time is its default and shows in --help.
//
//   int64_t batch = 128;
//   FlagParser flags("mlp", "Trains an MLP on Fashion-MNIST.");
//   flags.add("batch", batch, "examples per step");
//   flags.parse(argc, argv);  // --help: usage on stdout, exit 0; a bad flag: one line, exit 2
//
// Run under run_program (tools/command_line/program_exit.h), which turns what parse throws into
// that output and exit code.
#include <cstdint>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace dtrain::command_line {

class FlagParser {
 public:
  FlagParser(std::string program, std::string summary);

  void add(const std::string& name, int64_t& value, const std::string& help);
  void add(const std::string& name, uint64_t& value, const std::string& help);
  void add(const std::string& name, double& value, const std::string& help);
  void add(const std::string& name, std::string& value, const std::string& help);
  // A switch: "--name" sets it (no value); "--name=false" clears it.
  void add(const std::string& name, bool& value, const std::string& help);
  // A string that must be one of choices.
  void add_choice(const std::string& name, std::string& value, std::vector<std::string> choices,
                  const std::string& help);
  // A required argument without a flag ("<name>" in the usage line), taken from the arguments
  // that do not start with "--", in the order added; choices, when given, are its only values.
  void add_argument(const std::string& name, std::string& value, const std::string& help,
                    std::vector<std::string> choices = {});

  // --help shows text as the flag's default instead of the variable's value, for a default
  // computed after parsing ("a tenth of --steps").
  void describe_default(const std::string& name, const std::string& text);

  // Sets the bound variables from argv and returns the names of the flags argv gave (so a
  // program can tell a value the user chose from a default). Throws ProgramExit: code 0 with the
  // usage text for --help, code 2 naming the problem for an unknown flag, a missing or malformed
  // value, a missing or extra argument.
  std::set<std::string> parse(int argc, char** argv) const;

  std::string usage() const;

 private:
  using Target = std::variant<int64_t*, uint64_t*, double*, std::string*, bool*>;
  struct Flag {
    std::string name;
    Target target;
    std::string help;
    std::string default_text;
    std::vector<std::string> choices;  // empty: any value
  };

  void add_flag(const std::string& name, Target target, const std::string& help, std::vector<std::string> choices = {});
  const Flag* find(const std::string& name) const;
  // what: "--batch" for a flag, "<direction>" for an argument (in messages).
  void assign(const Flag& flag, const std::string& what, const std::string& value) const;

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
  std::vector<Flag> arguments_;
};

}  // namespace dtrain::command_line

// The examples (examples/) call it by their own namespace's name.
namespace dtrain::examples {
using command_line::FlagParser;
}  // namespace dtrain::examples
