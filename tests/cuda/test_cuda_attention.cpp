// The CUDA fused attention against the CPU's, forward (output and log-sum-exp) and backward,
// for every floating dtype: causal with L != S, u8 and float masks read through broadcast
// strides, broadcast batch dims, a fully masked row, dropout from the same seed (both devices
// regenerate the same mask), and E != Ev across several key tiles. Skipped without a GPU.
#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops/attention.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "tests/cuda/cuda_compare.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using cuda_test::compare;
using cuda_test::kFloatDTypes;
using cuda_test::random_tensor;
using cuda_test::relative_tolerance;

namespace {

struct AttentionCase {
  std::string name;
  Shape q, k, v;
  Tensor mask;  // on the CPU; moved with the inputs
  bool causal = false;
  double dropout_p = 0.0;
};

std::vector<AttentionCase> cases(DType dtype) {
  Tensor keep = ops::gt(random_tensor({40, 70}, DType::f32, 5, 0, 1), 0.4);
  ops::fill_(keep.narrow(0, 3, 1), 0.0);  // a row with nothing to attend
  Tensor bias = random_tensor({2, 1, 33, 150}, dtype, 6, -3, 3);
  return {
      {"causal L > S", {2, 3, 90, 64}, {2, 3, 50, 64}, {2, 3, 50, 64}, Tensor(), true},
      {"causal L < S, E != Ev", {1, 2, 40, 32}, {1, 2, 200, 32}, {1, 2, 200, 48}, Tensor(), true},
      {"u8 [L, S] mask", {2, 2, 40, 16}, {2, 2, 70, 16}, {2, 2, 70, 16}, keep},
      {"float [B, 1, L, S] mask, broadcast k",
       {2, 2, 33, 24},
       {1, 2, 150, 24},
       {2, 2, 150, 8},
       bias},
      {"dropout", {1, 2, 70, 32}, {1, 2, 130, 32}, {1, 2, 130, 32}, Tensor(), true, 0.3},
  };
}

std::vector<Tensor> fused_forward_backward(const std::vector<Tensor>& in, const AttentionCase& c) {
  Generator generator(123);
  const Tensor mask = c.mask.defined() ? ops::to_device(c.mask, in[0].device()) : Tensor();
  ops::AttentionForward forward = ops::attention_forward(in[0], in[1], in[2], mask, c.dropout_p,
                                                         c.causal, std::nullopt, &generator);
  ops::AttentionGrads grads = ops::attention_backward(forward, in[3]);
  return {forward.out, forward.lse, grads.q, grads.k, grads.v};
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("fused_attention_forward_and_backward_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      for (const AttentionCase& c : cases(dtype)) {
        Shape out_shape = c.q;
        out_shape.back() = c.v.back();
        for (size_t d = 0; d + 2 < out_shape.size(); ++d) {
          out_shape[d] = std::max(c.q[d], std::max(c.k[d], c.v[d]));
        }
        const std::vector<Tensor> inputs = {
            random_tensor(c.q, dtype, 1), random_tensor(c.k, dtype, 2),
            random_tensor(c.v, dtype, 3), random_tensor(out_shape, dtype, 4)};
        // Sums over up to 200 keys in another order: a looser bound than one elementwise op.
        compare(
            inputs, [&](const std::vector<Tensor>& in) { return fused_forward_backward(in, c); },
            c.name + " " + std::string(dtype_name(dtype)), 20 * relative_tolerance(dtype), 1e-2);
      }
    }
  }
}
