// The files a loader reads (checkpoint_read_plan.h).
#include "dist/checkpoint_read_plan.h"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

#include "dist/checkpoint_files.h"

namespace zt::dist {

std::set<int> overlapping_tensor_ranks(int saved_tensor_size, int tensor_rank, int tensor_size) {
  // [t/N, (t+1)/N) meets [r/n, (r+1)/n) when t n < (r+1) N and r N < (t+1) n.
  std::set<int> ranks;
  for (int saved = 0; saved < saved_tensor_size; ++saved)
    if (int64_t(saved) * tensor_size < int64_t(tensor_rank + 1) * saved_tensor_size &&
        int64_t(tensor_rank) * saved_tensor_size < int64_t(saved + 1) * tensor_size)
      ranks.insert(saved);
  return ranks;
}

std::set<int> stages_holding(const SavedLayout& saved, const ModelParallelPlacement& reader) {
  std::set<int> all;
  for (int stage = 0; stage < saved.stages; ++stage) all.insert(stage);
  const size_t virtual_stages = size_t(saved.stages) * size_t(saved.chunks);
  if (saved.stages == 1 || reader.layers.empty() || saved.layer_bounds.size() != virtual_stages + 1)
    return all;
  std::set<int> stages;
  for (int layer : reader.layers) {
    bool held = false;
    for (size_t virtual_stage = 0; virtual_stage < virtual_stages; ++virtual_stage) {
      if (saved.layer_bounds[virtual_stage] <= layer &&
          layer < saved.layer_bounds[virtual_stage + 1]) {
        stages.insert(int(virtual_stage % size_t(saved.stages)));
        held = true;
      }
    }
    if (!held) return all;  // another model: let the joined names say what is missing
  }
  return stages;
}

std::set<int> needed_mp_ranks(const SavedLayout& saved, const ModelParallelPlacement* reader) {
  std::set<int> ranks;
  if (reader == nullptr) {
    for (int rank = 0; rank < saved.stages * saved.tensor_size; ++rank) ranks.insert(rank);
    return ranks;
  }
  const std::set<int> tensor_ranks =
      overlapping_tensor_ranks(saved.tensor_size, reader->tensor_rank, reader->tensor_size);
  for (int stage : stages_holding(saved, *reader))
    for (int tensor_rank : tensor_ranks) ranks.insert(stage * saved.tensor_size + tensor_rank);
  return ranks;
}

void check_checkpoint_files_exist(const std::string& tag_dir, const SavedLayout& saved) {
  const int mp_size = saved.stages * saved.tensor_size;
  for (int mp_rank = 0; mp_rank < mp_size; ++mp_rank) {
    const std::string path = model_states_file(tag_dir, mp_rank);
    if (!std::filesystem::exists(path))
      throw std::runtime_error(fmt::format(
          "{}: missing (the checkpoint was saved with {} pipeline stages x tensor size {})", path,
          saved.stages, saved.tensor_size));
  }
  for (int mp_rank = 0; mp_rank < mp_size; ++mp_rank) {
    for (int data_rank = 0; data_rank < saved.data_size; ++data_rank) {
      const std::string path = optim_states_file(tag_dir, data_rank, mp_rank);
      if (!std::filesystem::exists(path))
        throw std::runtime_error(fmt::format("{}: missing (the checkpoint was saved by {} ranks)",
                                             path, saved.data_size));
    }
  }
}

}  // namespace zt::dist
