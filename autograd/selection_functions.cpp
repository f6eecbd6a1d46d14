// The differentiable selection ops: topk, whose values' gradient goes back to the positions
// they were taken from (zero elsewhere). Only the indices and the input's shape are saved.
#include "autograd/functions.h"
#include "autograd/node.h"

namespace zt {

using autograd::record;
using Grads = std::vector<Tensor>;

ops::TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool sorted) {
  ops::TopK result = ops::topk(x, k, dim, largest, sorted);
  result.values = record("TopkBackward", {x}, result.values,
                         [indices = result.indices, shape = x.sizes(), dim](const Tensor& g) {
                           return Grads{ops::topk_backward(g, indices, shape, dim)};
                         });
  return result;
}

}  // namespace zt
