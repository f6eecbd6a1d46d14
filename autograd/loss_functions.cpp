// Differentiable losses. cross_entropy is fused (one kernel for log-softmax + NLL, one for its
// backward) over rows of C scores, in PyTorch's layouts ([C], [N, C], [N, C, d1, ...]: only
// the last copies, to move the class dim last); class-probability targets and nll_loss and
// mse_loss are composed from differentiable primitives. `mean` over a loss with ignore_index
// divides by the number of targets that are not ignored.
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

// An input in one of PyTorch's class layouts seen as rows of C scores: [C] with a 0-d target,
// [N, C] with [N], [N, C, d1, ..., dk] with [N, d1, ..., dk]. The last layout moves the class
// dim last (one copy of the input); the first two are used as they are.
struct ClassRows {
  Tensor scores;       // [M, C]
  Tensor target;       // [M]
  Shape target_shape;  // the shape of the per-element losses
};

// The target shape an input's layout asks for: the input's without its class dim.
Shape expected_target_shape(const Tensor& input) {
  Shape shape = input.sizes();
  shape.erase(shape.begin() + (input.dim() == 1 ? 0 : 1));
  return shape;
}

ClassRows class_rows(const char* op, const Tensor& input, const Tensor& target) {
  if (!input.defined() || !target.defined()) {
    throw std::invalid_argument(fmt::format("{}: input and target must be defined", op));
  }
  if (input.dim() == 0) {
    throw std::invalid_argument(
        fmt::format("{}: input must be [C], [N, C] or [N, C, d1, ...], got a 0-d tensor", op));
  }
  const Shape target_shape = expected_target_shape(input);
  if (target.sizes() != target_shape) {
    throw std::invalid_argument(
        fmt::format("{}: target has shape {}, expected {} for input {} (class dim {})", op,
                    shape_str(target.sizes()), shape_str(target_shape), shape_str(input.sizes()),
                    input.dim() == 1 ? 0 : 1));
  }
  if (target.dtype() != DType::i64) {
    throw std::invalid_argument(fmt::format("{}: target must be i64 class indices, got {}", op,
                                            dtype_name(target.dtype())));
  }
  if (input.dim() == 2) return {input, target, target_shape};
  const int64_t classes = input.dim() == 1 ? input.size(0) : input.size(1);
  const int64_t rows = target.numel();
  if (input.dim() == 1) return {input.reshape({1, classes}), target.reshape({1}), target_shape};
  Shape class_last{0};
  for (int64_t d = 2; d < input.dim(); ++d) class_last.push_back(d);
  class_last.push_back(1);
  return {input.permute(class_last).reshape({rows, classes}), target.reshape({rows}), target_shape};
}

// Per-row losses in the target's shape; [N, C]'s are already, and stay one node shorter.
Tensor in_shape(const Tensor& losses, const Shape& target_shape) {
  return losses.sizes() == target_shape ? losses : losses.reshape(target_shape);
}

double count_not_ignored(const std::vector<double>& targets, int64_t ignore_index) {
  double count = 0;
  for (double t : targets) count += int64_t(t) != ignore_index ? 1 : 0;
  return count;
}

// Class probabilities (a float target of the input's shape): -sum_c p_c log_softmax_c, with
// p smoothed to p (1 - label_smoothing) + label_smoothing / C; `mean` divides by the number
// of rows (input.numel() / C), as PyTorch does.
Tensor cross_entropy_with_probabilities(const Tensor& logits, const Tensor& target,
                                        double label_smoothing, Reduction reduction) {
  const char* op = "cross_entropy";
  if (!logits.defined() || logits.dim() == 0 || target.sizes() != logits.sizes()) {
    throw std::invalid_argument(fmt::format(
        "{}: a float target holds class probabilities and must have the input's shape, got "
        "target {} and input {}",
        op, shape_str(target.sizes()), logits.defined() ? shape_str(logits.sizes()) : "undefined"));
  }
  if (target.dtype() != logits.dtype()) {
    throw std::invalid_argument(fmt::format("{}: target has dtype {}, expected the input's {}", op,
                                            dtype_name(target.dtype()),
                                            dtype_name(logits.dtype())));
  }
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    throw std::invalid_argument(
        fmt::format("{}: label_smoothing must be in [0, 1], got {}", op, label_smoothing));
  }
  const int64_t class_dim = logits.dim() == 1 ? 0 : 1;
  const int64_t classes = logits.size(class_dim);
  Tensor probabilities = target;
  if (label_smoothing > 0.0) {
    probabilities = add(mul(target, 1.0 - label_smoothing), label_smoothing / double(classes));
  }
  Tensor losses = neg(sum(mul(log_softmax(logits, class_dim), probabilities), {class_dim}));
  const double rows = classes > 0 ? double(logits.numel() / classes) : 0.0;
  return reduce_losses(losses, reduction, rows);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  if (target.defined() && is_floating(target.dtype())) {
    return cross_entropy_with_probabilities(logits, target, label_smoothing, reduction);
  }
  const ClassRows rows = class_rows("cross_entropy", logits, target);
  ops::CrossEntropyForward forward =
      ops::cross_entropy_forward(rows.scores, rows.target, ignore_index, label_smoothing);
  Tensor losses = forward.losses;
  forward.losses = forward.losses.detach();  // the node must not hold its own output's metadata
  losses = record(
      "CrossEntropyBackward", {rows.scores}, losses,
      [forward, target = rows.target.detach(), ignore_index, label_smoothing](const Tensor& g) {
        return Grads{
            ops::cross_entropy_backward(g, forward, target, ignore_index, label_smoothing)};
      });
  if (reduction == Reduction::none) return in_shape(losses, rows.target_shape);
  double counted =
      reduction == Reduction::mean ? count_not_ignored(rows.target.to_vector(), ignore_index) : 1.0;
  return reduce_losses(losses, reduction, counted);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index,
                Reduction reduction) {
  const ClassRows class_rows_of = class_rows("nll_loss", log_probs, target);
  const Tensor& scores = class_rows_of.scores;
  int64_t rows = scores.size(0), classes = scores.size(1);
  std::vector<double> targets = class_rows_of.target.to_vector();
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
  TensorOptions options = TensorOptions{}.with_device(scores.device());
  Tensor positions = from_int64(flat_positions, {rows}, options.with_dtype(DType::i64));
  Tensor kept_mask = from_values(kept, {rows}, options.with_dtype(scores.dtype()));
  Tensor picked = index_select(scores.reshape({rows * classes}), 0, positions);
  Tensor losses = mul(neg(picked), kept_mask);
  if (reduction == Reduction::none) return in_shape(losses, class_rows_of.target_shape);
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
