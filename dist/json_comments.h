// JSON text as DeepSpeed config files write it: `//` and `/* */` comments allowed (nlohmann's
// ignore_comments does the stripping; comment markers inside strings are data), duplicate keys
// rejected, every error one line that starts with the source's name and says where.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace zt::dist {

// Invalid JSON (a number past double's range included), an unterminated comment, a duplicate key
// or nesting deeper than 64 levels.
class JsonTextError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses `text`; `source_name` (a file name) starts every error message, e.g.
//   "ds_config.json: invalid JSON at line 3, column 1: syntax error while parsing value - ..."
//   "ds_config.json: unterminated /* comment opened at line 2, column 12"
//   "ds_config.json: optimizer.params.lr: duplicate key"
nlohmann::json parse_json_with_comments(std::string_view text, std::string_view source_name);

}  // namespace zt::dist
