// pipeline: DeepSpeed's keys ("stages" may be "auto"; "partition" "best" reads as
// "parameters"), the PipelineModule arguments DeepSpeed takes in code, and the schedule.
#include <regex>

#include "dist/config_pipeline_reader.h"

namespace zt::dist::config_reading {

namespace {

void read_partition(Section& block, PipelineConfig& pipeline) {
  const json* value = block.take("partition");
  if (value == nullptr) return;
  std::string method = value->is_string() ? value->get<std::string>() : "";
  if (method == "best") method = "parameters";
  if (method == "parameters" || method == "uniform") {
    pipeline.partition_method = method;
    return;
  }
  if (method.starts_with("type:") && method.size() > 5) {
    try {
      std::regex(method.substr(5), std::regex::icase);
    } catch (const std::regex_error& error) {
      block.reject("partition", fmt::format("\"{}\": the pattern is not a regular expression ({})",
                                            method.substr(5), error.what()));
      return;
    }
    pipeline.partition_method = method;
    return;
  }
  block.reject("partition", fmt::format("expected \"parameters\", \"uniform\", \"best\" or "
                                        "\"type:REGEX\", got {}",
                                        shown(*value)));
}

}  // namespace

void read_pipeline(Section& top, PipelineConfig& pipeline) {
  Section block = top.section("pipeline", {.auto_keeps_default = true});
  pipeline.present = block.present();
  block.read_int("stages", pipeline.stages, kCount);
  read_partition(block, pipeline);
  block.read_bool("seed_layers", pipeline.seed_layers);
  block.read_int("activation_checkpoint_interval", pipeline.activation_checkpoint_interval,
                 kNonNegativeCount);
  block.read_bool("pipe_partitioned", pipeline.pipe_partitioned);
  block.read_bool("grad_partitioned", pipeline.grad_partitioned);
  block.read_choice("schedule", pipeline.schedule, {"1f1b", "interleaved"});
  block.read_int("virtual_stages", pipeline.virtual_stages, kCount);
  if (pipeline.schedule == "1f1b" && pipeline.virtual_stages > 1)
    block.reject("virtual_stages",
                 fmt::format("{} model chunks per stage need \"schedule\": \"interleaved\"",
                             pipeline.virtual_stages));
  block.finish();
}

}  // namespace zt::dist::config_reading
