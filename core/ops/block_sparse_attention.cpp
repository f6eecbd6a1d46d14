// The checks and layout of block-sparse attention (core/ops/block_sparse_attention.h): inputs
// flattened to [batch * heads, T, width] contiguous, the index built once per layout (a model
// keeps it per sequence length), and 16-bit outputs accumulated in f32 and rounded once here.
#include "core/ops/block_sparse_attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "core/ops/nn_op_checks.h"
#include "core/ops/view.h"

namespace zt::ops {

using namespace nn_op_checks;

namespace {

constexpr const char* kOp = "block_sparse_attention";

bool planes_equal(const SparseLayout& layout) {
  const size_t plane = size_t(layout.blocks * layout.blocks);
  for (int64_t head = 1; head < layout.heads; ++head) {
    if (!std::equal(layout.active.begin(), layout.active.begin() + plane,
                    layout.active.begin() + head * plane))
      return false;
  }
  return true;
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v,
                  const BlockSparseIndex& index) {
  require_floating(kOp, "query", q);
  require_like(kOp, "key", k, "query", q);
  require_like(kOp, "value", v, "query", q);
  const bool shapes_fit = q.dim() >= 3 && k.sizes() == q.sizes() && v.dim() == q.dim() &&
                          std::equal(v.sizes().begin(), v.sizes().end() - 1, q.sizes().begin());
  if (!shapes_fit) {
    throw std::invalid_argument(fmt::format(
        "{}: expected query and key [..., H, T, E] of one shape and value [..., H, T, Ev], got "
        "{}, {} and {}",
        kOp, shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes())));
  }
  if (!index.columns.defined() || q.size(-2) != index.blocks * index.block) {
    throw std::invalid_argument(fmt::format(
        "{}: query {} has sequence length {}, the layout covers {} ({} blocks of {})", kOp,
        shape_str(q.sizes()), q.size(-2), index.blocks * index.block, index.blocks, index.block));
  }
  if (index.layout_heads != 1 && index.layout_heads != q.size(-3)) {
    throw std::invalid_argument(fmt::format("{}: the layout has {} heads, query {} has {}", kOp,
                                            index.layout_heads, shape_str(q.sizes()), q.size(-3)));
  }
  if (index.columns.device() != q.device()) {
    throw std::invalid_argument(fmt::format("{}: the layout index is on {} but query is on {}", kOp,
                                            index.columns.device().str(), q.device().str()));
  }
}

Tensor flattened(const Tensor& t, int64_t batch) {
  return reshape(contiguous(t), {batch, t.size(-2), t.size(-1)});
}

}  // namespace

BlockSparseIndex block_sparse_index(const SparseLayout& layout, bool causal, Device device) {
  BlockSparseIndex index;
  index.layout_heads = planes_equal(layout) ? 1 : layout.heads;
  index.blocks = layout.blocks;
  index.block = layout.block;
  index.causal = causal;
  std::vector<int64_t> offsets{0}, columns;
  for (int64_t head = 0; head < index.layout_heads; ++head) {
    for (int64_t row = 0; row < layout.blocks; ++row) {
      const int64_t last = causal ? row : layout.blocks - 1;
      for (int64_t col = 0; col <= last; ++col)
        if (layout.at(head, row, col)) columns.push_back(col);
      offsets.push_back(int64_t(columns.size()));
    }
  }
  index.row_offsets = from_int64(offsets, {int64_t(offsets.size())}).to(device);
  index.columns = from_int64(columns, {int64_t(columns.size())}).to(device);
  return index;
}

BlockSparseForward block_sparse_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                  const BlockSparseIndex& index,
                                                  std::optional<double> scale) {
  check_inputs(q, k, v, index);
  BlockSparseForward saved;
  saved.index = index;
  BlockSparseArgs& args = saved.args;
  args.T = q.size(-2);
  args.E = q.size(-1);
  args.Ev = v.size(-1);
  args.heads = q.size(-3);
  args.batch = shape_numel(Shape(q.sizes().begin(), q.sizes().end() - 2));
  args.layout_heads = index.layout_heads;
  args.block = index.block;
  args.blocks = index.blocks;
  args.causal = index.causal;
  args.scale = scale.value_or(args.E > 0 ? 1.0 / std::sqrt(double(args.E)) : 1.0);
  if (!std::isfinite(args.scale)) {
    throw std::invalid_argument(fmt::format("{}: scale must be finite, got {}", kOp, args.scale));
  }
  saved.q = flattened(q, args.batch);
  saved.k = flattened(k, args.batch);
  saved.v = flattened(v, args.batch);
  saved.out_shape = v.sizes();
  saved.out = empty(saved.out_shape, output_options(q));
  saved.lse = empty({args.batch, args.T}, output_options(q, accumulate_dtype(q.dtype())));
  if (saved.out.numel() > 0) {
    backend_of(q).block_sparse_attention_forward(
        args, saved.q, saved.k, saved.v, index.row_offsets, index.columns,
        view(saved.out, {args.batch, args.T, args.Ev}), saved.lse);
  }
  return saved;
}

BlockSparseGrads block_sparse_attention_backward(const BlockSparseForward& saved,
                                                 const Tensor& grad_out) {
  const char* op = "block_sparse_attention_backward";
  require_like(op, "grad_out", grad_out, "out", saved.out);
  require_shape(op, "grad_out", grad_out, saved.out.sizes());
  const BlockSparseArgs& args = saved.args;
  const TensorOptions accumulate = output_options(saved.q, accumulate_dtype(saved.q.dtype()));
  // The kernels overwrite every gradient row (zeroing here too was a pass over all T rows that
  // the window modes, with 4-5 blocks a row, feel); a call they skip has nothing to write.
  const bool computed = saved.out.numel() > 0 && args.E > 0;
  const auto gradient = [&](const Tensor& like) {
    return computed ? empty(like.sizes(), accumulate) : zeros(like.sizes(), accumulate);
  };
  Tensor grad_q = gradient(saved.q), grad_k = gradient(saved.k), grad_v = gradient(saved.v);
  if (computed) {
    backend_of(saved.q).block_sparse_attention_backward(
        args, saved.q, saved.k, saved.v, saved.index.row_offsets, saved.index.columns,
        view(saved.out, {args.batch, args.T, args.Ev}), saved.lse,
        reshape(contiguous(grad_out), {args.batch, args.T, args.Ev}), grad_q, grad_k, grad_v);
  }
  Shape qk_shape = saved.out_shape;
  qk_shape.back() = args.E;
  return {reshape(to_dtype(grad_q, saved.q.dtype()), qk_shape),
          reshape(to_dtype(grad_k, saved.q.dtype()), qk_shape),
          reshape(to_dtype(grad_v, saved.q.dtype()), saved.out_shape)};
}

}  // namespace zt::ops
