// gpt_train --explain-config: the config doctor's prediction for the config and model a run
// would train, on one process group (dist/config_doctor_gpt.h) or on a pipeline x tensor x
// data grid (pipeline/config_doctor_grid.h). No tokens are read, nothing is trained.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <memory>

#include "apps/config_doctor_flags.h"
#include "apps/gpt_train_config.h"
#include "apps/gpt_train_options.h"
#include "comm/mpi_runtime.h"
#include "comm/process_grid.h"
#include "dist/config_doctor_gpt.h"
#include "models/gpt.h"
#include "pipeline/config_doctor_grid.h"
#include "pipeline/config_doctor_grid_search.h"

namespace zt::apps {

// --explain-config: the config doctor's prediction for the config and model a run would train
// (no tokens are read, nothing is trained).
inline int explain_gpt_config(comm::MpiRuntime& runtime, const GptTrainOptions& options) {
  const int world = runtime.world().size();
  const bool leader = runtime.world().rank() == 0;
  dist::Config config = options.deepspeed.deepspeed_config.empty()
                            ? default_config(options, world)
                            : apps::load_config_file(options.deepspeed.deepspeed_config, world,
                                                     leader, program_values(options));
  config = apps::with_program_optimizer(std::move(config), program_optimizer(options), false);
  models::GPTConfig model_config = options.model;
  model_config.sparse_attention = config.sparse_attention;
  auto model = std::make_shared<models::GPT>(model_config);  // modules need shared owners
  if (!leader) return 0;
  dist::ModelShape shape = dist::model_shape(*model, config.zero_optimization, world);
  // The replay knows attention through its kernels (dense, or block-sparse over whole blocks:
  // both keep the same tensors) without dropout (its masks): otherwise activations stay "not
  // predicted".
  const bool kernel_attention = !model_config.sparse_attention ||
                                model_config.block_size % model_config.sparse_attention->block == 0;
  if (kernel_attention && model_config.dropout == 0.0) {
    const int64_t element_bytes = config.fp16.enabled || config.bf16.enabled ? 2 : 4;
    const bool offloaded = config.activation_checkpointing.cpu_checkpointing;
    shape.activation_peak = [activations = dist::gpt_activation_shape(model_config), element_bytes,
                             offloaded](int64_t micro_batch, bool checkpointed) {
      return dist::predict_gpt_activation_peak(activations, micro_batch, element_bytes,
                                               checkpointed, offloaded);
    };
  }
  // gpt_train checkpoints every layer for any positive number_checkpoints: one is written
  // where the doctor suggests checkpointing.
  shape.number_checkpoints = model_config.n_layer;
  return apps::explain_shape(options.doctor, config, shape, world, checkpointing_of(config));
}

// --explain-config on a grid: the doctor's prediction for the first tensor rank of the first
// replica of every pipeline stage (tensor ranks hold equal shards; replicas equal slices).
inline int explain_gpt_grid(comm::MpiRuntime& runtime, const GptTrainOptions& options, int pipeline,
                            int tensor) {
  const dist::Config config = grid_config(runtime.world(), options, pipeline, tensor);
  if (runtime.world().rank() != 0) return 0;
  const comm::GridShape shape = comm::factor_world(runtime.world().size(), tensor, pipeline);
  models::GPTConfig model = options.model;
  model.sparse_attention = config.sparse_attention;
  for (int stage = 0; stage < pipeline; ++stage)
    fmt::print("{}", pipeline::explain_grid_prediction(
                         pipeline::predict_grid_rank(model, config, shape, {.pipeline = stage})));
  // With a budget: every grid of this world size, the cheapest that fits first.
  if (options.doctor.budget_mib > 0.0) {
    const auto mib = [](double value) { return int64_t(value * double(1 << 20)); };
    const int world = runtime.world().size();
    fmt::print("{}",
               pipeline::explain_grid_search(
                   pipeline::search_grids(model, config, world, mib(options.doctor.budget_mib),
                                          mib(options.doctor.reserve_mib)),
                   mib(options.doctor.budget_mib), mib(options.doctor.reserve_mib)));
  }
  return 0;
}

}  // namespace zt::apps
