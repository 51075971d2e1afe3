#include "tools/command_line/flags.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <type_traits>

#include "core/error.h"
#include "tools/command_line/program_exit.h"

namespace dtrain::command_line {

namespace {

// The text of a value as --help shows it.
std::string value_text(const int64_t* value) { return std::to_string(*value); }
std::string value_text(const uint64_t* value) { return std::to_string(*value); }
// Empty or with control characters (a newline), quoted and escaped, so --help stays one line per flag.
std::string value_text(const std::string* value) {
  std::string escaped;
  bool quote = value->empty();
  for (char c : *value) {
    if (c == '\n') {
      escaped += "\\n";
      quote = true;
    } else if (c == '\t') {
      escaped += "\\t";
      quote = true;
    } else {
      escaped += c;
    }
  }
  return quote ? "\"" + escaped + "\"" : escaped;
}
std::string value_text(const bool* value) { return *value ? "true" : "false"; }
std::string value_text(const double* value) {
  std::ostringstream text;
  text << *value;
  return text.str();
}

template <typename Integer>
bool parse_integer(const std::string& text, Integer& value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

bool parse_double(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size();
}

}  // namespace

FlagParser::FlagParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagParser::add(const std::string& name, int64_t& value, const std::string& help) { add_flag(name, &value, help); }
void FlagParser::add(const std::string& name, uint64_t& value, const std::string& help) { add_flag(name, &value, help); }
void FlagParser::add(const std::string& name, double& value, const std::string& help) { add_flag(name, &value, help); }
void FlagParser::add(const std::string& name, std::string& value, const std::string& help) {
  add_flag(name, &value, help);
}
void FlagParser::add(const std::string& name, bool& value, const std::string& help) { add_flag(name, &value, help); }

void FlagParser::add_choice(const std::string& name, std::string& value, std::vector<std::string> choices,
                            const std::string& help) {
  add_flag(name, &value, help, std::move(choices));
}

void FlagParser::add_argument(const std::string& name, std::string& value, const std::string& help,
                              std::vector<std::string> choices) {
  arguments_.push_back({name, &value, help, "", std::move(choices)});
}

void FlagParser::add_flag(const std::string& name, Target target, const std::string& help,
                          std::vector<std::string> choices) {
  std::string default_text = std::visit([](const auto* value) { return value_text(value); }, target);
  flags_.push_back({name, target, help, default_text, std::move(choices)});
}

void FlagParser::describe_default(const std::string& name, const std::string& text) {
  auto found = std::find_if(flags_.begin(), flags_.end(), [&](const Flag& flag) { return flag.name == name; });
  if (found == flags_.end()) throw std::logic_error("FlagParser::describe_default: no flag --" + name);
  found->default_text = text;
}

const FlagParser::Flag* FlagParser::find(const std::string& name) const {
  auto found = std::find_if(flags_.begin(), flags_.end(), [&](const Flag& flag) { return flag.name == name; });
  return found == flags_.end() ? nullptr : &*found;
}

void FlagParser::assign(const Flag& flag, const std::string& what, const std::string& value) const {
  auto reject = [&](const char* expected) {
    usage_error(what, " expects ", expected, ", got '", value, "' (see --help)");
  };
  if (!flag.choices.empty() && std::find(flag.choices.begin(), flag.choices.end(), value) == flag.choices.end()) {
    std::string list;
    for (const std::string& choice : flag.choices) list += (list.empty() ? "" : ", ") + choice;
    reject(("one of " + list).c_str());
  }
  std::visit(
      [&](auto* target) {
        using Value = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<Value, std::string>) {
          *target = value;
        } else if constexpr (std::is_same_v<Value, bool>) {
          if (value != "true" && value != "false") reject("true or false");
          *target = value == "true";
        } else if constexpr (std::is_same_v<Value, double>) {
          if (!parse_double(value, *target)) reject("a number");
        } else if constexpr (std::is_same_v<Value, int64_t>) {
          if (!parse_integer(value, *target)) reject("an integer");
        } else {
          if (!parse_integer(value, *target)) reject("a non-negative integer");
        }
      },
      flag.target);
}

std::set<std::string> FlagParser::parse(int argc, char** argv) const {
  std::set<std::string> given;
  size_t arguments_taken = 0;
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument == "--help" || argument == "-h") throw ProgramExit(0, usage());
    if (argument.rfind("--", 0) != 0) {
      if (arguments_taken == arguments_.size()) {
        usage_error("unexpected argument '", argument, "' (",
                    arguments_.empty() ? std::string("flags start with --")
                                       : detail::concat("expected ", arguments_.size(), " arguments"),
                    "; see --help)");
      }
      const Flag& expected = arguments_[arguments_taken++];
      assign(expected, "<" + expected.name + ">", argument);
      continue;
    }

    std::string name = argument.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
      has_value = true;
    }
    const Flag* flag = find(name);
    if (flag == nullptr) usage_error("unknown flag --", name, " (see --help)");
    bool is_switch = std::holds_alternative<bool*>(flag->target);
    if (!has_value && is_switch) {
      value = "true";
    } else if (!has_value) {
      if (i + 1 >= argc) usage_error("--", name, " needs a value (see --help)");
      value = argv[++i];
    }
    assign(*flag, "--" + name, value);
    given.insert(name);
  }
  if (arguments_taken < arguments_.size()) {
    usage_error("missing <", arguments_[arguments_taken].name, "> (see --help)");
  }
  return given;
}

std::string FlagParser::usage() const {
  std::ostringstream text;
  text << "usage: " << program_ << " [flags]";
  for (const Flag& argument : arguments_) text << " <" << argument.name << ">";
  text << "\n" << summary_ << "\n";
  size_t width = 4;  // "help"
  for (const Flag& flag : flags_) width = std::max(width, flag.name.size());
  for (const Flag& argument : arguments_) width = std::max(width, argument.name.size());
  if (!arguments_.empty()) text << "\narguments:\n";
  for (const Flag& argument : arguments_) {
    // Lined up with the flags' help: "<name>" is as wide as "--name".
    text << "  <" << argument.name << ">" << std::string(width - argument.name.size() + 2, ' ') << argument.help;
    if (!argument.choices.empty()) {
      std::string list;
      for (const std::string& choice : argument.choices) list += (list.empty() ? "" : ", ") + choice;
      text << " (one of " << list << ")";
    }
    text << "\n";
  }
  text << "\nflags:\n";
  for (const Flag& flag : flags_) {
    text << "  --" << flag.name << std::string(width - flag.name.size() + 2, ' ') << flag.help << " (default "
         << flag.default_text << ")\n";
  }
  text << "  --help" << std::string(width - 4 + 2, ' ') << "show this text\n";
  return text.str();
}

}  // namespace dtrain::command_line
