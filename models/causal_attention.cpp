// Causal self-attention with a KV cache and grouped-query heads, on
// scaled_dot_product_attention: groups become a broadcast batch dim, not copied keys.
#include "models/causal_attention.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/block_sparse_attention.h"
#include "autograd/functions.h"
#include "core/factory.h"
#include "core/ops/masking.h"

namespace zt::models {

namespace {

void check_shapes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& past_keys,
                  const Tensor& past_values) {
  const bool heads_fit = q.dim() == 4 && k.dim() == 4 && k.sizes() == v.sizes() &&
                         k.size(0) == q.size(0) && k.size(2) == q.size(2) &&
                         k.size(3) == q.size(3) && k.size(1) > 0 && q.size(1) % k.size(1) == 0;
  const bool past_fits =
      past_keys.defined() == past_values.defined() &&
      (!past_keys.defined() || (past_keys.dim() == 4 && past_keys.sizes() == past_values.sizes() &&
                                past_keys.size(0) == k.size(0) && past_keys.size(1) == k.size(1) &&
                                past_keys.size(3) == k.size(3)));
  if (!heads_fit || !past_fits) {
    throw std::invalid_argument(fmt::format(
        "causal_self_attention: expected q [B, H, T, D], k and v [B, KV, T, D] with KV dividing "
        "H, and cached keys and values [B, KV, P, D] or none; got q {}, k {}, v {}, cached {} "
        "and {}",
        shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes()),
        past_keys.defined() ? shape_str(past_keys.sizes()) : "none",
        past_values.defined() ? shape_str(past_values.sizes()) : "none"));
  }
}

// Query head h reads key head h / groups: the keys repeated per query head, for the sparse
// kernel (which takes one key head per query head).
Tensor repeated_heads(const Tensor& t, int64_t groups) {
  if (groups == 1) return t;
  const int64_t B = t.size(0), KV = t.size(1), S = t.size(2), D = t.size(3);
  return t.unsqueeze(2).expand({B, KV, groups, S, D}).reshape({B, KV * groups, S, D});
}

Tensor sparse_attention_output(const Tensor& q, const Tensor& keys, const Tensor& values,
                               int64_t past, SparseAttentionPlan& sparse) {
  const int64_t T = q.size(2), groups = q.size(1) / keys.size(1);
  const Tensor k = repeated_heads(keys, groups), v = repeated_heads(values, groups);
  if (past == 0 && T % sparse.block() == 0) {
    return block_sparse_attention(q, k, v, sparse.index_for(T, q.device()));
  }
  return scaled_dot_product_attention(q, k, v, sparse.mask_for(past, T, q.device()), 0.0, false);
}

}  // namespace

SparseAttentionPlan::SparseAttentionPlan(const SparsityConfig& config, int64_t heads,
                                         int64_t max_positions)
    : layout_(make_sparse_layout(config, heads, max_positions)) {}

SparseAttentionPlan::SparseAttentionPlan(const SparsityConfig& config, int64_t heads,
                                         int64_t max_positions, int64_t first_head, int64_t count)
    : layout_(make_sparse_layout(config, heads, max_positions)) {
  if (first_head < 0 || count < 1 || first_head + count > heads) {
    throw std::invalid_argument(
        fmt::format("sparse attention: heads {} .. {} asked of a layout of {} heads", first_head,
                    first_head + count - 1, heads));
  }
  const auto plane = std::ptrdiff_t(layout_.blocks * layout_.blocks);
  const auto first = layout_.active.begin() + first_head * plane;
  layout_.active = std::vector<uint8_t>(first, first + count * plane);
  layout_.heads = count;
}

const ops::BlockSparseIndex& SparseAttentionPlan::index_for(int64_t T, Device device) {
  auto key = std::make_pair(T, device.str());
  auto found = indices_.find(key);
  if (found != indices_.end()) return found->second;
  // The top-left corner of the layout, T / block blocks a side.
  SparseLayout corner;
  corner.heads = layout_.heads;
  corner.block = layout_.block;
  corner.blocks = T / layout_.block;
  for (int64_t h = 0; h < corner.heads; ++h)
    for (int64_t r = 0; r < corner.blocks; ++r)
      for (int64_t c = 0; c < corner.blocks; ++c) corner.active.push_back(layout_.at(h, r, c));
  return indices_.emplace(key, ops::block_sparse_index(corner, true, device)).first->second;
}

Tensor SparseAttentionPlan::mask_for(int64_t past, int64_t T, Device device) const {
  const int64_t S = past + T, block = layout_.block;
  if (S > layout_.blocks * block) {
    throw std::invalid_argument(fmt::format("sparse attention: {} positions, the layout covers {}",
                                            S, layout_.blocks * block));
  }
  std::vector<double> keep;
  keep.reserve(size_t(layout_.heads * T * S));
  for (int64_t h = 0; h < layout_.heads; ++h)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < S; ++s)
        keep.push_back(s <= past + t && layout_.at(h, (past + t) / block, s / block) ? 1.0 : 0.0);
  return from_values(keep, {layout_.heads, T, S}).to(DType::u8).to(device);
}

CausalAttentionResult causal_self_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& past_keys, const Tensor& past_values,
                                            double dropout_p, SparseAttentionPlan* sparse,
                                            Generator* generator, bool eager) {
  check_shapes(q, k, v, past_keys, past_values);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t KV = k.size(1), groups = H / KV;
  const int64_t past = past_keys.defined() ? past_keys.size(2) : 0;
  Tensor keys = past > 0 ? cat({past_keys, k}, 2) : k;
  Tensor values = past > 0 ? cat({past_values, v}, 2) : v;

  if (sparse != nullptr) {
    return {sparse_attention_output(q, keys, values, past, *sparse), keys, values};
  }
  // Without a cache PyTorch's top-left causal rule is ours; a single new token sees every key;
  // several new tokens after a cache need the bottom-right rule s <= P + t, as a mask.
  Tensor mask;
  bool is_causal = false;
  if (past == 0) {
    is_causal = T > 1;
  } else if (T > 1) {
    mask = ops::tril(ones({T, past + T}, options_of(q).with_dtype(DType::u8)), past);
  }
  auto attend = eager ? scaled_dot_product_attention_math : scaled_dot_product_attention;
  Tensor output;
  if (groups == 1) {
    output = attend(q, keys, values, mask, dropout_p, is_causal, std::nullopt, generator);
  } else {
    // Query heads h = kv * groups + g: [B, KV, groups, T, D] against keys [B, KV, 1, S, D].
    Tensor grouped_q = q.reshape({B, KV, groups, T, D});
    output = attend(grouped_q, keys.unsqueeze(2), values.unsqueeze(2), mask, dropout_p, is_causal,
                    std::nullopt, generator)
                 .reshape({B, H, T, D});
  }
  return {output, keys, values};
}

}  // namespace zt::models
