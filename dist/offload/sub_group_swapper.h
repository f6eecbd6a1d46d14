// Optimizer state in swap files, one sub-group at a time through a few host swap buffers:
// with pipeline_read the next sub-group is read while the current one is updated, with
// pipeline_write the previous one is written meanwhile. Sub-group g holds
// tensors_per_sub_group f32 tensors of sub_group_numels[g] elements, one swap file each.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "dist/offload/swap_store.h"

namespace zt::offload {

// Where for_each's time went, for reports and the overlap benchmark.
struct PipelineStats {
  double update_seconds = 0;   // inside the update callback
  double io_wait_seconds = 0;  // blocked on a read or write the update needed ended
  double total_seconds = 0;    // for_each's wall time
  int64_t passes = 0;          // for_each calls
};

class SubGroupSwapper {
 public:
  // Throws std::invalid_argument naming zero_optimization.offload_optimizer.buffer_count when
  // buffer_count is below what the pipeline needs (tensors_per_sub_group buffers per sub-group
  // held at once: 1, +1 with pipeline_read, +1 with pipeline_write), saying the minimum and why.
  SubGroupSwapper(SwapStore& store, std::vector<int64_t> sub_group_numels,
                  int tensors_per_sub_group, int64_t buffer_count, bool pipeline_read,
                  bool pipeline_write);
  ~SubGroupSwapper();
  SubGroupSwapper(const SubGroupSwapper&) = delete;
  SubGroupSwapper& operator=(const SubGroupSwapper&) = delete;

  size_t sub_group_count() const { return sub_group_numels_.size(); }
  int64_t sub_group_numel(size_t g) const { return sub_group_numels_.at(g); }
  // The buffer_count this pipeline needs at least.
  static int64_t min_buffer_count(int tensors_per_sub_group, bool pipeline_read,
                                  bool pipeline_write);

  // Synchronous: `values` (tensors_per_sub_group f32 host tensors of g's numel) to g's files,
  // and g's files into `into`.
  void store(size_t g, const std::vector<Tensor>& values);
  void load(size_t g, const std::vector<Tensor>& into);
  // update(g, tensors) for g = 0..count-1 in order; `tensors` are swap buffers holding g's
  // values, changed in place and written back. Overlaps I/O with update as configured.
  void for_each(const std::function<void(size_t, const std::vector<Tensor>&)>& update);

  SwapStats stats() const { return stats_; }  // this swapper's own transfers
  PipelineStats pipeline_stats() const { return pipeline_stats_; }

 private:
  using BufferSet = std::vector<Tensor>;  // tensors_per_sub_group swap buffers
  std::string key_of(size_t g, int tensor) const;
  std::vector<SwapStore::Ticket> start_io(size_t g, const BufferSet& buffers,
                                          IoDirection direction);
  void finish_io(std::vector<SwapStore::Ticket>& tickets);
  void add_store_seconds(const SwapStats& before);
  void check_values(size_t g, const std::vector<Tensor>& values, const char* what) const;

  SwapStore& store_;
  std::vector<int64_t> sub_group_numels_;
  int tensors_per_sub_group_;
  bool pipeline_read_, pipeline_write_;
  std::vector<BufferSet> buffer_sets_;
  SwapStats stats_;
  PipelineStats pipeline_stats_;
};

}  // namespace zt::offload
