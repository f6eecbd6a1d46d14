// The differentiable ops of ZeroTrain, in namespace zt, mirroring core/ops: each runs the
// zt::ops forward and, when an input requires grad and grad mode is on, records a node whose
// backward saves only what it needs. Broadcast inputs get their gradient summed back to their
// own shape. Non-differentiable ops (comparisons, argmax) are re-exported unchanged.
// Views and conversions (reshape, transpose, slice, to, ...) are Tensor methods.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/elementwise.h"
#include "core/ops/multinomial.h"
#include "core/ops/reduce.h"
#include "core/ops/topk.h"
#include "core/tensor.h"

namespace zt {

// ---- elementwise (elementwise_functions.cpp) --------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties split the gradient evenly
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor pow(const Tensor& base, double exponent);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
// The activations of core/unary_ops.h (tanh, sigmoid, relu, gelu, gelu_tanh, ...), one per
// line of its list with a fused backward.
#define ZT_DECLARE_ACTIVATION(name, Struct) Tensor name(const Tensor& x);
ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_DECLARE_ACTIVATION)
#undef ZT_DECLARE_ACTIVATION
Tensor gelu(const Tensor& x, bool tanh_approximation);  // gelu or gelu_tanh
// condition (u8) selects a where nonzero, else b; all three broadcast.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& x);

// Not differentiable: results are integer or boolean.
using ops::eq;
using ops::ge;
using ops::gt;
using ops::le;
using ops::lt;
using ops::ne;
using ops::sign;

// ---- reductions (reduce_functions.cpp); empty dims means all ----------------------------
Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
// Ties share the gradient evenly, as in PyTorch.
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
using ops::argmax;
using ops::argmin;

// ---- matrix products (linalg_functions.cpp) ---------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // NumPy rules, batch dims broadcast
Tensor mm(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);
// x [..., in] @ weight[out, in]^T + bias[out]; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- neural-network ops (nn_functions.cpp, loss_functions.cpp) --------------------------
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

enum class Reduction { none, mean, sum };
// PyTorch's layouts: logits [C] with a 0-d target, [N, C] with [N], or [N, C, d1, ..., dk]
// with [N, d1, ..., dk]; target i64 class indices (reduction none returns its shape), or
// class probabilities (a float target of the logits' shape; ignore_index does not apply).
// Fused log-softmax + NLL. label_smoothing mixes in the uniform distribution as PyTorch does.
// `mean` divides by the number of targets that are not ignore_index (NaN when all are
// ignored, as in PyTorch); with probabilities, by the number of rows.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::mean);
// log_probs and target i64 in cross_entropy's layouts: -log_probs[i, target[i]], 0 at
// ignored targets.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index = -100,
                Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

// input [N, C_in, H, W], weight [C_out, C_in/groups, KH, KW], bias [C_out] or undefined.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dParams& params = {});
Tensor max_pool2d(const Tensor& input, const Pool2dParams& params);
Tensor avg_pool2d(const Tensor& input, const Pool2dParams& params);
// Normalises over the last normalized_shape.size() dims; weight/bias may be undefined.
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
// weight [V, D], indices i64 of any shape -> [..., D]; rows equal to padding_idx (>= 0) get
// no gradient.
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);
// Zeroes each element with probability p and scales the rest by 1/(1-p) when training;
// returns x itself when not training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator* generator = nullptr);

// ---- transformer ops (attention_functions.cpp, transformer_functions.cpp) ---------------
// PyTorch's scaled_dot_product_attention: q [..., L, E], k [..., S, E], v [..., S, Ev] ->
// [..., L, Ev], batch dims broadcast. attn_mask (undefined for none) broadcasts to
// [..., L, S]: u8 keeps positions that are nonzero, a float mask is added to the scores.
// is_causal keeps s <= l (aligned top-left, as PyTorch) and excludes attn_mask. scale defaults
// to 1/sqrt(E). Dropout on the attention weights draws from `generator` (default when null).
// One fused flash-style kernel: no [L, S] matrix is kept for backward.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                    bool is_causal = false,
                                    std::optional<double> scale = std::nullopt,
                                    Generator* generator = nullptr);
// x / sqrt(mean(x^2 over the last normalized_shape.size() dims) + eps) * weight (weight may
// be undefined). eps defaults to the epsilon of x's dtype, as in PyTorch.
Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                std::optional<double> eps = std::nullopt);
// Rotary position embedding in the rotate-half pairing (element i with i + D/2, as Hugging
// Face's Llama): x [..., T, D] with D even, cos and sin [T, D/2] (row t is position t):
//   out[..., :D/2] = x1 * cos - x2 * sin,   out[..., D/2:] = x2 * cos + x1 * sin.
Tensor rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin);
// The cos and sin tables of positions [start, start + length): angle(t, i) = t * theta^(-2i/D).
// Not differentiable; computed in f64 and rounded to `options.dtype`.
std::pair<Tensor, Tensor> rotary_tables(int64_t start, int64_t length, int64_t head_dim,
                                        double theta = 10000.0, const TensorOptions& options = {});

// The same mathematics from primitive ops (matmul, softmax, masking, ...), which keep every
// intermediate: the references the fused kernels are tested against, and a fallback to read.
Tensor scaled_dot_product_attention_math(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                         bool is_causal = false,
                                         std::optional<double> scale = std::nullopt,
                                         Generator* generator = nullptr);
Tensor rms_norm_math(const Tensor& input, const Shape& normalized_shape,
                     const Tensor& weight = Tensor(), std::optional<double> eps = std::nullopt);
Tensor rotary_embedding_math(const Tensor& x, const Tensor& cos, const Tensor& sin);

// ---- joining, splitting, indexing (shape_functions.cpp) ---------------------------------
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Views of consecutive pieces of `split_size` along dim (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);
std::vector<Tensor> split_with_sizes(const Tensor& x, const Shape& sizes, int64_t dim);
// indices: i64 1-d. The gradient of a repeated index is summed.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices);

// ---- masking and scans (masking_functions.cpp) -------------------------------------------
// x [..., rows, cols]: keep col - row <= diagonal (tril) or >= diagonal (triu), zero the rest.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);
// x with `value` where mask (u8, broadcast to x's shape) is nonzero; no gradient flows there.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Inclusive prefix sums along dim; integer inputs give i64 (as in PyTorch).
Tensor cumsum(const Tensor& x, int64_t dim);

// ---- selection and sampling (selection_functions.cpp) ----------------------------------
// The k largest (smallest when !largest) along dim as {values, indices (i64)}; values carry
// the gradient, scattered back to the chosen positions. Ties: the lower index first.
ops::TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true,
               bool sorted = true);
// Not differentiable: i64 category indices drawn from probs on the generator.
using ops::multinomial;

}  // namespace zt
