// Causal self-attention with a KV cache and grouped-query heads, on
// scaled_dot_product_attention: groups become a broadcast batch dim, not copied keys.
#include "models/causal_attention.h"

#include <fmt/format.h>

#include <stdexcept>

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

}  // namespace

CausalAttentionResult causal_self_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& past_keys, const Tensor& past_values,
                                            double dropout_p) {
  check_shapes(q, k, v, past_keys, past_values);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t KV = k.size(1), groups = H / KV;
  const int64_t past = past_keys.defined() ? past_keys.size(2) : 0;
  Tensor keys = past > 0 ? cat({past_keys, k}, 2) : k;
  Tensor values = past > 0 ? cat({past_values, v}, 2) : v;

  // Without a cache PyTorch's top-left causal rule is ours; a single new token sees every key;
  // several new tokens after a cache need the bottom-right rule s <= P + t, as a mask.
  Tensor mask;
  bool is_causal = false;
  if (past == 0) {
    is_causal = T > 1;
  } else if (T > 1) {
    mask = ops::tril(ones({T, past + T}, options_of(q).with_dtype(DType::u8)), past);
  }
  Tensor output;
  if (groups == 1) {
    output = scaled_dot_product_attention(q, keys, values, mask, dropout_p, is_causal);
  } else {
    // Query heads h = kv * groups + g: [B, KV, groups, T, D] against keys [B, KV, 1, S, D].
    Tensor grouped_q = q.reshape({B, KV, groups, T, D});
    output = scaled_dot_product_attention(grouped_q, keys.unsqueeze(2), values.unsqueeze(2), mask,
                                          dropout_p, is_causal)
                 .reshape({B, H, T, D});
  }
  return {output, keys, values};
}

}  // namespace zt::models
