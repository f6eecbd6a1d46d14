// The inference config under DeepSpeed's names: every key read, torch's dtype names accepted,
// and every problem of a file reported at once, each naming its key.
#include <doctest/doctest.h>

#include "inference/inference_config.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::inference;

TEST_CASE("inference config: DeepSpeed's keys, torch's dtype names") {
  InferenceConfig config = parse_inference_config(R"({
    "dtype": "bfloat16", "tensor_parallel": {"tp_size": 1}, "max_out_tokens": 512,
    "min_out_tokens": 8, "checkpoint": "ckpt/", "replace_with_kernel_inject": true,
    "quant": {"enabled": true, "weight": {"num_bits": 4, "q_groups": 64, "q_type": "asymmetric"},
              "activation": {"enabled": false, "num_bits": 8}},
    "max_batch_size": 16, "kv_block_positions": 32})",
                                                  "inference.json");
  CHECK(config.dtype == "bf16");
  CHECK(config.weight_dtype() == DType::bf16);
  CHECK(config.max_out_tokens == 512);
  CHECK(config.min_out_tokens == 8);
  CHECK(config.checkpoint == "ckpt/");
  CHECK(config.quant.enabled);
  CHECK(config.quant.weight.num_bits == 4);
  CHECK(config.quant.weight.q_groups == 64);
  CHECK(config.quant.weight.q_type == quant::QuantizationType::asymmetric);
  CHECK(!config.quant.activation.enabled);
  CHECK(config.quantized());
  CHECK(config.max_batch_size == 16);
  CHECK(config.kv_block_positions == 32);
  CHECK(parse_inference_config(R"({"dtype": "half"})", "x").weight_dtype() == DType::f16);
  CHECK(!parse_inference_config("{}", "x").quantized());
  CHECK(parse_inference_config(R"({"dtype": "int8"})", "x").quantized());
}

TEST_CASE("inference config: every problem of a file at once, one line each") {
  CHECK(error_of([] {
          parse_inference_config(R"({"dtype": "fp8", "tensor_parallel": {"tp_size": 0},
            "max_out_tokens": 16, "min_out_tokens": 32, "checkpoint": 3,
            "quant": {"weight": {"num_bits": 3, "q_type": "skewed"}}})",
                                 "inference.json");
        }) ==
        "inference.json: dtype: expected one of fp32, fp16, bf16, int8 (or torch's float32, "
        "float16, half, bfloat16), got \"fp8\"\n"
        "inference.json: tensor_parallel.tp_size: expected an integer >= 1, got 0\n"
        "inference.json: checkpoint: expected a checkpoint folder or model file path, got 3\n"
        "inference.json: quant.weight.q_type: expected one of \"symmetric\", \"asymmetric\", got "
        "\"skewed\"\n"
        "inference.json: quant.weight.num_bits: expected 4 or 8, got 3\n"
        "inference.json: min_out_tokens: 32 is more than max_out_tokens 16");
}
