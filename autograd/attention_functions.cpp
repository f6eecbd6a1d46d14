// scaled_dot_product_attention. For now the composed mathematics of transformer_reference.cpp;
// the fused flash-style kernel replaces it.
#include "autograd/functions.h"

namespace zt {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* generator) {
  return scaled_dot_product_attention_math(q, k, v, attn_mask, dropout_p, is_causal, scale,
                                           generator);
}

}  // namespace zt
