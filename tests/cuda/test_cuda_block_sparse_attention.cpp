// The CUDA block-sparse attention against the CPU's, forward (output and log-sum-exp) and
// backward, for every floating dtype: each mode, causal and bidirectional, one layout for all
// heads and one per head, blocks of 16 and of 40 (a row tile of 16 queries split across a
// block). Skipped without a GPU.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/ops/block_sparse_attention.h"
#include "tests/cuda/cuda_compare.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using cuda_test::compare;
using cuda_test::kFloatDTypes;
using cuda_test::random_tensor;
using cuda_test::relative_tolerance;

TEST_SUITE("cuda") {
  TEST_CASE("block_sparse_attention_forward_and_backward_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      for (SparsityMode mode : {SparsityMode::fixed, SparsityMode::variable, SparsityMode::bigbird,
                                SparsityMode::bslongformer, SparsityMode::dense}) {
        for (bool causal : {false, true}) {
          for (int64_t block : {16, 40}) {
            SparsityConfig config;
            config.mode = mode;
            config.block = block;
            config.unidirectional = causal;
            config.different_layout_per_head = block == 40;
            config.num_random_blocks = 1;
            const int64_t T = 8 * block;
            const SparseLayout layout = make_sparse_layout(config, 3, T, 5);
            const std::vector<Tensor> inputs = {
                random_tensor({2, 3, T, 32}, dtype, 1), random_tensor({2, 3, T, 32}, dtype, 2),
                random_tensor({2, 3, T, 24}, dtype, 3), random_tensor({2, 3, T, 24}, dtype, 4)};
            compare(
                inputs,
                [&](const std::vector<Tensor>& in) {
                  const ops::BlockSparseIndex index =
                      ops::block_sparse_index(layout, causal, in[0].device());
                  ops::BlockSparseForward forward =
                      ops::block_sparse_attention_forward(in[0], in[1], in[2], index, std::nullopt);
                  ops::BlockSparseGrads grads =
                      ops::block_sparse_attention_backward(forward, in[3]);
                  return std::vector<Tensor>{forward.out, forward.lse, grads.q, grads.k, grads.v};
                },
                sparsity_mode_name(mode) + (causal ? " causal" : "") + " block " +
                    std::to_string(block) + " " + std::string(dtype_name(dtype)),
                20 * relative_tolerance(dtype), 1e-2);
          }
        }
      }
    }
  }
}
