// ds_config.json as DeepSpeed reads it: the ZeRO-3 keys under both spellings, keys DeepSpeed
// stores and never reads, "auto" inside fp16/bf16, persistence thresholds of any value, and keys
// that would change training rejected with the reason (never "unknown").
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dist/config.h"
#include "dist/zero/partition_plan.h"
#include "nn/containers.h"
#include "nn/linear.h"
#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::dist;
using namespace zt::testing;

TEST_CASE("every ZeRO-3 key is read under both of DeepSpeed's spellings") {
  const std::vector<std::string> spellings = {"", "stage3_"};
  for (const std::string& prefix : spellings) {
    CAPTURE(prefix);
    std::vector<std::string> warnings;
    Config config = parse(with_batch(fmt::format(
                              R"("zero_optimization": {{"stage": 3,
        "{0}prefetch_bucket_size": 11, "{0}param_persistence_threshold": 13,
        "{0}model_persistence_threshold": 17, "{0}max_live_parameters": 19,
        "{0}max_reuse_distance": 23, "{0}gather_16bit_weights_on_model_save": true}})",
                              prefix)),
                          1, &warnings);
    const ZeroConfig& zero = config.zero_optimization;
    CHECK(zero.stage3_prefetch_bucket_size == 11);
    CHECK(zero.stage3_param_persistence_threshold == 13);
    CHECK(zero.stage3_model_persistence_threshold == 17);
    CHECK(zero.stage3_max_live_parameters == 19);
    CHECK(zero.stage3_max_reuse_distance == 23);
    CHECK(zero.gather_16bit_weights_on_model_save);
    CHECK(warnings.empty());
  }
  // Both spellings: the stage3_ alias is read (as pydantic reads it), and the other is named.
  std::vector<std::string> warnings;
  Config both = parse(with_batch(R"("zero_optimization": {"stage": 3,
      "param_persistence_threshold": 5, "stage3_param_persistence_threshold": 7})"),
                      1, &warnings);
  CHECK(both.zero_optimization.stage3_param_persistence_threshold == 7);
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "zero_optimization.param_persistence_threshold: 5 ignored"));
  // The deprecated fp16 spelling still reads; mixed with a new one DeepSpeed asserts.
  CHECK(parse(with_batch(R"("zero_optimization": {"stage3_gather_fp16_weights_on_model_save":
      true})"))
            .zero_optimization.gather_16bit_weights_on_model_save);
  CHECK(contains(error_of(with_batch(R"("zero_optimization": {
      "stage3_gather_fp16_weights_on_model_save": true,
      "gather_16bit_weights_on_model_save": true})")),
                 "deprecated; set it or"));
}

TEST_CASE("keys DeepSpeed accepts without effect load, performance-only ones at any value") {
  std::vector<std::string> warnings;
  Config config = parse(with_batch(R"("disable_allgather": true,
      "zero_optimization": {"stage": 3, "sub_group_size": 1000, "memory_efficient_linear": false,
        "round_robin_gradients": true, "stage3_model_persistence_threshold": 100},
      "activation_checkpointing": {"partition_activations": true,
        "contiguous_memory_optimization": true})"),
                        1, &warnings);
  CHECK(config.zero_optimization.sub_group_size == 1000);
  CHECK(config.activation_checkpointing.contiguous_memory_optimization);
  CHECK(config.activation_checkpointing.number_checkpoints == 0);
  for (const std::string& warning : warnings) CHECK_FALSE(contains(warning, "unknown key"));
}

TEST_CASE("\"auto\" left inside fp16 and bf16 keeps DeepSpeed's default") {
  std::vector<std::string> warnings;
  Config config = parse(with_batch(R"("fp16": {"enabled": "auto", "loss_scale_window": "auto"},
      "bf16": {"enabled": "auto"})"),
                        1, &warnings);
  CHECK_FALSE(config.fp16.enabled);
  CHECK(config.fp16.loss_scale_window == 1000);
  CHECK_FALSE(config.bf16.enabled);
  CHECK(warnings.size() == 3);
}

TEST_CASE("keys that would change training are rejected with the reason, never unknown") {
  struct Case {
    std::string member, expected;
  };
  const std::vector<Case> cases = {
      {R"("sequence_parallel_size": 2)",
       "sequence_parallel_size: 2: not implemented; would split each sequence across ranks and "
       "change the data-parallel size"},
      {R"("tensor_parallel": {"autotp_size": 4})",
       "tensor_parallel.autotp_size: 4: does not divide the world size 1 (data-parallel size = "
       "world / tensor-parallel size)"},
      {R"("bf16": {"enabled": true, "bf16_master_weights_and_grads": true})",
       "bf16.bf16_master_weights_and_grads: true: not implemented: the master weights"},
      {R"("bf16": {"enabled": true, "bf16_optimizer_states": true})",
       "bf16.bf16_optimizer_states: true: not implemented: the optimizer's moments"},
      {R"("quantize_training": {"enabled": true, "quantize_bits": {"start_bits": 16}})",
       "quantize_training.enabled: quantization-aware training is not implemented"},
      {R"("zero_optimization": {"zero_quantized_gradients": true})",
       "zero_optimization.zero_quantized_gradients: true: quantized gradient reduction"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.member);
    CHECK(contains(error_of(with_batch(c.member)), c.expected));
  }
  // At their defaults they load, and without an "unknown key" warning.
  std::vector<std::string> warnings;
  parse(with_batch(R"("sequence_parallel_size": 1, "tensor_parallel": {"autotp_size": 0},
      "bf16": {"bf16_master_weights_and_grads": false, "bf16_optimizer_states": false},
      "quantize_training": {"enabled": false})"),
        1, &warnings);
  CHECK(warnings.empty());
}

TEST_CASE("tensor_parallel_autotp_size_divides_the_world_for_the_batch_rule") {
  // 8 ranks at tp 2: 4 data-parallel replicas, so 2 * 3 * 4 = 24 samples a step.
  Config config = parse(R"({"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 3,
      "tensor_parallel": {"autotp_size": 2}})",
                        8);
  CHECK(config.tensor_parallel_size == 2);
  CHECK(config.world_size == 4);
  CHECK(config.train_batch_size == 24);
  Config nested =
      parse(R"({"train_batch_size": 16, "tensor_parallel": {"tp": {"tp_size": 4}}})", 8);
  CHECK(nested.tensor_parallel_size == 4);
  CHECK(nested.train_micro_batch_size_per_gpu == 8);
  CHECK(error_of(R"({"train_batch_size": 16, "tensor_parallel": {"autotp_size": 3}})", 8) ==
        "ds_config.json: tensor_parallel.autotp_size: 3: does not divide the world size 8 "
        "(data-parallel "
        "size = world / tensor-parallel size)");
}

TEST_CASE("the model persistence threshold bounds the parameters kept whole") {
  // Three modules of 12, 20 and 12 elements, all under the parameter threshold of 100.
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(3, 3), std::make_shared<nn::Linear>(4, 4),
      std::make_shared<nn::Linear>(3, 3)});
  auto whole = [&](int64_t model_threshold) {
    std::vector<bool> kept;
    for (const FlatGroup& group : plan_by_module(*model, 2, 100, model_threshold).groups)
      kept.push_back(!group.partitioned);
    return kept;
  };
  CHECK(whole(std::numeric_limits<int64_t>::max()) == std::vector<bool>{true, true, true});
  // 12 fits, 12 + 20 does not, the last 12 still fits in 12 + 12 = 24 <= 25.
  CHECK(whole(25) == std::vector<bool>{true, false, true});
  CHECK(whole(0) == std::vector<bool>{false, false, false});
}
