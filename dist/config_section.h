// Reading one JSON object of ds_config.json with DeepSpeed's rules: each typed read registers
// its key, so whatever is left at finish() is an unknown key (a warning naming its path, or an
// error where a section says so); a wrong type or value is an error naming the path and what
// was expected, recorded so that parsing goes on and every problem is reported at once. Internal to
// dist/config.cpp and dist/config_optimizer_blocks.cpp, which hold the sections themselves.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dist/config.h"

namespace zt::dist::config_reading {

using json = nlohmann::json;

// Thrown by ParseContext::fail after it has recorded the problem: it leaves the key or section
// being read, and parse_config catches it and reads on with the next one (read_on). Outside
// parse_config it is the one-problem ConfigError it derives from.
class SectionAbandoned : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// Where one parse's warnings and errors go. A problem is recorded, not thrown, so that one run
// reports every problem of a config: error() records and goes on (a typed read that rejects a
// value keeps the field's default), fail() records and leaves the current section.
class ParseContext {
 public:
  ParseContext(std::string source_name, std::vector<std::string>* warnings)
      : source_name_(std::move(source_name)), warnings_(warnings) {}

  // One line per key: a later problem of a key already reported (a check that follows from
  // the first, such as "required" after an unresolved "auto") is not repeated.
  void error(std::string_view path, std::string_view message) const {
    if (!path.empty() && !paths_with_errors_.insert(std::string(path)).second) return;
    errors_.push_back(path.empty() ? fmt::format("{}: {}", source_name_, message)
                                   : fmt::format("{}: {}: {}", source_name_, path, message));
  }
  [[noreturn]] void fail(std::string_view path, std::string_view message) const {
    error(path, message);
    throw SectionAbandoned(errors_.back());
  }
  void warn(std::string_view path, std::string_view message) const {
    std::string line = fmt::format("{}: {}: {}", source_name_, path, message);
    if (warnings_ != nullptr) {
      warnings_->push_back(line);
    } else {
      fmt::print(stderr, "warning: {}\n", line);
    }
    warnings_seen_.push_back(std::move(line));
  }
  // Runs one reader; a fail() inside it ends only that reader.
  template <typename Reader>
  void read_on(Reader&& reader) const {
    try {
      reader();
    } catch (const SectionAbandoned&) {
    }
  }
  const std::vector<std::string>& errors() const { return errors_; }
  // Every problem recorded so far as one ConfigError, with the warnings given before them.
  ConfigError all_problems() const { return ConfigError(errors_, warnings_seen_); }

 private:
  std::string source_name_;
  std::vector<std::string>* warnings_;
  // Mutable: sections hold the context by const reference and record through it.
  mutable std::vector<std::string> errors_;
  mutable std::vector<std::string> warnings_seen_;
  mutable std::set<std::string, std::less<>> paths_with_errors_;
};

// A JSON value as the user wrote it, for "got ..." (strings keep their quotes).
inline std::string shown(const json& value) {
  return value.dump();
}

// An integral JSON number as int64; DeepSpeed's int fields accept 5e8.
inline std::optional<int64_t> as_int64(const json& value) {
  if (value.is_number_unsigned()) {
    uint64_t unsigned_value = value.get<uint64_t>();
    if (unsigned_value > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(unsigned_value);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    double number = value.get<double>();
    if (std::isfinite(number) && number == std::floor(number) && std::fabs(number) < 9.2e18) {
      return int64_t(number);
    }
  }
  return std::nullopt;
}

// Equality as DeepSpeed would see it: 5e8 and 500000000 are the same number.
inline bool same_value(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    std::optional<int64_t> a_int = as_int64(a), b_int = as_int64(b);
    if (a_int && b_int) return *a_int == *b_int;
    return a.get<double>() == b.get<double>();
  }
  return a == b;
}

struct NumberRange {
  double min = -std::numeric_limits<double>::infinity();
  bool min_open = false;
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;

  bool contains(double x) const {
    return (min_open ? x > min : x >= min) && (max_open ? x < max : x <= max);
  }
  std::string text() const {
    if (std::isinf(max)) return fmt::format("a number {} {}", min_open ? ">" : ">=", min);
    return fmt::format("a number in {}{}, {}{}", min_open ? "(" : "[", min, max,
                       max_open ? ")" : "]");
  }
};
constexpr NumberRange kNonNegative{.min = 0.0};
constexpr NumberRange kPositive{.min = 0.0, .min_open = true};
constexpr NumberRange kUnitOpenRight{.min = 0.0, .max = 1.0, .max_open = true};  // betas, momenta
constexpr NumberRange kUnitClosed{.min = 0.0, .max = 1.0};

struct IntRange {
  int64_t min = std::numeric_limits<int64_t>::min();
  int64_t max = std::numeric_limits<int64_t>::max();

  bool contains(int64_t x) const { return x >= min && x <= max; }
  std::string text() const {
    if (max == std::numeric_limits<int64_t>::max()) return fmt::format("an integer >= {}", min);
    return fmt::format("{}..{}", min, max);
  }
};
constexpr IntRange kCount{.min = 1};
constexpr IntRange kNonNegativeCount{.min = 0};

inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

inline std::string lowercase(std::string_view text) {
  std::string result(text);
  std::transform(result.begin(), result.end(), result.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return result;
}

struct SectionOptions {
  bool auto_keeps_default = false;  // pydantic-backed sections: "auto" -> the default
  std::string unknown_key_error;    // non-empty: an unknown key is this error, not a warning
};

// One JSON object of the config (or an absent one, which reads as all defaults).
class Section {
 public:
  using Options = SectionOptions;

  Section(const ParseContext& context, const json* object, std::string path, Options options = {})
      : context_(context), object_(object), path_(std::move(path)), options_(std::move(options)) {}

  bool present() const { return object_ != nullptr; }
  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }
  [[noreturn]] void fail(std::string_view key, std::string_view message) const {
    context_.fail(path_of(key), message);
  }
  // Problems recorded so far in the whole file (a check that depends on a rejected value
  // compares it before and after the reads, and stays silent).
  size_t problems_so_far() const { return context_.errors().size(); }
  // Records a problem with `key` and reads on (the field keeps its default).
  void reject(std::string_view key, std::string_view message) const {
    context_.error(path_of(key), message);
  }

  // The value of `key`, registered as known; nullptr when absent, null, or "auto" where that
  // keeps the default.
  const json* take(std::string_view key) {
    const bool first_take = known_keys_.insert(std::string(key)).second;
    if (object_ == nullptr) return nullptr;
    auto found = object_->find(key);
    if (found == object_->end() || found->is_null()) return nullptr;
    if (found->is_string() && *found == "auto") {
      // Left over after the program's values filled what they could (dist/config_auto.h).
      if (!first_take) return nullptr;
      if (options_.auto_keeps_default) {
        context_.warn(path_of(key), "\"auto\" keeps DeepSpeed's default");
      } else {
        context_.error(path_of(key),
                       "\"auto\" is not resolved: the program gives no value for it (give the "
                       "value here, or the program's flag for it)");
      }
      return nullptr;
    }
    return &*found;
  }
  // Keys that are inert here (they matter only with features that are rejected elsewhere).
  void ignore(std::initializer_list<std::string_view> keys) {
    for (std::string_view key : keys) known_keys_.insert(std::string(key));
  }

  bool read_bool(std::string_view key, bool& field) {
    const json* value = take(key);
    if (value == nullptr) return false;
    if (!value->is_boolean()) {
      reject(key, fmt::format("expected true or false, got {}", shown(*value)));
      return false;
    }
    field = value->get<bool>();
    return true;
  }
  bool read_number(std::string_view key, double& field, NumberRange range) {
    const json* value = take(key);
    if (value == nullptr) return false;
    if (!value->is_number() || !range.contains(value->get<double>())) {
      reject(key, fmt::format("expected {}, got {}", range.text(), shown(*value)));
      return false;
    }
    field = value->get<double>();
    return true;
  }
  template <typename Int>
  bool read_int(std::string_view key, Int& field, IntRange range) {
    const json* value = take(key);
    if (value == nullptr) return false;
    std::optional<int64_t> integer = as_int64(*value);
    if (!integer || !range.contains(*integer) || *integer < std::numeric_limits<Int>::min() ||
        *integer > std::numeric_limits<Int>::max()) {
      reject(key, fmt::format("expected {}, got {}", range.text(), shown(*value)));
      return false;
    }
    field = Int(*integer);
    return true;
  }
  // A string from a fixed set, compared case-sensitively.
  bool read_choice(std::string_view key, std::string& field,
                   std::initializer_list<std::string_view> choices) {
    const json* value = take(key);
    if (value == nullptr) return false;
    if (value->is_string() &&
        std::find(choices.begin(), choices.end(), value->get<std::string>()) != choices.end()) {
      field = value->get<std::string>();
      return true;
    }
    std::vector<std::string> quoted;
    for (std::string_view choice : choices) quoted.push_back(fmt::format("\"{}\"", choice));
    reject(key, fmt::format("expected one of {}, got {}", fmt::join(quoted, ", "), shown(*value)));
    return false;
  }
  void warn(std::string_view key, std::string_view message) const {
    context_.warn(path_of(key), message);
  }
  // A key that would change training and is not implemented: accepted at DeepSpeed's default
  // only, and any other value rejected with `reason` (what it would change).
  void require_default(std::string_view key, const json& default_value, std::string_view reason) {
    const json* value = take(key);
    if (value == nullptr || same_value(*value, default_value)) return;
    reject(key, fmt::format("{}: {}", shown(*value), reason));
  }
  // A key whose feature is not implemented: accepted only at DeepSpeed's default value.
  void require_default(std::string_view key, const json& default_value) {
    const json* value = take(key);
    if (value == nullptr || same_value(*value, default_value)) return;
    if (default_value.is_boolean() && !value->is_boolean()) {
      reject(key, fmt::format("expected true or false, got {}", shown(*value)));
      return;
    }
    reject(key, fmt::format("{} is not implemented yet (only the default {} is accepted)",
                            shown(*value), shown(default_value)));
  }
  // A nested object; absent (or null) gives an absent section.
  Section section(std::string_view key, Options options = {}) {
    const json* value = take(key);
    if (value != nullptr && !value->is_object()) {
      fail(key, fmt::format("expected an object {{...}}, got {}", shown(*value)));
    }
    return Section(context_, value, path_of(key), std::move(options));
  }

  // Reports the keys no read registered: a warning (with the nearest known key), or an error.
  void finish() const {
    if (object_ == nullptr) return;
    for (const auto& [key, value] : object_->items()) {
      if (known_keys_.contains(key)) continue;
      if (!options_.unknown_key_error.empty()) {
        reject(key, options_.unknown_key_error + suggestion(key));
        continue;
      }
      context_.warn(path_of(key), "unknown key, ignored" + suggestion(key));
    }
  }

 private:
  std::string suggestion(std::string_view unknown_key) const {
    const std::string* nearest = nullptr;
    size_t nearest_distance = 3;  // suggest only close misspellings
    for (const std::string& known : known_keys_) {
      size_t distance = edit_distance(lowercase(unknown_key), lowercase(known));
      if (distance < nearest_distance) {
        nearest_distance = distance;
        nearest = &known;
      }
    }
    return nearest == nullptr ? "" : fmt::format(" (did you mean \"{}\"?)", *nearest);
  }

  const ParseContext& context_;
  const json* object_;
  std::string path_;
  Options options_;
  std::set<std::string, std::less<>> known_keys_;
};

}  // namespace zt::dist::config_reading
