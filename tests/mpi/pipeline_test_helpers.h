// The one-process comparison of the pipeline tests: a tiny GPT, a deterministic global batch,
// the whole model trained on one process (SGD with momentum), and a run of the pipeline engine
// on a (pipeline, tensor, data) grid checked against it: every step's loss to 4 decimals, the
// weights within 1e-5 relative, and the bytes on the pipeline and tensor axes equal to the
// formulas (the tensor axis's without activation checkpoints, which repeat forwards). Shared by
// test_pipeline_gpt.cpp (pipeline x data) and test_pipeline_3d.cpp.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "models/gpt.h"
#include "optim/sgd.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/pipeline_engine.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::pipeline::test_helpers {

inline constexpr int kSteps = 3;
inline constexpr int kMicroBatches = 4;  // gradient_accumulation_steps
inline constexpr int64_t kRows = 2;      // sequences per micro-batch
inline constexpr int64_t kLength = 8;

inline models::GPTConfig tiny_gpt_config() {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = kLength;
  config.n_layer = 6;  // 9 layers: enough for 8 stages, or 4 stages of 2 chunks
  config.n_head = 2;   // splits over 2 tensor ranks, as do the vocabulary and the MLP
  config.n_embd = 16;
  return config;
}

// Micro-batch `index` of step `step` of the global batch: tokens and next tokens.
inline MicroBatch micro_batch(int step, int index) {
  std::vector<int64_t> stream(size_t(kRows * (kLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i)
    stream[i] = int64_t((i * i * 7 + i * 3 + size_t(step) * 5 + size_t(index) * 11) % 32);
  Tensor all = from_int64(stream, {kRows, kLength + 1});
  return {ops::contiguous(ops::narrow(all, 1, 0, kLength)),
          ops::contiguous(ops::narrow(all, 1, 1, kLength))};
}

struct Reference {
  std::vector<double> losses;
  std::vector<double> grad_norms;  // before clipping
  NamedTensors weights;
};

// One process, the whole GPT, every micro-batch of the global batch (replicas x micro-batches)
// with its loss scaled by 1/count, then SGD with momentum. (Not Adam: the pipeline sums the
// same gradients in another order, and Adam would turn the rounding noise of gradients that are
// zero in exact arithmetic, such as attention's key bias, into steps of the learning rate.)
// `clip` > 0: the gradients are scaled by clip / (norm + 1e-6) when that is below 1 (the
// engine's rule), the norm over every parameter (the tied embedding and head once).
inline Reference train_whole_model(models::GPT& model, int replicas, int steps = kSteps,
                                   double clip = 0.0) {
  std::vector<Tensor> params = model.parameters();
  optim::Sgd sgd(optim::single_group(params, 0.1, 0.0), {.momentum = 0.9});
  Reference reference;
  const int count = replicas * kMicroBatches;
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    double loss_sum = 0.0;
    for (int index = 0; index < count; ++index) {
      MicroBatch batch = micro_batch(step, index);
      Tensor loss = gpt_next_token_loss(model(batch.inputs), batch.labels);
      loss_sum += loss.item();
      (loss * (1.0 / count)).backward();
    }
    double squares = 0.0;
    for (const Tensor& param : params)
      if (param.grad().defined()) squares += sum(pow(param.grad().to(DType::f64), 2.0)).item();
    const double norm = std::sqrt(squares);
    reference.grad_norms.push_back(norm);
    if (clip > 0.0 && clip / (norm + 1e-6) < 1.0)
      for (const Tensor& param : params)
        if (param.grad().defined()) param.set_grad(param.grad() * (clip / (norm + 1e-6)));
    sgd.step();
    reference.losses.push_back(loss_sum / count);
  }
  reference.weights = model.named_parameters();
  return reference;
}

// `replicas` is the data-parallel size; with `tensor` > 1 the config asks for that many
// tensor ranks (tensor_parallel.autotp_size), and is parsed against the world they make.
// `partitioned`: pipe_partitioned and grad_partitioned (DeepSpeed's defaults, true).
inline dist::Config pipeline_config(int zero_stage, int replicas, int chunks, int interval,
                                    int tensor = 1, double clip = 0.0, bool partitioned = true) {
  std::string text =
      fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
    "steps_per_print": 0, "tensor_parallel": {{"autotp_size": {}}}, "gradient_clipping": {},
    "optimizer": {{"type": "SGD", "params": {{"lr": 0.1, "momentum": 0.9}}}},
    "zero_optimization": {{"stage": {}, "reduce_bucket_size": 300}},
    "pipeline": {{"partition": "uniform", "schedule": "{}", "virtual_stages": {},
                  "activation_checkpoint_interval": {}, "pipe_partitioned": {},
                  "grad_partitioned": {}}}
  }})",
                  kRows, kMicroBatches, tensor, clip, zero_stage,
                  chunks > 1 ? "interleaved" : "1f1b", chunks, interval, partitioned, partitioned);
  return dist::parse_config(text, "pipeline_test", replicas * tensor, nullptr);
}

inline double relative_difference(const Tensor& a, const Tensor& b) {
  Tensor a64 = a.to(DType::f64).contiguous(), b64 = b.to(DType::f64).contiguous();
  double largest_difference = 0.0, largest = 0.0;
  for (int64_t i = 0; i < a64.numel(); ++i) {
    largest_difference = std::max(largest_difference,
                                  std::fabs(a64.data_ptr<double>()[i] - b64.data_ptr<double>()[i]));
    largest = std::max(largest, std::fabs(b64.data_ptr<double>()[i]));
  }
  return largest_difference / std::max(largest, 1e-30);
}

struct GridRun {
  int pipeline = 1;
  int tensor = 1;
  int zero_stage = 1;
  int chunks = 1;    // model chunks per stage (> 1: interleaved 1F1B)
  int interval = 0;  // activation_checkpoint_interval
  int steps = kSteps;
  double clip = 0.0;               // gradient_clipping
  bool llama = false;              // the Llama layout (tiny_llama_config)
  bool sequence_parallel = false;  // tensor_parallel/sequence_parallel.h (tensor > 1)
  bool partitioned = true;         // pipe_partitioned and grad_partitioned
};

// Bytes of one boundary transfer on the pipeline axis: b*s*h floats, or with a tensor axis
// and partitioned transfers the 1/tp slice each tensor rank sends (b*s*h divides by tp here).
inline int64_t boundary_transfer_bytes(const GridRun& run) {
  const int64_t activation_bytes = kRows * kLength * tiny_gpt_config().n_embd * 4;
  return (run.partitioned || run.sequence_parallel) && run.tensor > 1
             ? activation_bytes / run.tensor
             : activation_bytes;
}

// Llama with grouped-query attention and a tied head, the tiny GPT's sizes.
inline models::GPTConfig tiny_llama_config() {
  models::GPTConfig config = tiny_gpt_config();
  config.architecture = models::Architecture::llama;
  config.n_head = 4;
  config.n_kv_head = 2;
  config.intermediate_size = 24;
  config.bias = false;
  return config;
}

// Per stage boundary and micro-batch (and chunk): one activation of b*s*h floats forward and
// one gradient of the same size back (1/tp of it per tensor rank when partitioned, or with
// sequence parallelism, where each tensor rank sends its own tokens). A stage sends activations
// unless it holds the last virtual stage's chunk only, gradients unless it holds the first's.
inline void check_pipeline_axis_bytes(const comm::CommStats& sent, const GridRun& run, int stage) {
  const int64_t activation_bytes = boundary_transfer_bytes(run);
  const int activation_sends = kMicroBatches * (run.chunks - (stage == run.pipeline - 1 ? 1 : 0));
  const int gradient_sends = kMicroBatches * (run.chunks - (stage == 0 ? 1 : 0));
  CHECK(sent[comm::CollectiveKind::send].calls == activation_sends + gradient_sends);
  CHECK(sent[comm::CollectiveKind::send].payload_bytes ==
        (activation_sends + gradient_sends) * activation_bytes);
  CHECK(sent[comm::CollectiveKind::recv].calls == activation_sends + gradient_sends);
}

// The tensor axis of one stage per micro-batch: two all-reduces of b*s*h for each of its
// blocks forward (after the attention's and the MLP's row-parallel layers) and two backward
// (into their column-parallel layers); the vocabulary-parallel embedding adds one forward; the
// head one backward and the loss three of b*s forward (row max, sum of exponentials, target
// logit). Partitioned transfers add one all-gather of the b*s*h tensor per receive: of the
// activations unless the stage holds the first virtual stage only, of the gradients unless it
// holds the last only. Nothing else travels on the tensor group.
inline void check_tensor_axis_bytes(const comm::CommStats& stats, const GridRun& run,
                                    PipelineModule& module, int stage) {
  int64_t blocks = 0;
  bool embedding = false, head = false;
  for (int chunk = 0; chunk < run.chunks; ++chunk) {
    for (int index : module.chunk_layers(chunk)) {
      const std::string& type = module.specs()[size_t(index)].type_name;
      blocks += type == "GPT2Block" || type == "LlamaDecoderLayer" ? 1 : 0;
      embedding = embedding || index == 0;
      head = head || index == int(module.specs().size()) - 1;
    }
  }
  const int64_t activation_bytes = kRows * kLength * tiny_gpt_config().n_embd * 4,
                row_bytes = kRows * kLength * 4;
  const int64_t activation_reduces =
      kMicroBatches * (4 * blocks + (embedding ? 1 : 0) + (head ? 1 : 0));
  const int64_t row_reduces = kMicroBatches * (head ? 3 : 0);
  auto ring = [&](int64_t bytes) {
    return comm::ring_payload_bytes(comm::CollectiveKind::all_reduce, bytes, run.tensor);
  };
  const comm::CollectiveCounter& reduces = stats[comm::CollectiveKind::all_reduce];
  CHECK(reduces.calls == activation_reduces + row_reduces);
  CHECK(reduces.payload_bytes ==
        activation_reduces * ring(activation_bytes) + row_reduces * ring(row_bytes));
  const int64_t receives = run.partitioned
                               ? kMicroBatches * (2 * run.chunks - (stage == 0 ? 1 : 0) -
                                                  (stage == run.pipeline - 1 ? 1 : 0))
                               : 0;
  const comm::CollectiveCounter& gathers = stats[comm::CollectiveKind::all_gather];
  CHECK(gathers.calls == receives);
  CHECK(gathers.payload_bytes ==
        receives * comm::ring_payload_bytes(comm::CollectiveKind::all_gather,
                                            boundary_transfer_bytes(run) * run.tensor, run.tensor));
  CHECK(stats.total_payload_bytes() == reduces.payload_bytes + gathers.payload_bytes);
}

// Trains on the grid and compares with the one-process run. Returns the peak bytes of
// activations this rank held during the batches; `losses`, when given, gets each step's loss.
inline int64_t check_against_one_process(const GridRun& run,
                                         std::vector<double>* losses = nullptr) {
  comm::Communicator& world = ::zt::testing::test_world();
  const int replicas = world.size() / (run.pipeline * run.tensor);
  CAPTURE(run.pipeline);
  CAPTURE(run.tensor);
  CAPTURE(replicas);
  CAPTURE(run.zero_stage);
  CAPTURE(run.chunks);
  CAPTURE(run.interval);
  comm::ProcessGrid grid(world, {.data = replicas, .pipeline = run.pipeline, .tensor = run.tensor});
  // The same initial weights on every rank; each stage copies its part of them.
  manual_seed(1234);
  const models::GPTConfig model_config = run.llama ? tiny_llama_config() : tiny_gpt_config();
  auto whole_model = std::make_shared<models::GPT>(model_config);
  NamedTensors initial = whole_model->named_parameters();
  const bool split = run.tensor > 1;
  PipelineEngine engine(
      pipeline_config(run.zero_stage, replicas, run.chunks, run.interval, run.tensor, run.clip,
                      run.partitioned),
      split ? gpt_layer_specs(model_config, grid.tensor_group(), 1234, run.sequence_parallel)
            : gpt_layer_specs(model_config),
      split ? gpt_vocab_parallel_loss(grid.tensor_group()) : LossFunction(gpt_next_token_loss),
      micro_batch(0, 0).inputs, grid, &initial);
  Reference reference = train_whole_model(*whole_model, replicas, run.steps, run.clip);
  const int replica = grid.coordinates().data;
  MemoryAccounting& accounting = cpu_allocator().accounting();
  accounting.reset_peak();
  const int64_t activations_before = accounting.stats().live(MemoryTag::activation);
  for (int step = 0; step < run.steps; ++step) {
    CAPTURE(step);
    int next_index = replica * kMicroBatches;
    engine.pipeline_communicator().reset_stats();
    grid.tensor_group().reset_stats();
    double loss = engine.train_batch([&] { return micro_batch(step, next_index++); });
    CHECK(std::fabs(loss - reference.losses[size_t(step)]) < 5e-5);
    if (losses != nullptr) losses->push_back(loss);
    if (run.clip > 0.0) {
      // The bound is below every step's norm: the clipping acts, with the whole model's norm.
      REQUIRE(reference.grad_norms[size_t(step)] > 1.5 * run.clip);
      CHECK(std::fabs(engine.engine().get_global_grad_norm() - reference.grad_norms[size_t(step)]) <
            1e-5 * reference.grad_norms[size_t(step)]);
    }
    check_pipeline_axis_bytes(engine.pipeline_communicator().stats(), run, engine.stage());
    // (Sequence parallelism's bytes: test_sequence_parallel.cpp.)
    if (split && run.interval == 0 && !run.sequence_parallel)
      check_tensor_axis_bytes(grid.tensor_group().stats(), run, engine.module(), engine.stage());
  }
  std::map<std::string, Tensor> expected(reference.weights.begin(), reference.weights.end());
  for (const auto& [name, weight] : engine.whole_model_weights()) {
    CAPTURE(name);
    auto found = expected.find(name);
    // The head tied to the embedding: one parameter in the whole model, under its name.
    if (found == expected.end() && name == "lm_head.weight")
      found = expected.find(run.llama ? "model.embed_tokens.weight" : "wte.weight");
    REQUIRE(found != expected.end());
    CHECK(relative_difference(weight, found->second) < 1e-5);
  }
  return accounting.stats().peak(MemoryTag::activation) - activations_before;
}

}  // namespace zt::pipeline::test_helpers
