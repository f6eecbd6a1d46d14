// A small command-line flag parser for the apps: `--name value` and `--name=value`, typed
// getters with defaults, and errors that name the flag and what was expected. Every flag a
// program reads must be declared, so a misspelt flag is an error rather than ignored.
#pragma once

#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace zt::apps {

class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Flags {
 public:
  // `known` lists every flag (without dashes); `switches` those that take no value.
  Flags(int argc, char** argv, std::set<std::string> known, std::set<std::string> switches = {}) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0) throw FlagError(fmt::format("unexpected argument '{}'", arg));
      std::string name = arg.substr(2), value;
      size_t equals = name.find('=');
      bool has_inline_value = equals != std::string::npos;
      if (has_inline_value) {
        value = name.substr(equals + 1);
        name = name.substr(0, equals);
      }
      if (!known.contains(name) && !switches.contains(name)) {
        throw FlagError(fmt::format("unknown flag --{}", name));
      }
      if (switches.contains(name)) {
        if (has_inline_value) throw FlagError(fmt::format("--{} takes no value", name));
        values_[name] = "1";
        continue;
      }
      if (!has_inline_value) {
        if (i + 1 >= argc) throw FlagError(fmt::format("--{} needs a value", name));
        value = argv[++i];
      }
      values_[name] = value;
    }
  }

  bool has(const std::string& name) const { return values_.contains(name); }

  std::string get_string(const std::string& name, const std::string& fallback) const {
    auto found = values_.find(name);
    return found == values_.end() ? fallback : found->second;
  }

  std::string get_choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const {
    std::string value = get_string(name, fallback);
    for (const std::string& choice : choices) {
      if (choice == value) return value;
    }
    throw FlagError(
        fmt::format("--{}: expected one of {}, got '{}'", name, fmt::join(choices, "|"), value));
  }

  int64_t get_int(const std::string& name, int64_t fallback, int64_t min_value) const {
    auto found = values_.find(name);
    if (found == values_.end()) return fallback;
    char* end = nullptr;
    long long value = std::strtoll(found->second.c_str(), &end, 10);
    if (found->second.empty() || *end != '\0' || value < min_value) {
      throw FlagError(
          fmt::format("--{}: expected an integer >= {}, got '{}'", name, min_value, found->second));
    }
    return value;
  }

  double get_double(const std::string& name, double fallback, double min_exclusive) const {
    auto found = values_.find(name);
    if (found == values_.end()) return fallback;
    char* end = nullptr;
    double value = std::strtod(found->second.c_str(), &end);
    if (found->second.empty() || *end != '\0' || !(value > min_exclusive)) {
      throw FlagError(fmt::format("--{}: expected a number > {}, got '{}'", name, min_exclusive,
                                  found->second));
    }
    return value;
  }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace zt::apps
