// scaled_dot_product_attention as one fused flash-style kernel (core/ops/attention.h): the node
// keeps the inputs, the output and the per-row log-sum-exp, never the [L, S] weights, and its
// backward recomputes them tile by tile. Dropout's mask is regenerated from the counters the
// forward reserved. Broadcast batch dims get their gradients summed back; attn_mask is not
// differentiated (PyTorch's fused kernels do not differentiate it either).
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/ops/attention.h"
#include "core/ops/reduce.h"

namespace zt {

using Grads = std::vector<Tensor>;

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* generator) {
  ops::AttentionForward forward = ops::attention_forward(
      q.detach(), k.detach(), v.detach(), attn_mask.defined() ? attn_mask.detach() : Tensor(),
      dropout_p, is_causal, scale, generator);
  Tensor out = forward.out;
  forward.out = out.detach();
  return autograd::record("ScaledDotProductAttentionBackward", {q, k, v}, out,
                          [forward = std::move(forward), q_shape = q.sizes(), k_shape = k.sizes(),
                           v_shape = v.sizes()](const Tensor& g) {
                            ops::AttentionGrads grads = ops::attention_backward(forward, g);
                            return Grads{ops::sum_to_shape(grads.q, q_shape),
                                         ops::sum_to_shape(grads.k, k_shape),
                                         ops::sum_to_shape(grads.v, v_shape)};
                          });
}

}  // namespace zt
