// block_sparse_attention as one node over the fused block-sparse kernels.
#include "autograd/block_sparse_attention.h"

#include "autograd/node.h"

namespace zt {

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                              const ops::BlockSparseIndex& index, std::optional<double> scale) {
  ops::BlockSparseForward forward =
      ops::block_sparse_attention_forward(q.detach(), k.detach(), v.detach(), index, scale);
  Tensor out = forward.out;
  forward.out = out.detach();
  return autograd::record("BlockSparseAttentionBackward", {q, k, v}, out,
                          [forward = std::move(forward)](const Tensor& g) {
                            ops::BlockSparseGrads grads =
                                ops::block_sparse_attention_backward(forward, g);
                            return std::vector<Tensor>{grads.q, grads.k, grads.v};
                          });
}

}  // namespace zt
