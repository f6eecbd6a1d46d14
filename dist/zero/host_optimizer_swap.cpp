// Optimizer state in swap files, by sub-group (dist/zero/host_optimizer_swap.h).
#include "dist/zero/host_optimizer_swap.h"

#include <algorithm>

#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::dist {
namespace {

// Sub-groups of at most `size` elements tiling `total` elements (none when there are none).
std::vector<int64_t> sub_group_numels(int64_t total, int64_t size) {
  std::vector<int64_t> numels;
  for (int64_t begin = 0; begin < total; begin += size)
    numels.push_back(std::min(size, total - begin));
  return numels;
}

}  // namespace

OptimizerStateSwap::OptimizerStateSwap(const Config& config, int rank,
                                       std::vector<int64_t> group_numels)
    : sub_group_size_(config.zero_optimization.sub_group_size),
      group_numels_(std::move(group_numels)) {
  for (int64_t numel : group_numels_) {
    group_starts_.push_back(total_numel_);
    total_numel_ += numel;
  }
  const OffloadConfig& offload = config.zero_optimization.offload_optimizer;
  store_ = std::make_unique<offload::SwapStore>(offload.nvme_path,
                                                "zero_optimization.offload_optimizer.nvme_path",
                                                "optimizer", rank, config.aio);
  swapper_ = std::make_unique<offload::SubGroupSwapper>(
      *store_, sub_group_numels(total_numel_, sub_group_size_), int(kSlots), offload.buffer_count,
      offload.pipeline_read, offload.pipeline_write);
}

void OptimizerStateSwap::initialize(const std::vector<Tensor>& masters) {
  for (size_t s = 0; s < sub_group_count(); ++s) {
    int64_t begin = int64_t(s) * sub_group_size_;
    int64_t numel = swapper_->sub_group_numel(s);
    std::vector<Tensor> slots;
    for (int t = 0; t < kSlots; ++t)
      slots.push_back(zeros({numel}, {.dtype = DType::f32, .tag = MemoryTag::swap_buffer}));
    for (size_t g = 0; g < group_numels_.size(); ++g) {
      int64_t lo = std::max(begin, group_starts_[g]);
      int64_t hi = std::min(begin + numel, group_starts_[g] + group_numels_[g]);
      if (lo >= hi) continue;
      ops::copy_(ops::narrow(slots[kMaster], 0, lo - begin, hi - lo),
                 ops::narrow(masters[g], 0, lo - group_starts_[g], hi - lo));
    }
    swapper_->store(s, slots);
  }
}

void OptimizerStateSwap::for_each(
    const std::function<void(size_t, const std::vector<Tensor>&)>& update) {
  swapper_->for_each(update);
}

std::vector<Tensor> OptimizerStateSwap::load_sub_group(size_t s) {
  std::vector<Tensor> slots;
  for (int t = 0; t < kSlots; ++t) {
    slots.push_back(empty({swapper_->sub_group_numel(s)},
                          {.dtype = DType::f32, .tag = MemoryTag::swap_buffer}));
  }
  swapper_->load(s, slots);
  return slots;
}

// Calls visit(s, slots, group_offset, sub_group_offset, count) for every sub-group s that
// holds some of flat group g's elements: they are slots' elements [sub_group_offset,
// + count), which are the group's [group_offset, + count).
void OptimizerStateSwap::visit_group(
    size_t group,
    const std::function<void(size_t, std::vector<Tensor>&, int64_t, int64_t, int64_t)>& visit) {
  int64_t start = group_starts_.at(group), numel = group_numels_.at(group);
  for (size_t s = 0; s < sub_group_count(); ++s) {
    int64_t begin = int64_t(s) * sub_group_size_;
    int64_t lo = std::max(begin, start);
    int64_t hi = std::min(begin + swapper_->sub_group_numel(s), start + numel);
    if (lo >= hi) continue;
    std::vector<Tensor> slots = load_sub_group(s);
    visit(s, slots, lo - start, lo - begin, hi - lo);
  }
}

Tensor OptimizerStateSwap::read_group(size_t group, Slot slot) {
  Tensor values =
      empty({group_numels_.at(group)}, {.dtype = DType::f32, .tag = MemoryTag::swap_buffer});
  visit_group(group, [&](size_t, std::vector<Tensor>& slots, int64_t group_offset,
                         int64_t sub_group_offset, int64_t count) {
    ops::copy_(ops::narrow(values, 0, group_offset, count),
               ops::narrow(slots[size_t(slot)], 0, sub_group_offset, count));
  });
  return values;
}

void OptimizerStateSwap::write_group(size_t group, Slot slot, const Tensor& values) {
  Tensor flat = ops::reshape(values, {values.numel()});
  visit_group(group, [&](size_t s, std::vector<Tensor>& slots, int64_t group_offset,
                         int64_t sub_group_offset, int64_t count) {
    ops::copy_(ops::narrow(slots[size_t(slot)], 0, sub_group_offset, count),
               ops::narrow(flat, 0, group_offset, count));
    swapper_->store(s, slots);
  });
}

int64_t OptimizerStateSwap::file_bytes() const {
  return int64_t(kSlots) * total_numel_ * int64_t(sizeof(float));
}

}  // namespace zt::dist
