// The multiply-accumulates (MACs) one call of a module does itself (its children not included),
// from its type and the shapes of the call, as DeepSpeed's flops profiler counts them: matrix
// products and convolutions. FLOPs = 2 * MACs, plus a convolution's bias adds (one per output
// element), plus the elementwise work of the transformer's modules, counted per element as
// DeepSpeed's patched functionals count it: LayerNorm 5 (4 without its affine weight), the MLP's
// GELU 1, the attention's softmax 1 per score, the block's two residual adds 1 each. Pooling,
// dropout and the CNN's ReLUs are not counted (DeepSpeed counts them through functionals a
// module hook cannot see; a small share of a step).
// Types: Linear, Conv1D (GPT-2's), LMHead: output elements x input features. Conv2d: output
// elements x (input channels / groups) x kernel area. GPT2Attention and LlamaAttention: the
// score and weighted-sum products, 2 x B x T x T_keys x C (the whole T x T square, masked or
// not, as the kernels compute it) and B x H x T x T_keys softmax FLOPs. LayerNorm, GPT2MLP
// (GELU of its c_fc output), GPT2Block (the residual adds): FLOPs only. Other types: 0.
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace zt::observe {

struct ModuleCost {
  int64_t macs = 0;
  int64_t flops = 0;
};

ModuleCost module_own_cost(const nn::Module& module, const nn::TensorList& inputs,
                           const nn::TensorList& outputs);

}  // namespace zt::observe
