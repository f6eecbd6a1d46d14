// Block-sparse attention at DeepSpeed's block of 16 in f32, the size that takes the CPU
// kernels' AVX-512 paths (keys and values transposed 16 x 16 in registers, score blocks read
// in place, row blocks computed in pairs or fours): output and gradients equal the dense fused
// attention given the layout as a u8 mask, for the window modes and fixed, both directions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/block_sparse_attention.h"
#include "autograd/functions.h"
#include "core/factory.h"
#include "tests/autograd/block_sparse_test_values.h"

using namespace zt;

namespace {

// 10 blocks a row: a width of 32 (two 16 x 16 transposes a block) and 48 (three), and windows
// that reach past one pair of row blocks.
constexpr int64_t kHeads = 2, kBlock = 16, kT = 160, kE = 48, kEv = 32;

SparseLayout layout_of(SparsityMode mode, bool unidirectional, bool per_head) {
  SparsityConfig config;  // DeepSpeed's defaults for each mode, plus one random block
  config.mode = mode;
  config.block = kBlock;
  config.unidirectional = unidirectional;
  config.different_layout_per_head = per_head;
  if (mode == SparsityMode::bigbird || mode == SparsityMode::variable) config.num_random_blocks = 1;
  return make_sparse_layout(config, kHeads, kT, 3);
}

Tensor dense_mask(const SparseLayout& layout, bool causal) {
  std::vector<double> keep;
  for (int64_t h = 0; h < kHeads; ++h)
    for (int64_t l = 0; l < kT; ++l)
      for (int64_t s = 0; s < kT; ++s)
        keep.push_back(layout.at(h, l / kBlock, s / kBlock) && (!causal || s <= l) ? 1 : 0);
  return from_values(keep, {kHeads, kT, kT}).to(DType::u8);
}

Tensor leaf(const Shape& shape, uint64_t seed) {
  return testing::sparse_test_leaf(shape, seed);
}

using testing::max_difference;

}  // namespace

TEST_CASE("block-sparse attention at blocks of 16 equals masked dense attention in f32") {
  for (SparsityMode mode : {SparsityMode::bigbird, SparsityMode::bslongformer,
                            SparsityMode::variable, SparsityMode::fixed}) {
    for (bool unidirectional : {false, true}) {
      for (bool per_head : {false, true}) {
        CAPTURE(sparsity_mode_name(mode));
        CAPTURE(unidirectional);
        CAPTURE(per_head);
        const SparseLayout layout = layout_of(mode, unidirectional, per_head);
        const ops::BlockSparseIndex index =
            ops::block_sparse_index(layout, unidirectional, Device::cpu());
        std::vector<Tensor> sparse_in, dense_in;
        for (uint64_t seed : {1, 2, 3}) {
          const Shape shape = {1, kHeads, kT, seed == 3 ? kEv : kE};
          sparse_in.push_back(leaf(shape, seed));
          dense_in.push_back(leaf(shape, seed));
        }
        const Tensor weights = leaf({1, kHeads, kT, kEv}, 4).detach();
        const Tensor sparse_out =
            block_sparse_attention(sparse_in[0], sparse_in[1], sparse_in[2], index);
        const Tensor dense_out = scaled_dot_product_attention(
            dense_in[0], dense_in[1], dense_in[2], dense_mask(layout, unidirectional), 0.0, false);
        CHECK(max_difference(sparse_out, dense_out) < 1e-6);
        sum(mul(sparse_out, weights)).backward();
        sum(mul(dense_out, weights)).backward();
        for (size_t i = 0; i < 3; ++i)
          CHECK(max_difference(sparse_in[i].grad(), dense_in[i].grad()) < 1e-6);
      }
    }
  }
}
