// The four tensor-parallel region operators: the collectives run on fresh contiguous copies
// (a collective works in place), and each records its conjugate as the backward.
#include "tensor_parallel/tp_region.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/factory.h"

namespace zt::tensor_parallel {

namespace {

Tensor contiguous_copy(const Tensor& x) {
  Tensor copy = x.clone();
  return copy.is_contiguous() ? copy : copy.contiguous();
}

int64_t last_dim_slice(const Tensor& x, comm::Communicator& group) {
  const int64_t width = x.size(-1);
  if (width % group.size() != 0) {
    throw std::invalid_argument(
        fmt::format("scatter_to_tp_region: the last dim {} of {} is not divisible by the tensor "
                    "group's {} ranks",
                    width, shape_str(x.sizes()), group.size()));
  }
  return width / group.size();
}

Tensor own_slice(const Tensor& x, comm::Communicator& group) {
  const int64_t width = last_dim_slice(x, group);
  return x.narrow(x.dim() - 1, group.rank() * width, width).contiguous();
}

}  // namespace

Tensor all_reduced(const Tensor& x, comm::Communicator& group) {
  Tensor sum = contiguous_copy(x);
  group.all_reduce(sum);
  return sum;
}

Tensor all_gathered_last_dim(const Tensor& x, comm::Communicator& group) {
  const int ranks = group.size();
  Tensor input = x.is_contiguous() ? x : x.contiguous();
  Shape gathered_shape = x.sizes();
  gathered_shape.insert(gathered_shape.begin(), int64_t(ranks));
  Tensor gathered = empty(gathered_shape, options_of(x));
  group.all_gather(input, gathered);
  // [ranks, ..., d] -> [..., ranks, d] -> [..., ranks * d]: rank r's columns at r * d.
  Shape order;
  for (int64_t dim = 1; dim < int64_t(gathered_shape.size()) - 1; ++dim) order.push_back(dim);
  order.push_back(0);
  order.push_back(int64_t(gathered_shape.size()) - 1);
  Shape out_shape = x.sizes();
  out_shape.back() *= ranks;
  return gathered.permute(order).contiguous().reshape(out_shape);
}

Tensor copy_to_tp_region(const Tensor& x, comm::Communicator& group) {
  if (group.size() == 1) return x;
  comm::Communicator* on = &group;
  return autograd::record(
      "CopyToTensorParallelRegion", {x}, x.detach(),
      [on](const Tensor& grad) -> std::vector<Tensor> { return {all_reduced(grad, *on)}; });
}

Tensor reduce_from_tp_region(const Tensor& x, comm::Communicator& group) {
  if (group.size() == 1) return x;
  Tensor sum;
  {
    autograd::NoGradGuard no_grad;
    sum = all_reduced(x, group);
  }
  return autograd::record("ReduceFromTensorParallelRegion", {x}, sum,
                          [](const Tensor& grad) -> std::vector<Tensor> { return {grad}; });
}

Tensor gather_from_tp_region(const Tensor& x, comm::Communicator& group) {
  if (group.size() == 1) return x;
  Tensor gathered;
  {
    autograd::NoGradGuard no_grad;
    gathered = all_gathered_last_dim(x, group);
  }
  comm::Communicator* on = &group;
  return autograd::record(
      "GatherFromTensorParallelRegion", {x}, gathered,
      [on](const Tensor& grad) -> std::vector<Tensor> { return {own_slice(grad, *on)}; });
}

Tensor scatter_to_tp_region(const Tensor& x, comm::Communicator& group) {
  if (group.size() == 1) return x;
  Tensor slice;
  {
    autograd::NoGradGuard no_grad;
    slice = own_slice(x.detach(), group);
  }
  comm::Communicator* on = &group;
  return autograd::record("ScatterToTensorParallelRegion", {x}, slice,
                          [on](const Tensor& grad) -> std::vector<Tensor> {
                            return {all_gathered_last_dim(grad, *on)};
                          });
}

}  // namespace zt::tensor_parallel
