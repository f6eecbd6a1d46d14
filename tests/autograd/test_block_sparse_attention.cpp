// Block-sparse attention against dense attention with the layout as a mask: the output equals
// a plain f64 loop over the masked scores (tests/autograd/attention_reference.h) and, in f32,
// the project's dense fused attention given the layout as a u8 mask, gradients included, to
// 1e-6; the f64 gradients pass a finite-difference check. Every mode, both directions, one
// layout for all heads or one per head. Memory: no [T, T] buffer, so forward + backward peak
// bytes grow with T, not with the active blocks' T^2.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/block_sparse_attention.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "tests/autograd/attention_reference.h"
#include "tests/autograd/block_sparse_test_values.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/error_of.h"

using namespace zt;

namespace {

constexpr int64_t kBatch = 2, kHeads = 3, kBlock = 4, kT = 32, kE = 5, kEv = 3;

struct Case {
  SparsityMode mode;
  bool unidirectional, per_head;
  std::string name() const {
    return sparsity_mode_name(mode) + (unidirectional ? " causal" : " bidirectional") +
           (per_head ? " per-head" : " shared");
  }
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (SparsityMode mode : {SparsityMode::dense, SparsityMode::fixed, SparsityMode::variable,
                            SparsityMode::bigbird, SparsityMode::bslongformer}) {
    for (bool unidirectional : {false, true})
      for (bool per_head : {false, true}) cases.push_back({mode, unidirectional, per_head});
  }
  return cases;
}

// Small layouts in which heads differ when asked: random blocks in variable and bigbird, two
// global patterns in fixed.
SparseLayout layout_for(const Case& c) {
  SparsityConfig config;
  config.mode = c.mode;
  config.block = kBlock;
  config.unidirectional = c.unidirectional;
  config.different_layout_per_head = c.per_head;
  config.num_local_blocks = 2;
  if (c.mode == SparsityMode::fixed && c.per_head) config.num_different_global_patterns = 2;
  config.num_random_blocks = 1;
  config.local_window_blocks = {1, 3};
  config.global_block_indices = {2};
  return make_sparse_layout(config, kHeads, kT, 11);
}

bool visible(const SparseLayout& layout, bool causal, int64_t head, int64_t l, int64_t s) {
  return layout.at(head, l / layout.block, s / layout.block) && (!causal || s <= l);
}

// The layout as a u8 keep mask [H, T, T] for the dense kernel.
Tensor dense_mask(const SparseLayout& layout, bool causal) {
  std::vector<double> keep;
  for (int64_t h = 0; h < layout.heads; ++h)
    for (int64_t l = 0; l < kT; ++l)
      for (int64_t s = 0; s < kT; ++s) keep.push_back(visible(layout, causal, h, l, s) ? 1 : 0);
  return from_values(keep, {layout.heads, kT, kT}).to(DType::u8);
}

Tensor leaf(const Shape& shape, uint64_t seed, DType dtype) {
  return testing::sparse_test_leaf(shape, seed, dtype);
}

using testing::max_difference;

}  // namespace

TEST_CASE("block-sparse attention equals the masked plain loop in f64, every mode") {
  for (const Case& c : all_cases()) {
    CAPTURE(c.name());
    const SparseLayout layout = layout_for(c);
    const ops::BlockSparseIndex index =
        ops::block_sparse_index(layout, c.unidirectional, Device::cpu());
    const Tensor q = leaf({kBatch, kHeads, kT, kE}, 1, DType::f64);
    const Tensor k = leaf({kBatch, kHeads, kT, kE}, 2, DType::f64);
    const Tensor v = leaf({kBatch, kHeads, kT, kEv}, 3, DType::f64);
    const Tensor out = block_sparse_attention(q, k, v, index);
    const std::vector<double> expected = test::loop_attention(
        {kBatch * kHeads, kT, kT, kE, kEv}, q.to_vector(), k.to_vector(), v.to_vector(),
        1.0 / std::sqrt(double(kE)),
        [&](int64_t b, int64_t l, int64_t s) {
          return visible(layout, c.unidirectional, b % kHeads, l, s);
        },
        [](int64_t, int64_t, int64_t) { return 0.0; });
    CHECK(max_difference(out, from_values(expected, out.sizes(), {.dtype = DType::f64})) < 1e-12);
  }
}

TEST_CASE("block-sparse attention equals dense attention with the layout mask in f32, grads too") {
  for (const Case& c : all_cases()) {
    CAPTURE(c.name());
    const SparseLayout layout = layout_for(c);
    const ops::BlockSparseIndex index =
        ops::block_sparse_index(layout, c.unidirectional, Device::cpu());
    std::vector<Tensor> sparse_in, dense_in;
    for (uint64_t seed : {4, 5, 6}) {
      const Shape shape = {kBatch, kHeads, kT, seed == 6 ? kEv : kE};
      sparse_in.push_back(leaf(shape, seed, DType::f32));
      dense_in.push_back(leaf(shape, seed, DType::f32));
    }
    const Tensor weights = leaf({kBatch, kHeads, kT, kEv}, 7, DType::f32).detach();
    const Tensor sparse_out =
        block_sparse_attention(sparse_in[0], sparse_in[1], sparse_in[2], index);
    const Tensor dense_out = scaled_dot_product_attention(
        dense_in[0], dense_in[1], dense_in[2], dense_mask(layout, c.unidirectional), 0.0, false);
    CHECK(max_difference(sparse_out, dense_out) < 1e-6);
    sum(mul(sparse_out, weights)).backward();
    sum(mul(dense_out, weights)).backward();
    for (size_t i = 0; i < 3; ++i)
      CHECK(max_difference(sparse_in[i].grad(), dense_in[i].grad()) < 1e-6);
  }
}

TEST_CASE("block-sparse attention passes the f64 finite-difference gradient check, every mode") {
  for (const Case& c : all_cases()) {
    CAPTURE(c.name());
    const SparseLayout layout = layout_for(c);
    const ops::BlockSparseIndex index =
        ops::block_sparse_index(layout, c.unidirectional, Device::cpu());
    const std::vector<Tensor> inputs = {leaf({1, kHeads, kT, 2}, 8, DType::f64),
                                        leaf({1, kHeads, kT, 2}, 9, DType::f64),
                                        leaf({1, kHeads, kT, 2}, 10, DType::f64)};
    test::check_gradients(
        [&](const std::vector<Tensor>& in) {
          return block_sparse_attention(in[0], in[1], in[2], index);
        },
        inputs);
  }
}

TEST_CASE("block-sparse attention: memory grows with T, not with the T^2 active blocks") {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  auto peak_bytes = [&](int64_t T) {
    SparsityConfig dense;
    dense.mode = SparsityMode::dense;
    const ops::BlockSparseIndex index =
        ops::block_sparse_index(make_sparse_layout(dense, 2, T), true, Device::cpu());
    std::vector<Tensor> in = {leaf({1, 2, T, 16}, 1, DType::f32),
                              leaf({1, 2, T, 16}, 2, DType::f32),
                              leaf({1, 2, T, 16}, 3, DType::f32)};
    const int64_t live_before = accounting.stats().total_live_bytes;
    accounting.reset_peak();
    { sum(block_sparse_attention(in[0], in[1], in[2], index)).backward(); }
    return accounting.stats().total_peak_bytes - live_before;
  };
  const int64_t at_512 = peak_bytes(512), at_1024 = peak_bytes(1024);
  CAPTURE(at_512);
  CAPTURE(at_1024);
  // A [T, T] buffer of f32 would be 1 MiB per head at T = 512 and 4 MiB at 1024.
  CHECK(at_1024 < 2.1 * double(at_512));
  CHECK(at_512 < 1024 * 1024);
}

TEST_CASE("block-sparse attention: shapes that do not fit the layout name the argument") {
  SparsityConfig fixed;
  const ops::BlockSparseIndex index =
      ops::block_sparse_index(make_sparse_layout(fixed, 2, 64), false, Device::cpu());
  const Tensor q = zeros({1, 2, 48, 8});
  CHECK(error_of([&] { block_sparse_attention(q, q, q, index); }) ==
        "block_sparse_attention: query [1, 2, 48, 8] has sequence length 48, the layout covers 64 "
        "(4 blocks of 16)");
  const Tensor three_heads = zeros({1, 3, 128, 8});
  SparsityConfig per_head = fixed;
  per_head.different_layout_per_head = true;
  per_head.num_different_global_patterns = 2;
  const ops::BlockSparseIndex two_layouts =
      ops::block_sparse_index(make_sparse_layout(per_head, 2, 128), false, Device::cpu());
  CHECK(error_of([&] {
          block_sparse_attention(three_heads, three_heads, three_heads, two_layouts);
        }) == "block_sparse_attention: the layout has 2 heads, query [1, 3, 128, 8] has 3");
}

TEST_CASE("block-sparse attention: key blocks that no query attends get zero gradients") {
  // Every row attends key blocks 1 and 2 only: the others' grad_k and grad_v rows are never
  // written by a product, so the kernel must zero them itself.
  SparseLayout layout;
  layout.heads = kHeads;
  layout.block = kBlock;
  layout.blocks = kT / kBlock;
  layout.active.assign(size_t(kHeads * layout.blocks * layout.blocks), 0);
  for (int64_t row = 0; row < kHeads * layout.blocks; ++row)
    for (int64_t col : {1, 2}) layout.active[size_t(row * layout.blocks + col)] = 1;
  const ops::BlockSparseIndex index = ops::block_sparse_index(layout, false, Device::cpu());
  std::vector<Tensor> sparse_in, dense_in;
  for (uint64_t seed : {4, 5, 6}) {
    const Shape shape = {kBatch, kHeads, kT, seed == 6 ? kEv : kE};
    sparse_in.push_back(leaf(shape, seed, DType::f32));
    dense_in.push_back(leaf(shape, seed, DType::f32));
  }
  const Tensor sparse_out = block_sparse_attention(sparse_in[0], sparse_in[1], sparse_in[2], index);
  // Freed NaN buffers of the gradients' sizes, which the allocator's cache hands back to them.
  for (int64_t width : {kE, kE, kEv}) full({kBatch * kHeads, kT, width}, std::nan(""));
  sum(sparse_out).backward();
  const Tensor dense_out = scaled_dot_product_attention(dense_in[0], dense_in[1], dense_in[2],
                                                        dense_mask(layout, false), 0.0, false);
  sum(dense_out).backward();
  CHECK(max_difference(sparse_out, dense_out) < 1e-6);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(max_difference(sparse_in[i].grad(), dense_in[i].grad()) < 1e-6);
  }
}
