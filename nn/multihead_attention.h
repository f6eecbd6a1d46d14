// MultiheadAttention with PyTorch's arguments, parameter names and results: in_proj_weight
// [3E, E] (or q_proj_weight, k_proj_weight, v_proj_weight when kdim or vdim differ from E),
// in_proj_bias [3E], out_proj.{weight, bias}; inputs [L, N, E] (or [N, L, E] with batch_first,
// or unbatched [L, E]); PyTorch's boolean masks mean "masked out" where true (u8 nonzero),
// float masks are added to the scores. The output comes from scaled_dot_product_attention when
// the weights are not needed; with need_weights the scores are formed explicitly to return
// them (averaged over heads by default).
#pragma once

#include <memory>
#include <utility>

#include "nn/linear.h"
#include "nn/module.h"

namespace zt::nn {

class MultiheadAttention final : public Module {
 public:
  // kdim, vdim: 0 means embed_dim. add_bias_kv and add_zero_attn are not supported.
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true,
                     int64_t kdim = 0, int64_t vdim = 0, bool batch_first = false);
  std::string type_name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override;

  // PyTorch's forward: (attn_output, attn_output_weights), the weights undefined unless
  // need_weights. key_padding_mask [N, S] (or [S] unbatched); attn_mask [L, S] or
  // [N * num_heads, L, S]. is_causal applies the causal rule: as PyTorch's hint it trusts a
  // given attn_mask to be causal, and without one (which PyTorch refuses) it builds the mask.
  // Runs through the module's hooks like module(query, key, value).
  std::pair<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& key_padding_mask = Tensor(),
                                    bool need_weights = true, const Tensor& attn_mask = Tensor(),
                                    bool average_attn_weights = true, bool is_causal = false);

  Tensor in_proj_weight;                               // [3E, E] when kdim == vdim == E
  Tensor q_proj_weight, k_proj_weight, v_proj_weight;  // otherwise
  Tensor in_proj_bias;                                 // [3E]; undefined without bias
  std::shared_ptr<Linear> out_proj;

 protected:
  using Module::forward;
  // (query, key, value[, key_padding_mask[, attn_mask]]) -> (output, weights or None), with
  // the flags of the current forward() call (PyTorch's defaults when called as module(...)).
  TensorList forward_many(const TensorList& inputs) override;

 private:
  struct CallFlags {
    bool need_weights = true, average_attn_weights = true, is_causal = false;
  };
  std::pair<Tensor, Tensor> project(const Tensor& query, const Tensor& key, const Tensor& value,
                                    Tensor& q) const;
  int64_t embed_dim_, num_heads_, kdim_, vdim_;
  double dropout_;
  bool batch_first_;
  CallFlags flags_;
};

}  // namespace zt::nn
