// Master weights, the optimizer over owned slices, the update, and the overflow check and norm
// over owned gradients (dist/zero/optimizer_shard.h).
#include "dist/zero/optimizer_shard.h"

#include <cmath>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "dist/config_builders.h"

namespace zt::dist {

OptimizerShard::OptimizerShard(ZeroPartitioning partitioning, const Config& config,
                               FlatGroupList& groups, Device device, bool mixed_precision,
                               comm::Communicator& control)
    : partitioning_(partitioning),
      config_(config),
      groups_(groups),
      device_(device),
      mixed_precision_(mixed_precision),
      control_(control) {
  std::vector<Tensor> owned;
  for (auto& group : groups_) {
    if (mixed_precision_) {
      group->master_params =
          empty(group->owned_params.sizes(),
                {.dtype = DType::f32, .device = device_, .tag = MemoryTag::optim_state});
      ops::copy_(group->master_params, group->owned_params);
    } else {
      group->owned_params.set_grad(group->owned_grads);
    }
    group->update_params().set_requires_grad(true);
    owned.push_back(group->update_params());
  }
  const OptimizerConfig& settings = config_.optimizer;
  optimizer_ =
      make_optimizer(settings, optim::single_group(owned, settings.lr, settings.weight_decay));
}

void OptimizerShard::make_master_gradients(double loss_scale) {
  double unscale = 1.0 / loss_scale;
  for (auto& group : groups_) {
    group->master_grads = empty(group->owned_grads.sizes(),
                                {.dtype = DType::f32, .device = device_, .tag = MemoryTag::grad});
    ops::copy_(group->master_grads, group->owned_grads);
    if (unscale != 1.0) ops::mul_(group->master_grads, unscale);
    group->master_params.set_grad(group->master_grads);
  }
}

void OptimizerShard::drop_master_gradients() {
  for (auto& group : groups_) {
    if (!group->master_grads.defined()) continue;
    group->master_params.set_grad(Tensor());
    group->master_grads = Tensor();
  }
}

std::vector<double> OptimizerShard::local_square_sums() {
  std::vector<Tensor> pieces;
  int world = control_.size();
  for (auto& group : groups_) {
    if (!partitioning_.optimizer_states) {
      for (int r = 0; r < world; ++r) {
        pieces.push_back(flat_range(group->update_grads(), group->plan.slice_begin(r),
                                    group->plan.slice_numel()));
      }
    } else {
      pieces.push_back(group->update_grads());
    }
  }
  return ops::sum_of_squares(pieces);
}

// Each rank checks what it updates (its owned slice, through its sums of squares), and the
// flags are combined so that every rank skips the same steps.
bool OptimizerShard::gradients_overflowed(const std::vector<double>& square_sums) {
  double local = 0.0;
  for (double sum : square_sums) {
    if (!std::isfinite(sum)) local = 1.0;
  }
  Tensor flag = full({1}, local, {.dtype = DType::f64, .tag = MemoryTag::comm});
  control_.all_reduce(flag, comm::ReduceOperation::max);
  return flag.item() != 0.0;
}

double OptimizerShard::global_grad_norm(const std::vector<double>& square_sums) {
  // Sums of squares per rank slice of every group, in double, combined in rank order: the
  // same arithmetic with and without P_os, so the clipping coefficient is bitwise the same.
  int world = control_.size();
  std::vector<double> partials(size_t(world), 0.0);
  if (!partitioning_.optimizer_states) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (int r = 0; r < world; ++r)
        partials[size_t(r)] += square_sums[g * size_t(world) + size_t(r)];
    }
  } else {
    double mine = 0.0;
    for (double sum : square_sums) mine += sum;
    Tensor gathered = empty({world}, {.dtype = DType::f64, .tag = MemoryTag::comm});
    Tensor local = full({1}, mine, {.dtype = DType::f64, .tag = MemoryTag::comm});
    control_.all_gather(local, gathered);
    std::vector<double> values = gathered.to_vector();
    for (int r = 0; r < world; ++r) partials[size_t(r)] = values[size_t(r)];
  }
  double total = 0.0;
  for (double partial : partials) total += partial;
  return std::sqrt(total);
}

void OptimizerShard::update(double grad_norm) {
  if (config_.gradient_clipping > 0.0) {
    // torch.nn.utils.clip_grad_norm_'s (and DeepSpeed's) rule: scale by the coefficient
    // whenever it is below 1, which includes norms up to 1e-6 below the bound.
    const double coefficient = config_.gradient_clipping / (grad_norm + 1e-6);
    if (coefficient < 1.0) scale_update_gradients(coefficient);
  }
  optimizer_->step();
  if (mixed_precision_) copy_master_to_parameters();
}

void OptimizerShard::scale_update_gradients(double factor) {
  for (auto& group : groups_) ops::mul_(group->update_grads(), factor);
}

// Rounds each updated fp32 master slice into the 16-bit parameters it shadows.
void OptimizerShard::copy_master_to_parameters() {
  for (auto& group : groups_) ops::copy_(group->owned_params, group->master_params);
}

}  // namespace zt::dist
