// Checkpoints of model-parallel engines and loading them at another (pp, tp, dp). Each engine
// of a (pipeline stage, tensor rank) writes DeepSpeed's files under its model-parallel rank
// mp = stage * tp + tensor_rank (mp_rank_XX_model_states, zero_pp_rank_R_mp_rank_XX_optim_states)
// and records, per parameter, its name in the whole model and how tensor parallelism cuts it.
// Loading does what DeepSpeed's separate "universal checkpoint" conversion does, on load: each
// rank reads the shard files that hold its own piece at the new layout (at the same layout,
// only its own; dist/checkpoint_read_plan.h), joins them by whole-model name into whole tensors
// (fp32 weights and optimizer states), and cuts out the piece its own engine holds.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "dist/checkpoint_files.h"
#include "tensor_parallel/sharded_state.h"

namespace zt::dist {

// Where one engine's parameters sit in the whole model.
struct ModelParallelPlacement {
  int pipeline_stage = 0, pipeline_stages = 1;
  int tensor_rank = 0, tensor_size = 1;
  // A local parameter's or buffer's name in the whole model; absent: the same name.
  std::map<std::string, std::string> whole_names;
  // A local parameter's tensor-parallel cut; absent: replicated.
  std::map<std::string, tensor_parallel::ShardLayout> layouts;
  // Pipeline stages keep the weights in layer files (DeepSpeed's layer_XX-model_YY files), so
  // their model-states file holds the engine state and buffers only.
  bool model_file_holds_parameters = true;
  // Pipeline stages: the indices of this stage's layers in the whole list, and the first layer
  // of every virtual stage (chunk * stages + stage) and the end, which a checkpoint records so
  // that a loader at another partition reads only the stages holding its layers.
  std::vector<int> layers, layer_bounds;
  int chunks = 1;

  int mp_rank() const { return pipeline_stage * tensor_size + tensor_rank; }
  int mp_size() const { return pipeline_stages * tensor_size; }
  std::string whole_name(const std::string& local) const;
  tensor_parallel::ShardLayout layout(const std::string& local) const;
  // A local module's name in the whole model ("3.attn" -> "h.2.attn"), found through its
  // parameters' names; the same name when none of them is renamed.
  std::string whole_module_name(const std::string& local) const;
};

// The model file's "model_parallel" metadata: the grid and each parameter's whole name and cut.
nlohmann::json placement_json(const ModelParallelPlacement& placement,
                              const NamedTensors& parameters, const NamedTensors& buffers);

// A checkpoint joined over the model-parallel ranks read (every one, or those a reader needs)
// and their data-parallel ranks, by whole-model name. Read for a reader, a cut tensor is whole
// in shape but holds only the read tensor ranks' blocks (zeros elsewhere): exactly what the
// reader's own piece cuts from.
struct UniversalCheckpoint {
  std::string tag_dir;
  int pipeline_stages = 1, tensor_size = 1, data_size = 1;
  nlohmann::json engine_state;  // the lowest read mp rank's (steps, schedule, groups)
  nlohmann::json client_state;
  std::map<std::string, Tensor> fp32;
  std::map<std::string, std::map<std::string, Tensor>> optimizer_state;
  std::map<std::string, int64_t> optimizer_steps;
  std::map<std::string, Tensor> buffers;
  std::map<std::string, std::string> files;                    // whole name -> its model file
  std::map<std::string, std::set<std::string>> group_members;  // group name -> whole names
  // By read mp rank, per data rank: the default generators, the per-tensor-rank ones (nullopt:
  // saved before they were), and the largest offsets the saving grid reached (nullopt: older).
  std::map<int, std::vector<SavedGenerator>> generators;
  std::map<int, std::vector<std::optional<std::map<std::string, SavedGenerator>>>>
      tensor_rank_generators;
  std::optional<GeneratorOffsets> largest_offsets;
  std::vector<std::string> files_opened;  // every file read, in order (the loader's log)
};

// Reads the checkpoint in `tag_dir` (saved at any layout, also by an engine without model
// parallelism): every file, or with `reader` only those holding that engine's piece
// (checkpoint_read_plan.h). Errors are one line naming the file at fault: a missing
// model-parallel or data-parallel rank file (checked for every file, read or not), a missing
// tensor-parallel shard, shards that do not fit together.
UniversalCheckpoint read_universal_checkpoint(const std::string& tag_dir,
                                              const ModelParallelPlacement* reader = nullptr);

// The whole model of a checkpoint saved at any layout, as read_checkpoint gives it for one
// saved without model parallelism (which it returns as read_checkpoint does): every parameter's
// fp32 values and optimizer state under its whole-model name, and the buffers. What
// zero_to_fp32 and the generation apps read.
ConsolidatedCheckpoint read_whole_checkpoint(const std::string& tag_dir);

// The checkpoint as the engine at `placement` holds it: its own parameters (local names, its
// tensor-parallel piece), their optimizer states, its buffers, its groups' members, and its
// ranks' default generators by restored_generators' rule (dist/checkpoint_generators.h).
// Throws naming the file and what was expected when a parameter is missing or cuts into another
// shape than the model's (a checkpoint of another model).
ConsolidatedCheckpoint localize(const UniversalCheckpoint& universal,
                                const ModelParallelPlacement& placement,
                                const NamedTensors& parameters, const NamedTensors& buffers);

}  // namespace zt::dist
