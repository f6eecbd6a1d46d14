// --trace DIR and --trace-steps A:B: a shortcut to the config's trace block (one Chrome/Perfetto
// trace file per rank, observe/trace_recorder.h), so that a run is traced without editing its
// ds_config.json. The flags override the block; without --trace the config's block holds.
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "dist/config.h"

namespace zt::apps {

struct TraceOptions {
  std::string dir;                        // "": the config's trace block as it is
  int64_t first_step = 0, last_step = 0;  // 0: the config's steps
};

inline std::vector<FlagSpec> trace_flags() {
  return {{"trace", "DIR", "", "write a Chrome/Perfetto trace per rank into DIR (the trace block)",
           "the config's trace block"},
          {"trace-steps", "A:B", "", "with --trace: trace training steps A to B (or one step A)",
           "the config's, else step 1"}};
}

inline TraceOptions read_trace_options(const Flags& flags) {
  TraceOptions options;
  options.dir = flags.get_string("trace");
  if (flags.has("trace") && options.dir.empty())
    throw FlagError("--trace: expected a folder for the trace files, got ''");
  if (!flags.has("trace-steps")) return options;
  if (!flags.has("trace")) throw FlagError("--trace-steps needs --trace DIR");
  std::string text = flags.get_string("trace-steps");
  size_t colon = text.find(':');
  std::string first = text.substr(0, colon);
  std::string last = colon == std::string::npos ? first : text.substr(colon + 1);
  auto parse = [](const std::string& part, int64_t& into) {
    auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), into);
    return !part.empty() && error == std::errc() && end == part.data() + part.size();
  };
  if (!parse(first, options.first_step) || !parse(last, options.last_step) ||
      options.first_step < 1 || options.last_step < options.first_step)
    throw FlagError(fmt::format(
        "--trace-steps: expected A:B (training steps A to B, 1 <= A <= B) or a step, got '{}'",
        text));
  return options;
}

// `config` with its trace block switched on as the flags say (unchanged without --trace).
inline dist::Config with_trace_flags(dist::Config config, const TraceOptions& options) {
  if (options.dir.empty()) return config;
  config.observe.trace.enabled = true;
  config.observe.trace.output_path = options.dir;
  if (options.first_step > 0) {
    config.observe.trace.first_step = options.first_step;
    config.observe.trace.last_step = options.last_step;
  }
  return config;
}

}  // namespace zt::apps
