// The inference engine's config under DeepSpeed's init_inference names: dtype, tensor_parallel
// (tp_size), max_out_tokens, min_out_tokens, quant {enabled, weight {num_bits, q_groups,
// q_type}, activation {enabled, num_bits, q_type}}, checkpoint; plus the serving keys of this
// engine (max_batch_size, kv_block_positions). Read like ds_config.json: every problem of a
// file is reported at once (ConfigError), each line naming the key and what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "dist/config.h"
#include "quant/quantization_config.h"

namespace zt::inference {

struct InferenceConfig {
  std::string dtype = "fp32";  // fp32 | fp16 | bf16 | int8 (as written, DeepSpeed's aliases folded)
  int64_t tp_size = 1;
  int64_t max_out_tokens = 1024;  // positions a sequence may hold: prompt + output
  int64_t min_out_tokens = 1;     // a request must leave room for at least this many new tokens
  // The quant block (quant/quantization_config.h); applied when dtype is int8 or the block is
  // given with enabled true.
  quant::QuantizationConfig quant;
  bool quant_given = false;
  std::string checkpoint;           // a ZeroTrain checkpoint folder or a model file; empty: none
  int64_t max_batch_size = 8;       // sequences in the running batch
  int64_t kv_block_positions = 16;  // positions per block of the paged KV cache

  // The dtype the weights are cast to (int8: the unquantized layers stay f32).
  DType weight_dtype() const;
  // int8, or a quant block enabled (its weight part too).
  bool quantized() const {
    return dtype == "int8" || (quant_given && quant.enabled && quant.weight.enabled);
  }
};

// Throws dist::ConfigError listing every problem; `source_name` starts each line.
InferenceConfig parse_inference_config(const std::string& json_text,
                                       const std::string& source_name);
InferenceConfig load_inference_config(const std::string& path);

}  // namespace zt::inference
