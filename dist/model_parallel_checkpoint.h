// Checkpoints of model-parallel engines and loading them at another (pp, tp, dp). Each engine
// of a (pipeline stage, tensor rank) writes DeepSpeed's files under its model-parallel rank
// mp = stage * tp + tensor_rank (mp_rank_XX_model_states, zero_pp_rank_R_mp_rank_XX_optim_states)
// and records, per parameter, its name in the whole model and how tensor parallelism cuts it.
// Loading does what DeepSpeed's separate "universal checkpoint" conversion does, on load: every
// rank reads all shard files, joins them into whole tensors (fp32 weights and optimizer states)
// by whole-model name, and cuts out the piece its own engine holds at the new layout.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
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

  int mp_rank() const { return pipeline_stage * tensor_size + tensor_rank; }
  int mp_size() const { return pipeline_stages * tensor_size; }
  std::string whole_name(const std::string& local) const;
  tensor_parallel::ShardLayout layout(const std::string& local) const;
};

// The model file's "model_parallel" metadata: the grid and each parameter's whole name and cut.
nlohmann::json placement_json(const ModelParallelPlacement& placement,
                              const NamedTensors& parameters, const NamedTensors& buffers);

// A checkpoint joined over every model-parallel and data-parallel rank, by whole-model name.
struct UniversalCheckpoint {
  std::string tag_dir;
  int pipeline_stages = 1, tensor_size = 1, data_size = 1;
  nlohmann::json engine_state;  // mp rank 0's (steps, schedule, groups' hyperparameters)
  nlohmann::json client_state;
  std::map<std::string, Tensor> fp32;
  std::map<std::string, std::map<std::string, Tensor>> optimizer_state;
  std::map<std::string, int64_t> optimizer_steps;
  std::map<std::string, Tensor> buffers;
  std::map<std::string, std::set<std::string>> group_members;  // group name -> whole names
  std::vector<std::vector<SavedGenerator>> generators;         // [mp rank][data rank]
};

// Reads every file of the checkpoint in `tag_dir` (saved at any layout, also by an engine
// without model parallelism). Errors are one line naming the file at fault: a missing
// model-parallel or data-parallel rank file, a missing tensor-parallel shard, shards that do
// not fit together.
UniversalCheckpoint read_universal_checkpoint(const std::string& tag_dir);

// The whole model of a checkpoint saved at any layout, as read_checkpoint gives it for one
// saved without model parallelism (which it returns as read_checkpoint does): every parameter's
// fp32 values and optimizer state under its whole-model name, and the buffers. What
// zero_to_fp32 and the generation apps read.
ConsolidatedCheckpoint read_whole_checkpoint(const std::string& tag_dir);

// The checkpoint as the engine at `placement` holds it: its own parameters (local names, its
// tensor-parallel piece), their optimizer states, its buffers, its groups' members, and its
// ranks' generators by restored_generators' rule.
// Throws naming the file and what was expected when a parameter is missing or cuts into another
// shape than the model's (a checkpoint of another model).
ConsolidatedCheckpoint localize(const UniversalCheckpoint& universal,
                                const ModelParallelPlacement& placement,
                                const NamedTensors& parameters, const NamedTensors& buffers);

// The default generators the data ranks of the engine at `placement` restore, one per data
// rank of the saved grid (data rank d takes entry d mod their count):
// - the same pipeline and tensor sizes: the states its (stage, tensor rank) saved, so a resume
//   at the same layout draws the same dropout masks as the run that kept going;
// - other sizes: the states of model-parallel rank 0, each with the largest offset any saved
//   rank reached under its seed: the resumed run draws no number drawn before the save.
std::vector<SavedGenerator> restored_generators(const UniversalCheckpoint& universal,
                                                const ModelParallelPlacement& placement);

}  // namespace zt::dist
