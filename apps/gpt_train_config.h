// gpt_train's configs: its built-in ds_config (without --deepspeed_config), its optimizer and
// the flag values a config's "auto" entries take, resolved for one process group or for a
// pipeline x tensor x data grid. Shared by training and --explain-config, so that the doctor
// predicts the config a run trains with.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "apps/deepspeed_flags.h"
#include "apps/gpt_train_options.h"
#include "apps/gpt_train_pipeline.h"
#include "comm/mpi_runtime.h"
#include "comm/process_grid.h"
#include "dist/config.h"
#include "dist/config_builders.h"

namespace zt::apps {

// The warm-up of the program's own schedule: the first tenth of the steps, 1 to 100.
inline int64_t warmup_steps_of(int64_t total_steps) {
  return std::clamp<int64_t>(total_steps / 10, 1, 100);
}

// Without a ds_config.json: ZeRO stage 0, the program's optimizer (--optimizer, by default AdamW
// with betas 0.9, 0.99 and weight decay 0.1 on the matrices), gradients clipped to norm 1, the
// learning rate warmed up linearly over the first tenth of the steps (at most 100) and decayed
// linearly to 0 at the last. Through the pipeline (`pipelined`): --micro-batches micro-batches
// a step (clipped by the whole model's norm, over every stage).
inline dist::Config default_config(const GptTrainOptions& options, int world_size,
                                   bool pipelined = false) {
  int64_t total_steps = std::max<int64_t>(options.steps, 2);  // the schedule needs 2
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {},
    "gradient_accumulation_steps": {},
    "steps_per_print": 0,
    "gradient_clipping": {},
    "scheduler": {{"type": "WarmupDecayLR",
                  "params": {{"warmup_min_lr": 0, "warmup_max_lr": {}, "warmup_num_steps": {},
                             "warmup_type": "linear", "total_num_steps": {}}}}},
    "zero_optimization": {{"stage": 0}}
  }})",
                                 options.batch_size, pipelined ? options.micro_batches : 1, 1.0,
                                 options.lr, warmup_steps_of(total_steps), total_steps);
  return dist::parse_config(text, "gpt_train defaults", world_size, nullptr);
}

// The program's optimizer: --optimizer with --lr and --weight-decay, Adam's betas (0.9, 0.99).
inline dist::OptimizerConfig program_optimizer(const GptTrainOptions& options) {
  dist::OptimizerConfig optimizer =
      dist::client_optimizer(options.optimizer, options.lr, options.weight_decay);
  optimizer.betas = {0.9, 0.99};
  return optimizer;
}

// What gpt_train's flags say, for the config's "auto" values (as the Hugging Face integration
// fills them from its training arguments and the model's hidden size).
inline dist::ProgramValues program_values(const GptTrainOptions& options, bool pipelined = false) {
  int64_t total_steps = std::max<int64_t>(options.steps, 2);
  return {.micro_batch_size = options.batch_size,
          .gradient_accumulation_steps = pipelined ? options.micro_batches : 1,
          .lr = options.lr,
          .weight_decay = options.weight_decay,
          .betas = std::array<double, 2>{0.9, 0.99},
          .eps = 1e-8,
          .gradient_clipping = 1.0,
          .warmup_steps = warmup_steps_of(total_steps),
          .total_steps = total_steps,
          .fp16 = false,
          .bf16 = false,
          .hidden_size = options.model.n_embd};
}

// activation_checkpointing.number_checkpoints set: every decoder layer keeps only its input and
// re-runs in backward (what the config doctor predicts as checkpointing for the GPT).
inline bool checkpointing_of(const dist::Config& config) {
  return config.activation_checkpointing.number_checkpoints > 0;
}

// The config of a pipeline x tensor x data grid, resolved against the data-parallel size,
// world / (pipeline x tensor). A config that names the tensor-parallel size divides by it
// itself; else the flag's size is set after resolving against the data-parallel size.
inline dist::Config grid_config(comm::MpiCommunicator& world, const GptTrainOptions& options,
                                int pipeline, int tensor) {
  const int data = comm::factor_world(world.size(), tensor, pipeline).data;
  const std::string& file = options.deepspeed.deepspeed_config;
  const bool file_names_tensor = apps::config_tensor_parallel_size(file) > 0;
  dist::Config config =
      file.empty() ? default_config(options, data, true)
                   : apps::load_config_file(file, file_names_tensor ? data * tensor : data,
                                            world.rank() == 0, program_values(options, true));
  config.tensor_parallel_size = tensor;
  return apps::with_program_optimizer(std::move(config), program_optimizer(options),
                                      world.rank() == 0 && !file.empty());
}
}  // namespace zt::apps
