// The observability blocks. DeepSpeed's monitor and comms_logger blocks are pydantic models
// that reject unknown keys; so do we.
#include "dist/config_monitor_blocks.h"

#include <fmt/format.h>

#include <charconv>

namespace zt::dist::config_reading {
namespace {

constexpr const char* kUnknownKey = "unknown key (DeepSpeed rejects it)";

bool read_string(Section& section, std::string_view key, std::string& field) {
  const json* value = section.take(key);
  if (value == nullptr) return false;
  if (!value->is_string())
    section.fail(key, fmt::format("expected a string, got {}", shown(*value)));
  field = value->get<std::string>();
  return true;
}

// "A:B" (steps A to B), "A" or a number (that one step); 1 <= A <= B.
void read_trace_steps(Section& section, observe::TraceConfig& trace) {
  const json* value = section.take("steps");
  if (value == nullptr) return;
  auto fail = [&] {
    section.fail("steps", fmt::format("expected \"A:B\" (training steps A to B, 1 <= A <= B) or "
                                      "a step number, got {}",
                                      shown(*value)));
  };
  if (std::optional<int64_t> step = as_int64(*value)) {
    trace.first_step = trace.last_step = *step;
  } else if (value->is_string()) {
    std::string text = value->get<std::string>();
    size_t colon = text.find(':');
    std::string first = text.substr(0, colon);
    std::string last = colon == std::string::npos ? first : text.substr(colon + 1);
    auto parse = [&](const std::string& part, int64_t& into) {
      auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), into);
      if (error != std::errc() || end != part.data() + part.size() || part.empty()) fail();
    };
    parse(first, trace.first_step);
    parse(last, trace.last_step);
  } else {
    fail();
  }
  if (trace.first_step < 1 || trace.last_step < trace.first_step) fail();
}

void read_trace(Section& top, observe::TraceConfig& trace) {
  Section section = top.section("trace", {.unknown_key_error = kUnknownKey});
  section.read_bool("enabled", trace.enabled);
  read_string(section, "output_path", trace.output_path);
  read_trace_steps(section, trace);
  if (trace.enabled && trace.output_path.empty())
    section.fail("output_path", "expected a folder for the trace files, got \"\"");
  section.finish();
}

void read_comms_logger(Section& top, observe::CommsLoggerConfig& logger) {
  Section section = top.section("comms_logger", {.unknown_key_error = kUnknownKey});
  section.read_bool("enabled", logger.enabled);
  section.read_bool("verbose", logger.verbose);
  section.read_bool("prof_all", logger.prof_all);
  section.read_bool("debug", logger.debug);
  if (const json* ops = section.take("prof_ops")) {
    if (!ops->is_array())
      section.fail("prof_ops",
                   fmt::format("expected a list of collective names, got {}", shown(*ops)));
    static constexpr std::string_view kNames[] = {
        "all_reduce", "reduce_scatter", "all_gather", "broadcast",
        "reduce",     "barrier",        "send",       "recv"};
    for (const json& op : *ops) {
      bool known = op.is_string() && std::find(std::begin(kNames), std::end(kNames),
                                               op.get<std::string>()) != std::end(kNames);
      if (!known)
        section.fail("prof_ops",
                     fmt::format("expected names among all_reduce, reduce_scatter, all_gather, "
                                 "broadcast, reduce, barrier, send, recv; got {}",
                                 shown(op)));
      logger.prof_ops.push_back(op.get<std::string>());
    }
  }
  section.finish();
}

void read_flops_profiler(Section& top, observe::FlopsProfilerConfig& profiler) {
  Section section = top.section("flops_profiler", {.unknown_key_error = kUnknownKey});
  section.read_bool("enabled", profiler.enabled);
  section.read_number("recompute_fwd_factor", profiler.recompute_fwd_factor, kNonNegative);
  section.read_int("profile_step", profiler.profile_step, kCount);
  section.read_int("module_depth", profiler.module_depth, IntRange{.min = -1});
  section.read_int("top_modules", profiler.top_modules, kNonNegativeCount);
  section.read_bool("detailed", profiler.detailed);
  read_string(section, "output_file", profiler.output_file);
  section.finish();
}

void read_monitor(Section& top, std::string_view key, observe::MonitorConfig& monitor) {
  Section section = top.section(key, {.unknown_key_error = kUnknownKey});
  section.read_bool("enabled", monitor.enabled);
  read_string(section, "output_path", monitor.output_path);
  read_string(section, "job_name", monitor.job_name);
  if (monitor.enabled && monitor.job_name.empty())
    section.fail("job_name", "expected a non-empty name (the folder of the files)");
  section.finish();
}

}  // namespace

void read_monitor_blocks(Section& top, observe::ObserveConfig& config) {
  read_trace(top, config.trace);
  read_comms_logger(top, config.comms_logger);
  read_flops_profiler(top, config.flops_profiler);
  read_monitor(top, "csv_monitor", config.csv_monitor);
  read_monitor(top, "tensorboard", config.tensorboard);
  top.read_bool("memory_breakdown", config.memory_breakdown);
}

}  // namespace zt::dist::config_reading
