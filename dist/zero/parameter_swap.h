// offload_param "nvme" (ZeRO-Infinity's parameters): the owned slices of the partitioned groups
// beyond the first max_in_cpu elements (in plan order) live in swap files, one per group, and
// come into one of buffer_count host swap buffers (of the largest swapped slice, at most
// buffer_size elements) only while something needs them: a gather, which copies the slice to
// the device and all-gathers it, or the update, which writes the new values and sends them
// back to the file. The gatherer asks for a group when it starts its gather, so the groups it
// prefetches in the first step's recorded order are read ahead of their modules.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/config.h"
#include "dist/offload/swap_store.h"
#include "dist/zero/flat_group_buffers.h"

namespace zt::dist {

class ParameterSwap {
 public:
  // Moves the slices beyond max_in_cpu out of `groups` (their owned_params become undefined)
  // into the rank's swap folder. Throws std::invalid_argument naming
  // zero_optimization.offload_param.buffer_size when a swapped slice is larger, with the module
  // and both sizes, and naming nvme_path when the folder is unusable.
  ParameterSwap(const Config& config, int rank, FlatGroupList& groups);

  bool swapped(size_t group) const { return swapped_.at(group); }
  // Brings the group's slice into a buffer and points owned_params at it; a group already in
  // stays. When every buffer is taken, `make_room` is asked to give one back first.
  void bring_in(size_t group, const std::function<void()>& make_room);
  // The group's slice leaves its buffer (written to its file first when `changed`).
  void send_out(size_t group, bool changed);
  bool is_in(size_t group) const { return holder_.at(group) >= 0; }
  size_t free_buffers() const;
  int64_t file_bytes() const { return file_bytes_; }

 private:
  FlatGroupList& groups_;
  std::unique_ptr<offload::SwapStore> store_;
  std::vector<bool> swapped_;
  std::vector<Tensor> buffers_;
  std::vector<int> holder_;         // per group: the buffer holding it, or -1
  std::vector<bool> buffer_taken_;  // per buffer
  int64_t file_bytes_ = 0;
};

}  // namespace zt::dist
