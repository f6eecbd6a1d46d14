// The on-disk layout of engine checkpoints: DeepSpeed's, with safetensors files.
//   DIR/latest                          the newest complete tag (one line)
//   DIR/TAG/mp_rank_XX_model_states.safetensors   (XX: model-parallel rank, 00 without one)
//       the model's tensors in its dtype; metadata "zerotrain" (engine state: steps, schedule,
//       loss scaler, world size, stage, parameter groups) and "client_state" (the caller's JSON)
//   DIR/TAG/zero_pp_rank_R_mp_rank_XX_optim_states.safetensors   (R: data-parallel rank)
//       rank R's fp32 slice of every flat group ("group.G.fp32") and its optimizer state
//       ("group.G.exp_avg", ...); metadata "zerotrain": the groups' layout (which parameter sits
//       where), optimizer steps and the rank's generator state
// Invariant: a tag directory appears under its name only once all of its files are complete,
// and `latest` names only such a directory (see Engine::save_checkpoint).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace zt::dist {

// `mp_rank`: the model-parallel rank (pipeline stage x tensor size + tensor rank), as %02d.
std::string model_states_file(const std::string& tag_dir, int mp_rank = 0);
std::string optim_states_file(const std::string& tag_dir, int rank, int mp_rank = 0);
std::string latest_file(const std::string& dir);

// The tag `latest` names; throws naming DIR/latest when it is missing, empty or unreadable.
std::string read_latest_tag(const std::string& dir);
// DIR/TAG for `tag`, or for `latest` when tag is empty; throws when that directory is missing.
std::string resolve_tag_dir(const std::string& dir, const std::string& tag);

// One rank's saved generator state.
struct SavedGenerator {
  uint64_t seed = 0, offset = 0;
};

// The largest offsets reached by the default generators and by the generators seeded per
// tensor rank (dist/checkpoint_generators.h).
struct GeneratorOffsets {
  uint64_t default_generator = 0, tensor_rank = 0;
};

// A whole checkpoint joined from its rank files, whatever world size saved it: every
// parameter's fp32 values and optimizer state, whole, by parameter name.
struct ConsolidatedCheckpoint {
  std::string tag_dir;
  nlohmann::json engine_state;  // the model file's "zerotrain" metadata
  nlohmann::json client_state;  // null when none was saved
  // The model file's "model_parallel" metadata (dist/model_parallel_checkpoint.h); null when
  // an engine without model parallelism saved it.
  nlohmann::json model_parallel;
  NamedTensors model_tensors;  // as saved: parameters and buffers, in the model's dtype
  // A tied parameter is saved once: {each other name: the name it is saved under}, from the
  // model file's metadata (as safetensors.torch.save_model records it).
  std::map<std::string, std::string> tied_names;
  std::vector<std::string> parameter_names;  // in layout order
  std::map<std::string, Tensor> fp32_params;
  std::map<std::string, std::map<std::string, Tensor>> optimizer_state;  // name -> state -> tensor
  std::map<std::string, int64_t> optimizer_steps;
  std::vector<SavedGenerator> generators;  // per saving rank
  // Per saving rank: the generators seeded per tensor rank (tensor_parallel/
  // tensor_rank_generator.h) by their module's name in the whole model; nullopt in a
  // checkpoint saved before they were.
  std::vector<std::optional<std::map<std::string, SavedGenerator>>> tensor_rank_generators;
  int world_size = 0;
};

// A checkpoint file's metadata entry `key` parsed as JSON; absent: null, or, when `required`,
// an error naming `path` and the key (as invalid JSON always is).
nlohmann::json metadata_json(const SafetensorsContents& contents, const std::string& key,
                             const std::string& path, bool required);

// Reads and checks every file of the checkpoint in `tag_dir`. Each error is one line naming
// the file (and tensor or key) at fault: a missing rank file, a truncated or lying file, a
// layout that does not cover every parameter exactly once, shapes that disagree.
// `mp_rank`: the files of that model-parallel rank only (its data-parallel ranks joined); the
// parameters keep the names they have there (dist/model_parallel_checkpoint.h joins the ranks).
// `files_opened`: each file opened is appended (the log a loader keeps); `model_file`: that
// rank's model-states file already read (it is not opened again).
ConsolidatedCheckpoint read_checkpoint(const std::string& tag_dir, int mp_rank = 0,
                                       std::vector<std::string>* files_opened = nullptr,
                                       const SafetensorsContents* model_file = nullptr);

}  // namespace zt::dist
