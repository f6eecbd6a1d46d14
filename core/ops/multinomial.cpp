// multinomial validates the weights with four reductions read back in one transfer (a device
// backend cannot throw from inside its kernel), then samples from a private f64 copy: the
// kernels share their arithmetic in f64 whatever the input dtype, so every backend draws alike.
#include "core/ops/multinomial.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

void check_weights(const Tensor& weights, int64_t num_samples, bool replacement) {
  // Each statistic as an f64 of shape [1]: the smallest weight, the largest, the smallest row
  // sum and the fewest positive weights of a row.
  Tensor positives = sum(to_dtype(gt(weights, 0.0), DType::f64), {1});
  std::vector<double> stats =
      to_device(cat({reshape(amin(weights), {1}), reshape(amax(weights), {1}),
                     reshape(amin(sum(weights, {1})), {1}), reshape(amin(positives), {1})},
                    0),
                Device::cpu())
          .to_vector();
  if (!(stats[0] >= 0.0) || !std::isfinite(stats[1])) {
    throw std::invalid_argument(
        "multinomial: probs must be finite and non-negative (found a negative, inf or NaN)");
  }
  if (!(stats[2] > 0.0)) {
    throw std::invalid_argument("multinomial: probs has a row whose weights sum to 0");
  }
  if (!replacement && stats[3] < double(num_samples)) {
    throw std::invalid_argument(
        fmt::format("multinomial: num_samples ({}) without replacement exceeds a row's {} "
                    "positive weights",
                    num_samples, int64_t(stats[3])));
  }
}

}  // namespace

Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement,
                   Generator* generator) {
  if (!probs.defined() || !is_floating(probs.dtype()) || probs.dim() < 1 || probs.dim() > 2) {
    throw std::invalid_argument(
        fmt::format("multinomial: probs must be a floating tensor of 1 or 2 dims, got {} {}",
                    probs.defined() ? dtype_name(probs.dtype()) : "undefined",
                    probs.defined() ? shape_str(probs.sizes()) : ""));
  }
  int64_t categories = probs.size(-1);
  if (num_samples <= 0) {
    throw std::invalid_argument(
        fmt::format("multinomial: num_samples must be positive, got {}", num_samples));
  }
  if (categories == 0) throw std::invalid_argument("multinomial: probs has no categories");
  if (!replacement && num_samples > categories) {
    throw std::invalid_argument(
        fmt::format("multinomial: cannot draw num_samples {} > {} categories without replacement",
                    num_samples, categories));
  }
  int64_t rows = probs.dim() == 2 ? probs.size(0) : 1;
  Tensor out =
      empty({rows, num_samples}, TensorOptions{.dtype = DType::i64, .device = probs.device()});
  if (rows > 0) {
    // A fresh copy even for contiguous f64 input: sampling without replacement writes to it.
    Tensor weights = clone(to_dtype(reshape(probs, {rows, categories}), DType::f64));
    check_weights(weights, num_samples, replacement);
    Generator& source = generator != nullptr ? *generator : default_generator();
    uint64_t offset = source.reserve(uint64_t(rows * num_samples));
    backend_for(probs.device())
        .multinomial(weights, num_samples, replacement, source.seed(), offset, out);
  }
  return probs.dim() == 1 ? reshape(out, {num_samples}) : out;
}

}  // namespace zt::ops
