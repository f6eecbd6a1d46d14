// The command line of the apps and benchmarks: one table of flags per program, from which both
// the parser and the --help text are made, so the two cannot disagree. `--name value`,
// `--name=value`, switches and positional arguments; typed getters whose defaults are the
// table's; errors that name the flag and what was expected. An undeclared flag is an error.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace zt::apps {

struct FlagSpec {
  std::string name;           // without the dashes
  std::string value_name;     // the value as the usage shows it ("N", "PATH", "cnn|mlp"); empty:
                              // a switch. With '|', the choices that get_choice accepts.
  std::string default_value;  // the value when the flag is absent, as typed; empty: none
  std::string help;           // one line
  std::string shown_default = "";  // what the usage says when default_value is empty ("none")
};

// One program's command line: what --help prints and what the parser accepts.
struct CommandLine {
  std::string program;  // as the usage names it: "mnist_train", "bench/dp_step"
  std::string summary;  // what the program does, a line or two
  std::vector<FlagSpec> flags;
  std::string positionals = "";  // their synopsis ("DIR [TAG] OUT"); empty: none accepted
  size_t min_positionals = 0, max_positionals = 0;
};

// --help or -h was given (in a flag's place, not as a flag's value).
struct HelpRequested {};

class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The command line's shape is wrong (an unknown flag, a stray argument, a missing value): the
// usage is printed after the message.
class UsageError : public FlagError {
 public:
  using FlagError::FlagError;
};

// The --help text: synopsis, summary, then each flag with its value and default.
inline std::string usage_text(const CommandLine& command_line) {
  std::string synopsis = command_line.program + " [FLAGS]";
  if (!command_line.positionals.empty()) synopsis += " " + command_line.positionals;
  std::string text = fmt::format("usage: {}\n{}\n\nflags:\n", synopsis, command_line.summary);
  auto left_column = [](const FlagSpec& flag) {
    return flag.value_name.empty() ? "--" + flag.name : "--" + flag.name + " " + flag.value_name;
  };
  size_t width = std::string("-h, --help").size();
  for (const FlagSpec& flag : command_line.flags) width = std::max(width, left_column(flag).size());
  width = std::min<size_t>(width, 30);  // a longer one puts its help on the next line
  // A line of at most 100 columns: what does not fit goes on the next, under the help.
  auto add_line = [&](const std::string& left, const std::string& help, const std::string& note) {
    std::string indent(width + 4, ' ');
    std::string line = left.size() > width ? fmt::format("  {}\n{}{}", left, indent, help)
                                           : fmt::format("  {:{}}  {}", left, width, help);
    size_t last_line = line.rfind('\n') + 1;  // 0 when there is none
    if (!note.empty() && line.size() - last_line + 1 + note.size() > 100) {
      line += "\n" + indent + note;
    } else if (!note.empty()) {
      line += " " + note;
    }
    text += line + "\n";
  };
  for (const FlagSpec& flag : command_line.flags) {
    std::string shown = !flag.default_value.empty()   ? flag.default_value
                        : !flag.shown_default.empty() ? flag.shown_default
                                                      : "none";
    add_line(left_column(flag), flag.help,
             flag.value_name.empty() ? "" : fmt::format("(default: {})", shown));
  }
  add_line("-h, --help", "print this help and exit", "");
  return text;
}

class Flags {
 public:
  // Throws HelpRequested when --help or -h stands in a flag's place anywhere (it wins over the
  // command line's other errors), else UsageError for the first misshapen argument.
  Flags(int argc, char** argv, const CommandLine& command_line) : command_line_(command_line) {
    std::string first_error;
    bool help = false;
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        help = true;
      } else if (arg.rfind("-", 0) != 0 || arg == "-") {
        positionals_.push_back(arg);
      } else {
        std::string error = take_flag(arg, argc, argv, i);
        if (first_error.empty()) first_error = error;
      }
    }
    if (help) throw HelpRequested{};
    if (first_error.empty()) first_error = check_positional_count();
    if (!first_error.empty()) throw UsageError(first_error);
  }

  bool has(const std::string& name) const {
    spec(name);
    return values_.contains(name);
  }

  // The value given, else the table's default ("" when it has none).
  std::string get_string(const std::string& name) const {
    auto found = values_.find(name);
    return found == values_.end() ? spec(name).default_value : found->second;
  }

  // One of the choices that the flag's value_name lists ("cnn|mlp").
  std::string get_choice(const std::string& name) const {
    const std::string& choices = spec(name).value_name;
    std::string value = get_string(name);
    if (("|" + choices + "|").find("|" + value + "|") == std::string::npos) {
      throw FlagError(fmt::format("--{}: expected one of {}, got '{}'", name, choices, value));
    }
    return value;
  }

  int64_t get_int(const std::string& name, int64_t min_value) const {
    std::string text = value_or_default(name);
    char* end = nullptr;
    long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || value < min_value) {
      throw FlagError(
          fmt::format("--{}: expected an integer >= {}, got '{}'", name, min_value, text));
    }
    return value;
  }

  double get_double(const std::string& name, double min_exclusive) const {
    std::string text = value_or_default(name);
    char* end = nullptr;
    double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(value > min_exclusive)) {
      throw FlagError(
          fmt::format("--{}: expected a number > {}, got '{}'", name, min_exclusive, text));
    }
    return value;
  }

  double get_non_negative_double(const std::string& name) const {
    double value = get_double(name, -std::numeric_limits<double>::infinity());
    if (!(value >= 0.0)) {
      throw FlagError(
          fmt::format("--{}: expected a number >= 0, got '{}'", name, value_or_default(name)));
    }
    return value;
  }

  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  // Records the flag at argv[i] (and its value, which may be the next argument); returns what
  // is wrong with it, or "".
  std::string take_flag(const std::string& arg, int argc, char** argv, int& i) {
    if (arg.rfind("--", 0) != 0) return fmt::format("unexpected argument '{}'", arg);
    std::string name = arg.substr(2), value;
    size_t equals = name.find('=');
    bool has_inline_value = equals != std::string::npos;
    if (has_inline_value) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const FlagSpec* flag = find(name);
    if (flag == nullptr) return fmt::format("unknown flag --{}", name);
    if (flag->value_name.empty()) {
      if (has_inline_value) return fmt::format("--{} takes no value", name);
      values_[name] = "1";
      return "";
    }
    if (!has_inline_value) {
      if (i + 1 >= argc) return fmt::format("--{} needs a value", name);
      value = argv[++i];
    }
    values_[name] = value;
    return "";
  }

  std::string check_positional_count() const {
    size_t count = positionals_.size();
    if (count >= command_line_.min_positionals && count <= command_line_.max_positionals) return "";
    if (command_line_.max_positionals == 0)
      return fmt::format("unexpected argument '{}'", positionals_.front());
    return fmt::format("expected {}, got {} arguments", command_line_.positionals, count);
  }

  const FlagSpec* find(const std::string& name) const {
    for (const FlagSpec& flag : command_line_.flags) {
      if (flag.name == name) return &flag;
    }
    return nullptr;
  }

  // A flag the program reads but its table lacks is the program's bug, not the user's.
  const FlagSpec& spec(const std::string& name) const {
    const FlagSpec* flag = find(name);
    if (flag == nullptr) {
      throw std::logic_error(
          fmt::format("{}: --{} is read but not in the flag table", command_line_.program, name));
    }
    return *flag;
  }

  // For the numeric getters: a flag without a default must be tested with has() first.
  std::string value_or_default(const std::string& name) const {
    std::string value = get_string(name);
    if (!has(name) && value.empty()) {
      throw std::logic_error(
          fmt::format("{}: --{} has no default; check has() first", command_line_.program, name));
    }
    return value;
  }

  const CommandLine& command_line_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
};

}  // namespace zt::apps
