// Differentiable losses. cross_entropy is fused (one kernel for log-softmax + NLL, one for its
// backward); nll_loss and mse_loss are composed from differentiable primitives. `mean` over a
// loss with ignore_index divides by the number of targets that are not ignored.
#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/factory.h"
#include "core/ops/nn.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

namespace {

// Per-target losses reduced as asked; `counted` is the divisor of the mean.
Tensor reduce_losses(const Tensor& losses, Reduction reduction, double counted) {
  switch (reduction) {
    case Reduction::none:
      return losses;
    case Reduction::sum:
      return sum(losses);
    case Reduction::mean:
      return div(sum(losses), counted);
  }
  throw std::invalid_argument("loss: unknown reduction");
}

void check_class_targets(const char* op, const Tensor& scores, const Tensor& target) {
  if (scores.dim() != 2 || target.dim() != 1 || target.size(0) != scores.size(0)) {
    throw std::invalid_argument(
        fmt::format("{}: expected input [N, C] and target [N], got {} and {}", op,
                    shape_str(scores.sizes()), shape_str(target.sizes())));
  }
  if (target.dtype() != DType::i64) {
    throw std::invalid_argument(
        fmt::format("{}: target must be i64, got {}", op, dtype_name(target.dtype())));
  }
}

double count_not_ignored(const std::vector<double>& targets, int64_t ignore_index) {
  double count = 0;
  for (double t : targets) count += int64_t(t) != ignore_index ? 1 : 0;
  return count;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  check_class_targets("cross_entropy", logits, target);
  ops::CrossEntropyForward forward =
      ops::cross_entropy_forward(logits, target, ignore_index, label_smoothing);
  Tensor losses = forward.losses;
  forward.losses = forward.losses.detach();  // the node must not hold its own output's metadata
  losses =
      record("CrossEntropyBackward", {logits}, losses,
             [forward, target = target.detach(), ignore_index, label_smoothing](const Tensor& g) {
               return Grads{
                   ops::cross_entropy_backward(g, forward, target, ignore_index, label_smoothing)};
             });
  double counted =
      reduction == Reduction::mean ? count_not_ignored(target.to_vector(), ignore_index) : 1.0;
  return reduce_losses(losses, reduction, counted);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index,
                Reduction reduction) {
  check_class_targets("nll_loss", log_probs, target);
  int64_t rows = log_probs.size(0), classes = log_probs.size(1);
  std::vector<double> targets = target.to_vector();
  // Position of each row's target in the flattened input; ignored rows pick element 0 of
  // their row and are then multiplied by 0.
  std::vector<int64_t> flat_positions(size_t(rows), 0);
  std::vector<double> kept(size_t(rows), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    int64_t t = int64_t(targets[size_t(i)]);
    if (t == ignore_index) {
      flat_positions[size_t(i)] = i * classes;
      continue;
    }
    if (t < 0 || t >= classes) {
      throw std::out_of_range(
          fmt::format("nll_loss: target {} of row {} is outside [0, {})", t, i, classes));
    }
    flat_positions[size_t(i)] = i * classes + t;
    kept[size_t(i)] = 1.0;
  }
  TensorOptions options = TensorOptions{}.with_device(log_probs.device());
  Tensor positions = from_int64(flat_positions, {rows}, options.with_dtype(DType::i64));
  Tensor kept_mask = from_values(kept, {rows}, options.with_dtype(log_probs.dtype()));
  Tensor picked = index_select(log_probs.reshape({rows * classes}), 0, positions);
  Tensor losses = mul(neg(picked), kept_mask);
  return reduce_losses(losses, reduction, count_not_ignored(targets, ignore_index));
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  if (input.sizes() != target.sizes()) {
    throw std::invalid_argument(fmt::format("mse_loss: input {} and target {} differ in shape",
                                            shape_str(input.sizes()), shape_str(target.sizes())));
  }
  Tensor difference = sub(input, target);
  Tensor squared = mul(difference, difference);
  if (reduction == Reduction::mean) return mean(squared);
  return reduce_losses(squared, reduction, 1.0);
}

}  // namespace zt
