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

// DeepSpeed's quant block, into quant's own config; what quant cannot honour (bits, groups, W8A8
// with 4-bit weights) is checked by quant itself, each of its lines recorded here.
void read_q_type(Section& section, quant::QuantizationType& type) {
  std::string name = quant::quantization_type_name(type);
  section.read_choice("q_type", name, {"symmetric", "asymmetric"});
  type = name == "symmetric" ? quant::QuantizationType::symmetric
                             : quant::QuantizationType::asymmetric;
}

template <typename Part>
void read_quant_part(Section& section, Part& part) {
  section.read_bool("enabled", part.enabled);
  int64_t bits = part.num_bits;
  section.read_int("num_bits", bits, kCount);
  part.num_bits = int(bits);
  section.read_int("q_groups", part.q_groups, kCount);
  read_q_type(section, part.q_type);
  section.finish();
}

void read_quant(Section& top, InferenceConfig& config, const ParseContext& context) {
  Section section = top.section("quant");
  if (!section.present()) return;
  config.quant_given = true;
  quant::QuantizationConfig& quant = config.quant;
  section.read_bool("enabled", quant.enabled);
  section.read_bool("quantize_head", quant.quantize_head);
  Section weight = section.section("weight");
  read_quant_part(weight, quant.weight);
  Section activation = section.section("activation");
  read_quant_part(activation, quant.activation);
  Section qkv = section.section("qkv");
  qkv.read_bool("enabled", quant.qkv);
  qkv.finish();
  section.finish();
  // A value rejected above kept its default, so these lines never repeat one of its.
  for (const std::string& problem : quant::quantization_config_problems(quant, "quant"))
    context.error("", problem);
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
  context.read_on([&] { read_quant(top, config, context); });
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
