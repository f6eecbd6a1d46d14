// Which files of a checkpoint saved at one (pp, tp, dp) an engine at another (or the same)
// layout reads: the model-parallel ranks whose stages held its layers and whose tensor ranks'
// shards overlap its own piece, each with its data ranks' optimizer files. At the same layout
// that is only its own model-parallel rank. The other files are checked to exist (not opened),
// so a damaged checkpoint is refused alike on every rank.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "dist/model_parallel_checkpoint.h"

namespace zt::dist {

// The grid a checkpoint was saved on, as its model-states files record it.
struct SavedLayout {
  int stages = 1, tensor_size = 1, data_size = 1, chunks = 1;
  // The first layer of each virtual stage (chunk * stages + stage), and the end; empty when
  // the saving engine was not a pipeline stage or predates the record.
  std::vector<int> layer_bounds;
};

// The saved tensor ranks whose shards overlap tensor rank r of size n (rank t of size N holds
// [t/N, (t+1)/N) of every cut dimension); a replicated parameter is read from the lowest.
std::set<int> overlapping_tensor_ranks(int saved_tensor_size, int tensor_rank, int tensor_size);
// The saved stages holding `reader`'s layers: every stage when the reader is not a pipeline
// stage (it holds the whole model) or the checkpoint does not record its partition.
std::set<int> stages_holding(const SavedLayout& saved, const ModelParallelPlacement& reader);
// The model-parallel ranks `reader` reads; every one when `reader` is null (the whole model).
std::set<int> needed_mp_ranks(const SavedLayout& saved, const ModelParallelPlacement* reader);

// Throws naming the first missing model-states or optimizer file of the checkpoint.
void check_checkpoint_files_exist(const std::string& tag_dir, const SavedLayout& saved);

}  // namespace zt::dist
