// tril, triu and masked_fill without autograd. tril/triu run the backend's triangle kernel on
// a contiguous copy; masked_fill is the backend's where kernel with a 0-d value, after checking
// that the mask broadcasts to x's shape without growing it (PyTorch's rule).
#include "core/ops/masking.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

Tensor triangle(const Tensor& x, int64_t diagonal, bool upper) {
  const char* op = upper ? "triu" : "tril";
  if (!x.defined()) throw std::invalid_argument(fmt::format("{}: input is undefined", op));
  if (x.dim() < 2) {
    throw std::invalid_argument(
        fmt::format("{}: input must have at least 2 dimensions, got {}", op, shape_str(x.sizes())));
  }
  Tensor source = contiguous(x);
  Tensor out = empty(x.sizes(), TensorOptions{.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) backend_for(x.device()).triangle(source, out, diagonal, upper);
  return out;
}

}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) {
  return triangle(x, diagonal, false);
}

Tensor triu(const Tensor& x, int64_t diagonal) {
  return triangle(x, diagonal, true);
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  if (!x.defined()) throw std::invalid_argument("masked_fill: input is undefined");
  if (!mask.defined()) throw std::invalid_argument("masked_fill: mask is undefined");
  if (mask.dtype() != DType::u8) {
    throw std::invalid_argument(fmt::format("masked_fill: mask must be u8 (bool), got {} {}",
                                            dtype_name(mask.dtype()), shape_str(mask.sizes())));
  }
  if (mask.device() != x.device()) {
    throw std::invalid_argument("masked_fill: mask and input must be on the same device");
  }
  bool broadcasts = mask.dim() <= x.dim();
  for (int64_t d = 1; broadcasts && d <= mask.dim(); ++d) {
    int64_t size = mask.size(-d);
    broadcasts = size == 1 || size == x.size(-d);
  }
  if (!broadcasts) {
    throw std::invalid_argument(
        fmt::format("masked_fill: mask of shape {} does not broadcast to "
                    "the input's shape {}",
                    shape_str(mask.sizes()), shape_str(x.sizes())));
  }
  return where(mask, scalar_like(value, x), x);
}

}  // namespace zt::ops
