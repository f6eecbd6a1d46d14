// Block-sparse attention at DeepSpeed's block of 16 in f32, the size that takes the CPU
// kernels' AVX-512 paths (keys and values transposed 16 x 16 in registers, score blocks read
// in place, row blocks computed in pairs or fours): output and gradients equal the dense fused
// attention given the layout as a u8 mask, for the window modes and fixed, both directions, and
// on rows long enough that the kernels transpose key and value blocks per thread as they go.
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

struct Dims {
  int64_t heads, T, E, Ev;
  double tolerance;  // f32 rounding, which grows with the E products of a score
};
constexpr int64_t kBlock = 16;
// 10 blocks a row: a width of 32 (two 16 x 16 transposes a block) and 48 (three), and windows
// that reach past one pair of row blocks.
constexpr Dims kShort{2, 160, 48, 32, 1e-6};
// A plane of keys of a megabyte (1024 x 256 floats, block_sparse_tiles::use_local_transposes):
// the window modes transpose their blocks into the threads' 16 slots as the rows reach them,
// 64 blocks a row, so slots are reused, and the global column evicted and transposed again.
constexpr Dims kLong{2, 1024, 256, 32, 5e-6};

SparseLayout layout_of(SparsityMode mode, bool unidirectional, bool per_head, const Dims& dims) {
  SparsityConfig config;  // DeepSpeed's defaults for each mode, plus one random block
  config.mode = mode;
  config.block = kBlock;
  config.unidirectional = unidirectional;
  config.different_layout_per_head = per_head;
  if (mode == SparsityMode::bigbird || mode == SparsityMode::variable) config.num_random_blocks = 1;
  return make_sparse_layout(config, dims.heads, dims.T, 3);
}

Tensor dense_mask(const SparseLayout& layout, bool causal, const Dims& dims) {
  std::vector<double> keep;
  for (int64_t h = 0; h < dims.heads; ++h)
    for (int64_t l = 0; l < dims.T; ++l)
      for (int64_t s = 0; s < dims.T; ++s)
        keep.push_back(layout.at(h, l / kBlock, s / kBlock) && (!causal || s <= l) ? 1 : 0);
  return from_values(keep, {dims.heads, dims.T, dims.T}).to(DType::u8);
}

Tensor leaf(const Shape& shape, uint64_t seed) {
  return testing::sparse_test_leaf(shape, seed);
}

using testing::max_difference;

void check_against_dense(SparsityMode mode, bool unidirectional, bool per_head, const Dims& dims) {
  CAPTURE(sparsity_mode_name(mode));
  CAPTURE(unidirectional);
  CAPTURE(per_head);
  CAPTURE(dims.T);
  const SparseLayout layout = layout_of(mode, unidirectional, per_head, dims);
  const ops::BlockSparseIndex index =
      ops::block_sparse_index(layout, unidirectional, Device::cpu());
  std::vector<Tensor> sparse_in, dense_in;
  for (uint64_t seed : {1, 2, 3}) {
    const Shape shape = {1, dims.heads, dims.T, seed == 3 ? dims.Ev : dims.E};
    sparse_in.push_back(leaf(shape, seed));
    dense_in.push_back(leaf(shape, seed));
  }
  const Tensor weights = leaf({1, dims.heads, dims.T, dims.Ev}, 4).detach();
  const Tensor sparse_out = block_sparse_attention(sparse_in[0], sparse_in[1], sparse_in[2], index);
  const Tensor dense_out = scaled_dot_product_attention(
      dense_in[0], dense_in[1], dense_in[2], dense_mask(layout, unidirectional, dims), 0.0, false);
  CHECK(max_difference(sparse_out, dense_out) < dims.tolerance);
  sum(mul(sparse_out, weights)).backward();
  sum(mul(dense_out, weights)).backward();
  for (size_t i = 0; i < 3; ++i)
    CHECK(max_difference(sparse_in[i].grad(), dense_in[i].grad()) < dims.tolerance);
}

}  // namespace

TEST_CASE("block-sparse attention at blocks of 16 equals masked dense attention in f32") {
  for (SparsityMode mode : {SparsityMode::bigbird, SparsityMode::bslongformer,
                            SparsityMode::variable, SparsityMode::fixed}) {
    for (bool unidirectional : {false, true}) {
      for (bool per_head : {false, true})
        check_against_dense(mode, unidirectional, per_head, kShort);
    }
  }
}

TEST_CASE(
    "block-sparse attention transposing key blocks as it goes equals masked dense attention") {
  for (SparsityMode mode : {SparsityMode::bigbird, SparsityMode::variable}) {
    for (bool unidirectional : {false, true})
      check_against_dense(mode, unidirectional, true, kLong);
  }
}
