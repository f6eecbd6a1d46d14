// cumsum without autograd: a contiguous copy (integers widened to i64 first) scanned by the
// backend's cumsum kernel along the wrapped dim.
#include "core/ops/cumsum.h"

#include <algorithm>
#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::ops {

Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  if (!x.defined()) throw std::invalid_argument("cumsum: input is undefined");
  int64_t rank = std::max<int64_t>(1, x.dim());
  int64_t wrapped = wrap_dim(dim, rank, "cumsum: dim");
  DType dtype = is_floating(x.dtype()) ? x.dtype() : DType::i64;
  Tensor source = contiguous(to_dtype(x, dtype));
  if (x.dim() == 0) source = reshape(source, {1});
  Tensor out = empty(source.sizes(), TensorOptions{.dtype = dtype, .device = x.device()});
  if (out.numel() > 0) backend_for(x.device()).cumsum(source, out, wrapped, reverse);
  return x.dim() == 0 ? reshape(out, {}) : out;
}

}  // namespace zt::ops
