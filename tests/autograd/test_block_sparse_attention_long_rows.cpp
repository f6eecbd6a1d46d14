// Block-sparse attention with global rows long enough that the CPU kernels run them a chunk at
// a time during the sweep over the other rows (cpu_block_sparse_tiles.h, sweep_entry): output
// and gradients equal dense attention with the layout as a mask (f32 at blocks of 16, the
// AVX-512 paths; f64 at blocks of 4, the portable ones; bf16 against f32), and the results are
// the same bits on 1, 2 and 3 threads, where the forward takes its per-entry schedule on one
// thread and its per-row-group schedule on more.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/block_sparse_attention.h"
#include "autograd/functions.h"
#include "core/factory.h"
#include "core/parallel.h"
#include "tests/autograd/block_sparse_test_values.h"

using namespace zt;

namespace {

using testing::max_difference;

constexpr int64_t kHeads = 2;

// 80 blocks a row: the global row attends all 80, the others 4-6, so the global row is a long
// row (more than a chunk, and more than 8 times the average row); and past the kernels' ring of
// 64 transposed blocks, so blocks 0 and 64, both in row 64's list, share a slot.
struct Shape80 {
  int64_t block, T, E, Ev;
};

SparseLayout layout_of(SparsityMode mode, int64_t block, int64_t T, bool unidirectional,
                       bool per_head) {
  SparsityConfig config;
  config.mode = mode;
  config.block = block;
  config.unidirectional = unidirectional;
  config.different_layout_per_head = per_head;
  if (mode == SparsityMode::bigbird || mode == SparsityMode::variable) config.num_random_blocks = 1;
  return make_sparse_layout(config, kHeads, T, 5);
}

Tensor dense_mask(const SparseLayout& layout, int64_t T, bool causal) {
  std::vector<double> keep;
  keep.reserve(size_t(kHeads * T * T));
  for (int64_t h = 0; h < kHeads; ++h)
    for (int64_t l = 0; l < T; ++l)
      for (int64_t s = 0; s < T; ++s)
        keep.push_back(layout.at(h, l / layout.block, s / layout.block) && (!causal || s <= l));
  return from_values(keep, {kHeads, T, T}).to(DType::u8);
}

struct Results {
  Tensor out;
  std::vector<Tensor> grads;
};

// Output and input gradients of sum(attention * weights), inputs made from `seed`s.
template <typename Attend>
Results run(const Shape80& shape, DType dtype, const Attend& attend) {
  std::vector<Tensor> in;
  for (uint64_t seed : {1, 2, 3}) {
    in.push_back(testing::sparse_test_leaf({1, kHeads, shape.T, seed == 3 ? shape.Ev : shape.E},
                                           seed, dtype));
  }
  const Tensor weights = testing::sparse_test_leaf({1, kHeads, shape.T, shape.Ev}, 4, dtype);
  const Tensor out = attend(in);
  sum(mul(out, weights.detach())).backward();
  return {out.detach(), {in[0].grad(), in[1].grad(), in[2].grad()}};
}

// The largest difference of a's tensors from b's, each over the largest magnitude in b's
// tensor where that exceeds 1 (key gradients at T = 1280 sum hundreds of rows and reach ~5).
double largest_difference(const Results& a, const Results& b) {
  auto scaled = [](const Tensor& x, const Tensor& reference) {
    return max_difference(x, reference) /
           std::max(1.0, max_difference(reference, zeros_like(reference)));
  };
  double worst = scaled(a.out, b.out);
  for (size_t i = 0; i < 3; ++i) worst = std::max(worst, scaled(a.grads[i], b.grads[i]));
  return worst;
}

Results sparse_on(const Shape80& shape, DType dtype, const ops::BlockSparseIndex& index,
                  int threads) {
  const int before = num_threads();
  set_num_threads(threads);
  Results results = run(shape, dtype, [&](const std::vector<Tensor>& in) {
    return block_sparse_attention(in[0], in[1], in[2], index);
  });
  set_num_threads(before);
  return results;
}

}  // namespace

TEST_CASE("block-sparse attention with long global rows equals masked dense attention") {
  const Shape80 f32_shape{16, 1280, 32, 16}, f64_shape{4, 320, 24, 16};
  for (SparsityMode mode :
       {SparsityMode::bigbird, SparsityMode::bslongformer, SparsityMode::variable}) {
    for (bool unidirectional : {false, true}) {
      for (bool per_head : {false, true}) {
        for (DType dtype : {DType::f32, DType::f64}) {
          CAPTURE(sparsity_mode_name(mode));
          CAPTURE(unidirectional);
          CAPTURE(per_head);
          const std::string dtype_text(dtype_name(dtype));
          CAPTURE(dtype_text);
          const Shape80& shape = dtype == DType::f32 ? f32_shape : f64_shape;
          const SparseLayout layout =
              layout_of(mode, shape.block, shape.T, unidirectional, per_head);
          const ops::BlockSparseIndex index =
              ops::block_sparse_index(layout, unidirectional, Device::cpu());
          const Tensor mask = dense_mask(layout, shape.T, unidirectional);
          const Results dense = run(shape, dtype, [&](const std::vector<Tensor>& in) {
            return scaled_dot_product_attention(in[0], in[1], in[2], mask, 0.0, false);
          });
          const Results one_thread = sparse_on(shape, dtype, index, 1);
          CHECK(largest_difference(one_thread, dense) < (dtype == DType::f32 ? 1e-6 : 1e-12));
          for (int threads : {2, 3}) {
            CAPTURE(threads);
            CHECK(largest_difference(sparse_on(shape, dtype, index, threads), one_thread) == 0.0);
          }
        }
      }
    }
  }
}

TEST_CASE("block-sparse attention with long global rows in bf16 follows f32") {
  const Shape80 shape{16, 1280, 32, 16};
  const SparseLayout layout = layout_of(SparsityMode::bigbird, shape.block, shape.T, false, true);
  const ops::BlockSparseIndex index = ops::block_sparse_index(layout, false, Device::cpu());
  const Results half = sparse_on(shape, DType::bf16, index, 2);
  // The same bf16 values in f32: the kernels compute in f32 either way, so the two differ by
  // bf16's rounding of the inputs' gradients, the output and the weights' product with it.
  const Results full = run(shape, DType::f32, [&](const std::vector<Tensor>& in) {
    std::vector<Tensor> rounded;
    for (const Tensor& x : in) rounded.push_back(x.to(DType::bf16).to(DType::f32));
    return block_sparse_attention(rounded[0], rounded[1], rounded[2], index);
  });
  // Relative to each tensor's largest value: bf16 keeps 8 bits.
  auto relative = [](const Tensor& a, const Tensor& b) {
    return max_difference(a, b) / std::max(1e-30, max_difference(b, zeros_like(b)));
  };
  CHECK(relative(half.out, full.out) < 2e-2);
  for (size_t i = 0; i < 3; ++i) CHECK(relative(half.grads[i], full.grads[i]) < 5e-2);
}
