// Differentiable tril, triu, masked_fill and cumsum. The gradient of a masking op is the same
// mask applied to the output gradient (zero where the forward wrote a constant); the gradient
// of cumsum is the cumulative sum of the output gradient taken from the end backwards.
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/ops/cumsum.h"
#include "core/ops/masking.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

Tensor tril(const Tensor& x, int64_t diagonal) {
  return record("TrilBackward", {x}, ops::tril(x, diagonal),
                [diagonal](const Tensor& g) { return Grads{ops::tril(g, diagonal)}; });
}

Tensor triu(const Tensor& x, int64_t diagonal) {
  return record("TriuBackward", {x}, ops::triu(x, diagonal),
                [diagonal](const Tensor& g) { return Grads{ops::triu(g, diagonal)}; });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return record(
      "MaskedFillBackward", {x}, ops::masked_fill(x, mask, value),
      [mask = mask.detach()](const Tensor& g) { return Grads{ops::masked_fill(g, mask, 0.0)}; });
}

Tensor cumsum(const Tensor& x, int64_t dim) {
  return record("CumsumBackward", {x}, ops::cumsum(x, dim),
                [dim](const Tensor& g) { return Grads{ops::cumsum(g, dim, /*reverse=*/true)}; });
}

}  // namespace zt
