// offload_optimizer "nvme" (ZeRO-Infinity): the fp32 master and Adam's two moments of this
// rank's owned elements live in swap files, one set per sub-group (sub_group_size elements of
// the owned slices laid end to end over the flat groups). The update visits the sub-groups in
// order through dist/offload/sub_group_swapper.h, which reads the next and writes the previous
// sub-group while the current one is updated; reads and writes of one flat group's values
// (checkpoints) go through the same files.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/config.h"
#include "dist/offload/sub_group_swapper.h"
#include "dist/offload/swap_store.h"

namespace zt::dist {

class OptimizerStateSwap {
 public:
  // Tensors per sub-group, in this order.
  enum Slot : int { kMaster = 0, kExpAvg = 1, kExpAvgSq = 2, kSlots = 3 };

  // `group_numels`: the owned elements of each flat group. Makes the rank's swap folder
  // (throws std::invalid_argument naming offload_optimizer.nvme_path when it is unusable, and
  // offload_optimizer.buffer_count when it is too small for the pipeline).
  OptimizerStateSwap(const Config& config, int rank, std::vector<int64_t> group_numels);

  size_t sub_group_count() const { return swapper_->sub_group_count(); }
  int64_t sub_group_size() const { return sub_group_size_; }
  // Where flat group g's owned elements start in the end-to-end layout.
  int64_t group_start(size_t group) const { return group_starts_.at(group); }

  // Every slot of every sub-group: the masters from `masters` (one fp32 host tensor per
  // group), the moments zero.
  void initialize(const std::vector<Tensor>& masters);
  // The update pass: `update(s, slots)` with slots[kMaster..kExpAvgSq] holding sub-group s.
  void for_each(const std::function<void(size_t, const std::vector<Tensor>&)>& update);
  // Flat group g's values of one slot, as a fresh fp32 host tensor; and their replacement.
  Tensor read_group(size_t group, Slot slot);
  void write_group(size_t group, Slot slot, const Tensor& values);

  int64_t file_bytes() const;  // what the swap files hold
  offload::SwapStats stats() const { return swapper_->stats(); }
  const offload::SwapStore& store() const { return *store_; }

 private:
  std::vector<Tensor> load_sub_group(size_t s);
  void visit_group(
      size_t group,
      const std::function<void(size_t, std::vector<Tensor>&, int64_t, int64_t, int64_t)>& visit);

  int64_t sub_group_size_;
  std::vector<int64_t> group_numels_, group_starts_;
  int64_t total_numel_ = 0;
  std::unique_ptr<offload::SwapStore> store_;
  std::unique_ptr<offload::SubGroupSwapper> swapper_;
};

}  // namespace zt::dist
