// offload_param "nvme" (ZeRO-Infinity's parameters): the owned slices of the partitioned groups
// beyond the first max_in_cpu elements (in plan order) live in swap files, one per group, and
// come into one of buffer_count host swap buffers (of the largest swapped slice, at most
// buffer_size elements) only while something needs them: a gather, which copies the slice to
// the device and all-gathers it, or the update, which writes the new values and sends them
// back to the file. The gatherer asks for a group when it starts its gather (prefetches
// included), and beyond its prefetch window it starts reads of the next swapped groups in the
// first step's recorded order into spare buffers, so they come in while modules compute.
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
  ~ParameterSwap();  // lets reads still in flight land before their buffers go
  ParameterSwap(const ParameterSwap&) = delete;
  ParameterSwap& operator=(const ParameterSwap&) = delete;

  bool swapped(size_t group) const { return swapped_.at(group); }
  // Brings the group's slice into a buffer and points owned_params at it; a group already in
  // stays. When every buffer is taken, `make_room` is asked to give one back first.
  void bring_in(size_t group, const std::function<void()>& make_room);
  // Starts reading the group's slice into a free buffer (when one is left over for the groups
  // needed now), so that its later bring_in only waits for what is still in flight.
  void read_ahead(size_t group);
  // The group's slice leaves its buffer (written to its file first when `changed`).
  void send_out(size_t group, bool changed);
  bool is_in(size_t group) const { return holder_.at(group) >= 0; }
  size_t free_buffers() const;
  int64_t file_bytes() const { return file_bytes_; }
  int64_t reads_ahead() const { return reads_ahead_; }  // started by read_ahead so far

 private:
  FlatGroupList& groups_;
  std::unique_ptr<offload::SwapStore> store_;
  std::vector<bool> swapped_;
  std::vector<Tensor> buffers_;
  std::vector<int> holder_;                          // per group: the buffer holding it, or -1
  std::vector<bool> buffer_taken_;                   // per buffer
  std::vector<bool> reading_;                        // per group: a read_ahead not yet waited for
  std::vector<offload::SwapStore::Ticket> tickets_;  // per group, while reading_
  int64_t file_bytes_ = 0;
  int64_t reads_ahead_ = 0;
  Tensor slice_in(size_t buffer, size_t group) const;
  size_t take_free_buffer();
  void land_read(size_t group);
  bool drop_a_read_ahead();
};

}  // namespace zt::dist
