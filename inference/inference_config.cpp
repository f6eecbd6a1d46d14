// Reading the inference config with the training config's sections (dist/config_section.h):
// a wrong value is recorded and reading goes on, so one run lists every problem.
#include "inference/inference_config.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "dist/config_section.h"
#include "dist/json_comments.h"

namespace zt::inference {

namespace {

using namespace dist::config_reading;

// DeepSpeed accepts torch's names for the dtype too.
std::string canonical_dtype(const std::string& name) {
  if (name == "float32" || name == "float") return "fp32";
  if (name == "float16" || name == "half") return "fp16";
  if (name == "bfloat16") return "bf16";
  return name;
}

void read_dtype(Section& top, InferenceConfig& config) {
  const json* value = top.take("dtype");
  if (value == nullptr) return;
  const std::string name = value->is_string() ? canonical_dtype(value->get<std::string>()) : "";
  if (name != "fp32" && name != "fp16" && name != "bf16" && name != "int8") {
    top.reject("dtype", fmt::format("expected one of fp32, fp16, bf16, int8 (or torch's float32, "
                                    "float16, half, bfloat16), got {}",
                                    shown(*value)));
    return;
  }
  config.dtype = name;
}

void read_tensor_parallel(Section& top, InferenceConfig& config) {
  Section tensor_parallel = top.section("tensor_parallel");
  bool enabled = true;
  tensor_parallel.read_bool("enabled", enabled);
  tensor_parallel.read_int("tp_size", config.tp_size, kCount);
  tensor_parallel.ignore({"tp_grain_size"});
  tensor_parallel.finish();
  if (!enabled) config.tp_size = 1;
  // mp_size: DeepSpeed's older name for tp_size.
  top.read_int("mp_size", config.tp_size, kCount);
}

void read_q_type(Section& section, bool& symmetric) {
  std::string q_type = symmetric ? "symmetric" : "asymmetric";
  section.read_choice("q_type", q_type, {"symmetric", "asymmetric"});
  symmetric = q_type == "symmetric";
}

void read_quant(Section& top, QuantSettings& quant) {
  Section section = top.section("quant");
  section.read_bool("enabled", quant.enabled);
  Section weight = section.section("weight");
  bool weight_enabled = true;
  weight.read_bool("enabled", weight_enabled);
  const size_t before = weight.problems_so_far();
  weight.read_int("num_bits", quant.weight_bits, kCount);
  if (weight.problems_so_far() == before && quant.weight_bits != 8 && quant.weight_bits != 4) {
    weight.reject("num_bits", fmt::format("expected 8 or 4, got {}", quant.weight_bits));
  }
  weight.read_int("q_groups", quant.weight_groups, kCount);
  read_q_type(weight, quant.weight_symmetric);
  weight.finish();
  Section activation = section.section("activation");
  activation.read_bool("enabled", quant.activation_enabled);
  const size_t activation_before = activation.problems_so_far();
  activation.read_int("num_bits", quant.activation_bits, kCount);
  if (activation.problems_so_far() == activation_before && quant.activation_bits != 8) {
    activation.reject("num_bits",
                      fmt::format("expected 8 (int8 activations), got {}", quant.activation_bits));
  }
  read_q_type(activation, quant.activation_symmetric);
  activation.ignore({"q_groups"});
  activation.finish();
  section.ignore({"qkv"});
  section.finish();
  if (!weight_enabled) quant.enabled = false;
}

void read_sections(Section& top, const ParseContext& context, InferenceConfig& config) {
  context.read_on([&] { read_dtype(top, config); });
  context.read_on([&] { read_tensor_parallel(top, config); });
  context.read_on([&] {
    top.read_int("max_out_tokens", config.max_out_tokens, kCount);
    top.read_int("min_out_tokens", config.min_out_tokens, kCount);
    top.read_int("max_batch_size", config.max_batch_size, kCount);
    top.read_int("kv_block_positions", config.kv_block_positions, kCount);
  });
  context.read_on([&] {
    const json* checkpoint = top.take("checkpoint");
    if (checkpoint == nullptr) return;
    if (!checkpoint->is_string() || checkpoint->get<std::string>().empty()) {
      top.reject("checkpoint",
                 fmt::format("expected a checkpoint folder or model file path, got {}",
                             shown(*checkpoint)));
      return;
    }
    config.checkpoint = checkpoint->get<std::string>();
  });
  context.read_on([&] { read_quant(top, config.quant); });
  // Keys of DeepSpeed's kernels and CUDA graphs: nothing to switch here.
  top.ignore({"replace_with_kernel_inject", "enable_cuda_graph", "triangular_masking",
              "injection_policy", "keep_module_on_host", "return_tuple", "use_triton"});
  context.read_on([&] {
    if (config.min_out_tokens > config.max_out_tokens) {
      top.reject("min_out_tokens", fmt::format("{} is more than max_out_tokens {}",
                                               config.min_out_tokens, config.max_out_tokens));
    }
  });
  context.read_on([&] { top.finish(); });
}

}  // namespace

DType InferenceConfig::weight_dtype() const {
  if (dtype == "fp16") return DType::f16;
  if (dtype == "bf16") return DType::bf16;
  return DType::f32;
}

InferenceConfig parse_inference_config(const std::string& json_text,
                                       const std::string& source_name) {
  ParseContext context(source_name, nullptr);
  json root;
  try {
    root = dist::parse_json_with_comments(json_text, source_name);
  } catch (const std::exception& error) {
    throw dist::ConfigError(error.what());
  }
  if (!root.is_object()) {
    throw dist::ConfigError(fmt::format("{}: expected a JSON object at the top level, got {}",
                                        source_name, root.type_name()));
  }
  InferenceConfig config;
  Section top(context, &root, "");
  try {
    read_sections(top, context, config);
  } catch (const SectionAbandoned&) {
  }
  if (!context.errors().empty()) throw context.all_problems();
  return config;
}

InferenceConfig load_inference_config(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw dist::ConfigError(fmt::format("{}: cannot open", path));
  std::stringstream text;
  text << file.rdbuf();
  return parse_inference_config(text.str(), path);
}

}  // namespace zt::inference
