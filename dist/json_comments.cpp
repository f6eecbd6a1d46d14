// Comment stripping is nlohmann's (ignore_comments); this file adds what the library lacks:
// duplicate-key detection through the parse callback, and the position where an unterminated
// block comment was opened (the library reports only the end of the text).
#include "dist/json_comments.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

namespace zt::dist {
namespace {

using json = nlohmann::json;

// Printing or comparing a JSON value recurses once per level, so a text nested thousands deep
// would overflow the stack in an error message; configs nest a few levels.
constexpr size_t kMaxJsonNesting = 64;

// One open object or array while parsing, to name a duplicate key by its dotted path.
struct OpenContainer {
  std::string path;  // "" for the root
  bool is_array = false;
  std::set<std::string> keys_seen;  // objects only
  std::string current_key;          // objects: the key whose value is being parsed
  size_t next_index = 0;            // arrays: the index of the element being parsed
};

std::string child_path(const OpenContainer& parent) {
  if (parent.is_array) return fmt::format("{}[{}]", parent.path, parent.next_index);
  return parent.path.empty() ? parent.current_key : parent.path + "." + parent.current_key;
}

// Tracks the container stack through nlohmann's parse events and throws on a repeated key.
class DuplicateKeyCheck {
 public:
  explicit DuplicateKeyCheck(std::string_view source_name) : source_name_(source_name) {}

  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open_.size() >= kMaxJsonNesting) {
          throw JsonTextError(fmt::format("{}: {}: nests deeper than {} levels", source_name_,
                                          child_path(open_.back()), kMaxJsonNesting));
        }
        open_.push_back({.path = open_.empty() ? "" : child_path(open_.back()),
                         .is_array = event == json::parse_event_t::array_start});
        break;
      case json::parse_event_t::key: {
        OpenContainer& object = open_.back();
        object.current_key = parsed.get<std::string>();
        if (!object.keys_seen.insert(object.current_key).second) {
          throw JsonTextError(
              fmt::format("{}: {}: duplicate key", source_name_, child_path(object)));
        }
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open_.pop_back();
        if (!open_.empty() && open_.back().is_array) open_.back().next_index += 1;
        break;
      case json::parse_event_t::value:
        if (!open_.empty() && open_.back().is_array) open_.back().next_index += 1;
        break;
    }
    return true;  // keep every value
  }

 private:
  std::string_view source_name_;
  std::vector<OpenContainer> open_;
};

// The byte offset of the `/*` that is still open at the end of `text`, if any; strings and
// line comments are skipped so that "/*" inside them does not count.
std::optional<size_t> unterminated_block_comment_start(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;  // the escaped character cannot end the string
      }
      ++i;
    } else if (text.substr(i, 2) == "//") {
      i = text.find('\n', i);
      if (i == std::string_view::npos) return std::nullopt;
    } else if (text.substr(i, 2) == "/*") {
      size_t end = text.find("*/", i + 2);
      if (end == std::string_view::npos) return i;
      i = end + 2;
    } else {
      ++i;
    }
  }
  return std::nullopt;
}

std::string line_and_column(std::string_view text, size_t offset) {
  std::string_view before = text.substr(0, offset);
  size_t line = 1 + size_t(std::count(before.begin(), before.end(), '\n'));
  size_t last_newline = before.rfind('\n');
  size_t column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
  return fmt::format("line {}, column {}", line, column);
}

// nlohmann's message minus its "[json.exception.parse_error.101] parse error " prefix, so that
// what remains reads "at line 3, column 1: syntax error while parsing ...".
std::string parse_error_detail(const json::parse_error& error) {
  std::string_view message = error.what();
  constexpr std::string_view prefix = "parse error ";
  size_t start = message.find(prefix);
  return std::string(start == std::string_view::npos ? message
                                                     : message.substr(start + prefix.size()));
}

// nlohmann's message minus its "[json.exception.out_of_range.406] " prefix.
std::string exception_detail(const json::exception& error) {
  std::string_view message = error.what();
  size_t end_of_id = message.find("] ");
  return std::string(end_of_id == std::string_view::npos ? message : message.substr(end_of_id + 2));
}

// " at line L, column C" of the first occurrence of the literal that `message` quotes
// ('...'), or "" when there is none or the text does not hold it.
std::string quoted_literal_position(std::string_view text, std::string_view message) {
  size_t open = message.find('\'');
  size_t close = open == std::string_view::npos ? open : message.find('\'', open + 1);
  if (close == std::string_view::npos || close == open + 1) return "";
  size_t offset = text.find(message.substr(open + 1, close - open - 1));
  return offset == std::string_view::npos ? "" : " at " + line_and_column(text, offset);
}

}  // namespace

nlohmann::json parse_json_with_comments(std::string_view text, std::string_view source_name) {
  DuplicateKeyCheck duplicate_check(source_name);
  json::parser_callback_t callback = [&duplicate_check](int /*depth*/, json::parse_event_t event,
                                                        json& parsed) {
    return duplicate_check.on_event(event, parsed);
  };
  try {
    return json::parse(text, callback, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& error) {
    std::optional<size_t> start = unterminated_block_comment_start(text);
    if (start &&
        std::string_view(error.what()).find("missing closing '*/'") != std::string_view::npos) {
      throw JsonTextError(fmt::format("{}: unterminated /* comment opened at {}", source_name,
                                      line_and_column(text, *start)));
    }
    throw JsonTextError(fmt::format("{}: invalid JSON {}", source_name, parse_error_detail(error)));
  } catch (const json::out_of_range& error) {
    // A number past double's range (1e400) is reported as out_of_range, not as a parse_error,
    // and without a position: find the literal it quotes to say where it is.
    throw JsonTextError(fmt::format("{}: invalid JSON{}: {}", source_name,
                                    quoted_literal_position(text, error.what()),
                                    exception_detail(error)));
  }
}

}  // namespace zt::dist
