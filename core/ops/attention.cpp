// The checks and layout of the fused attention op (core/ops/attention.h). Batch dims broadcast
// by expanding q, k and v to one batch shape (a copy only where one was broadcast); the mask is
// never copied: its broadcast view's strides go to the kernel. Outputs and gradients that the
// kernels accumulate in f32 for 16-bit inputs are allocated in f32 and rounded once here.
#include "core/ops/attention.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/nn_op_checks.h"
#include "core/ops/view.h"

namespace zt::ops {

using namespace nn_op_checks;

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

Shape batch_dims_of(const Tensor& t) {
  return Shape(t.sizes().begin(), t.sizes().end() - 2);
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v) {
  require_floating(kOp, "query", q);
  require_like(kOp, "key", k, "query", q);
  require_like(kOp, "value", v, "query", q);
  if (q.dim() < 2 || k.dim() < 2 || v.dim() < 2) {
    throw std::invalid_argument(fmt::format(
        "{}: query, key and value need at least 2 dims ([..., L, E], [..., S, E], [..., S, Ev]), "
        "got {}, {} and {}",
        kOp, shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes())));
  }
  if (k.size(-1) != q.size(-1)) {
    throw std::invalid_argument(fmt::format("{}: key {} should end in query's embedding size {}",
                                            kOp, shape_str(k.sizes()), q.size(-1)));
  }
  if (v.size(-2) != k.size(-2)) {
    throw std::invalid_argument(
        fmt::format("{}: value {} should have key's sequence length {} in dim -2", kOp,
                    shape_str(v.sizes()), k.size(-2)));
  }
}

Shape broadcast_batch(const Tensor& q, const Tensor& k, const Tensor& v) {
  try {
    return broadcast_shapes(broadcast_shapes(batch_dims_of(q), batch_dims_of(k)), batch_dims_of(v));
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(
        fmt::format("{}: the batch dims of query {}, key {} and value {} do not broadcast", kOp,
                    shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes())));
  }
}

// [batch..., rows, cols] -> contiguous [batch, rows, cols].
Tensor flattened(const Tensor& t, const Shape& batch_shape, int64_t batch) {
  Shape full = batch_shape;
  full.push_back(t.size(-2));
  full.push_back(t.size(-1));
  return reshape(contiguous(expand(t, full)), {batch, t.size(-2), t.size(-1)});
}

// The mask's broadcast view [batch..., L, S] and its strides in args.
Tensor mask_view(const Tensor& mask, const Tensor& q, const Shape& batch_shape,
                 AttentionArgs& args) {
  if (mask.dtype() != DType::u8 && mask.dtype() != q.dtype()) {
    throw std::invalid_argument(fmt::format("{}: attn_mask has dtype {}, expected u8 or {}", kOp,
                                            dtype_name(mask.dtype()), dtype_name(q.dtype())));
  }
  if (mask.device() != q.device()) {
    throw std::invalid_argument(fmt::format("{}: attn_mask is on {} but query is on {}", kOp,
                                            mask.device().str(), q.device().str()));
  }
  Shape full = batch_shape;
  full.push_back(args.L);
  full.push_back(args.S);
  Tensor view;
  try {
    if (mask.dim() > int64_t(full.size())) throw std::invalid_argument("too many dims");
    view = expand(mask, full);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(fmt::format("{}: attn_mask {} does not broadcast to {}", kOp,
                                            shape_str(mask.sizes()), shape_str(full)));
  }
  args.mask = mask.dtype() == DType::u8 ? AttentionMask::keep_u8 : AttentionMask::additive;
  for (int dim = 0; dim < args.batch_dims; ++dim) {
    args.mask_batch_strides[dim] = view.strides()[size_t(dim)];
  }
  args.mask_stride_l = view.strides()[full.size() - 2];
  args.mask_stride_s = view.strides()[full.size() - 1];
  return view;
}

AttentionArgs base_args(const Tensor& q, const Tensor& k, const Tensor& v, const Shape& batch_shape,
                        bool is_causal, std::optional<double> scale) {
  if (int64_t(batch_shape.size()) > AttentionArgs::kMaxBatchDims) {
    throw std::invalid_argument(fmt::format("{}: at most {} batch dims, got {}", kOp,
                                            int(AttentionArgs::kMaxBatchDims),
                                            shape_str(batch_shape)));
  }
  AttentionArgs args;
  args.batch = shape_numel(batch_shape);
  args.L = q.size(-2);
  args.S = k.size(-2);
  args.E = q.size(-1);
  args.Ev = v.size(-1);
  args.causal = is_causal;
  args.scale = scale.value_or(args.E > 0 ? 1.0 / std::sqrt(double(args.E)) : 1.0);
  if (!std::isfinite(args.scale)) {
    throw std::invalid_argument(fmt::format("{}: scale must be finite, got {}", kOp, args.scale));
  }
  args.batch_dims = int(batch_shape.size());
  for (size_t dim = 0; dim < batch_shape.size(); ++dim) args.batch_sizes[dim] = batch_shape[dim];
  return args;
}

}  // namespace

AttentionForward attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& attn_mask, double dropout_p, bool is_causal,
                                   std::optional<double> scale, Generator* generator) {
  check_inputs(q, k, v);
  if (is_causal && attn_mask.defined()) {
    throw std::invalid_argument(fmt::format("{}: give attn_mask or is_causal, not both", kOp));
  }
  if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {
    throw std::invalid_argument(
        fmt::format("{}: dropout_p must be in [0, 1), got {}", kOp, dropout_p));
  }
  AttentionForward saved;
  saved.batch_shape = broadcast_batch(q, k, v);
  saved.args = base_args(q, k, v, saved.batch_shape, is_causal, scale);
  AttentionArgs& args = saved.args;
  if (attn_mask.defined()) saved.mask = mask_view(attn_mask, q, saved.batch_shape, args);
  if (dropout_p > 0.0) {
    Generator& source = generator != nullptr ? *generator : default_generator();
    args.dropout_p = dropout_p;
    args.seed = source.seed();
    args.offset = source.reserve(uint64_t(args.batch * args.L * args.S));
  }
  saved.q = flattened(q, saved.batch_shape, args.batch);
  saved.k = flattened(k, saved.batch_shape, args.batch);
  saved.v = flattened(v, saved.batch_shape, args.batch);
  Shape out_shape = saved.batch_shape;
  out_shape.push_back(args.L);
  out_shape.push_back(args.Ev);
  saved.out = empty(out_shape, output_options(q));
  saved.lse = empty({args.batch, args.L}, output_options(q, accumulate_dtype(q.dtype())));
  if (saved.out.numel() > 0) {
    backend_of(q).attention_forward(args, saved.q, saved.k, saved.v, saved.mask,
                                    view(saved.out, {args.batch, args.L, args.Ev}), saved.lse);
  }
  return saved;
}

AttentionGrads attention_backward(const AttentionForward& saved, const Tensor& grad_out) {
  const char* op = "scaled_dot_product_attention_backward";
  require_like(op, "grad_out", grad_out, "out", saved.out);
  require_shape(op, "grad_out", grad_out, saved.out.sizes());
  const AttentionArgs& args = saved.args;
  const TensorOptions accumulate = output_options(saved.q, accumulate_dtype(saved.q.dtype()));
  Tensor grad_q = empty(saved.q.sizes(), accumulate);
  Tensor grad_k = empty(saved.k.sizes(), accumulate);
  Tensor grad_v = empty(saved.v.sizes(), accumulate);
  if (args.batch > 0 && (args.L > 0 || args.S > 0)) {
    backend_of(saved.q).attention_backward(
        args, saved.q, saved.k, saved.v, saved.mask, view(saved.out, {args.batch, args.L, args.Ev}),
        saved.lse, reshape(contiguous(grad_out), {args.batch, args.L, args.Ev}), grad_q, grad_k,
        grad_v);
  }
  auto shaped = [&](const Tensor& grad) {
    Shape full = saved.batch_shape;
    full.push_back(grad.size(-2));
    full.push_back(grad.size(-1));
    return reshape(to_dtype(grad, saved.q.dtype()), full);
  };
  return {shaped(grad_q), shaped(grad_k), shaped(grad_v)};
}

}  // namespace zt::ops
