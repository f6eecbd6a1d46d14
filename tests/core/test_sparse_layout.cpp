// The block-sparse layouts against tables worked out by hand from DeepSpeed's rules for each
// mode (local windows, global blocks, sliding windows; "1" marks an active block), the random
// blocks' determinism per seed, and the errors for a bad sequence length or combination.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/sparse_layout.h"
#include "tests/error_of.h"

using namespace zt;

namespace {

std::vector<std::string> plane_rows(const SparseLayout& layout, int64_t head = 0) {
  std::vector<std::string> rows;
  for (int64_t r = 0; r < layout.blocks; ++r) {
    std::string row;
    for (int64_t c = 0; c < layout.blocks; ++c) row += layout.at(head, r, c) ? '1' : '0';
    rows.push_back(row);
  }
  return rows;
}

SparsityConfig with_mode(SparsityMode mode, bool unidirectional = false) {
  SparsityConfig config;
  config.mode = mode;
  config.block = 4;
  config.unidirectional = unidirectional;
  return config;
}

using Rows = std::vector<std::string>;

}  // namespace

TEST_CASE("sparse layout: dense and fixed match the hand-worked tables") {
  SparsityConfig dense = with_mode(SparsityMode::dense);
  CHECK(plane_rows(make_sparse_layout(dense, 2, 12), 1) == Rows{"111", "111", "111"});

  // Windows of 4 blocks; the last block of each window is global (a full column).
  SparsityConfig fixed = with_mode(SparsityMode::fixed);
  const SparseLayout layout = make_sparse_layout(fixed, 3, 32);
  CHECK(layout.heads == 3);
  CHECK(layout.blocks == 8);
  const Rows bidirectional = {"11110001", "11110001", "11110001", "11110001",
                              "00011111", "00011111", "00011111", "00011111"};
  for (int64_t head = 0; head < 3; ++head) CHECK(plane_rows(layout, head) == bidirectional);
  CHECK(layout.active_blocks() == 3 * 40);
  CHECK(layout.density() == doctest::Approx(40.0 / 64.0));

  // Causal: lower triangles of the windows, global columns from their own row down.
  CHECK(plane_rows(make_sparse_layout(with_mode(SparsityMode::fixed, true), 1, 32)) ==
        Rows{"10000000", "11000000", "11100000", "11110000", "00011000", "00011100", "00011110",
             "00011111"});
  // A short last window [4, 6) still gets a global block: min(4 + 3, 6 - 1) = 5.
  CHECK(plane_rows(make_sparse_layout(fixed, 1, 24)) ==
        Rows{"111101", "111101", "111101", "111101", "000111", "000111"});
}

TEST_CASE("sparse layout: fixed with different global patterns per head and horizontal rows") {
  SparsityConfig fixed = with_mode(SparsityMode::fixed);
  fixed.num_local_blocks = 2;
  fixed.different_layout_per_head = true;
  fixed.num_different_global_patterns = 2;
  fixed.horizontal_global_attention = true;
  const SparseLayout layout = make_sparse_layout(fixed, 3, 16);
  // Head 0: the last block of each window (1, 3) is global; head 1 the one before (0, 2);
  // head 2 repeats head 0's pattern.
  CHECK(plane_rows(layout, 0) == Rows{"1101", "1111", "0111", "1111"});
  CHECK(plane_rows(layout, 1) == Rows{"1111", "1110", "1111", "1011"});
  CHECK(plane_rows(layout, 2) == plane_rows(layout, 0));
}

TEST_CASE("sparse layout: variable windows, global indices and ranges") {
  SparsityConfig variable = with_mode(SparsityMode::variable);
  variable.local_window_blocks = {1, 2};  // windows [0,1) [1,3), then 2 blocks to the end
  CHECK(plane_rows(make_sparse_layout(variable, 1, 24)) ==
        Rows{"100000", "111000", "111000", "100110", "100110", "100001"});

  variable.local_window_blocks = {2};
  variable.global_block_indices = {2};
  variable.global_block_end_indices = {4};
  variable.horizontal_global_attention = true;
  CHECK(plane_rows(make_sparse_layout(variable, 1, 24)) ==
        Rows{"111100", "111100", "111111", "111111", "001111", "001111"});

  SparsityConfig causal = with_mode(SparsityMode::variable, true);
  causal.local_window_blocks = {2};
  CHECK(plane_rows(make_sparse_layout(causal, 1, 16)) == Rows{"1000", "1100", "1010", "1011"});
}

TEST_CASE("sparse layout: bigbird and bslongformer sliding windows with global blocks") {
  const Rows bigbird = {"11111", "11100", "11110", "10111", "10011"};
  CHECK(plane_rows(make_sparse_layout(with_mode(SparsityMode::bigbird), 1, 20)) == bigbird);
  CHECK(plane_rows(make_sparse_layout(with_mode(SparsityMode::bigbird, true), 1, 20)) ==
        Rows{"10000", "11000", "11100", "10110", "10011"});

  SparsityConfig longformer = with_mode(SparsityMode::bslongformer);
  CHECK(plane_rows(make_sparse_layout(longformer, 1, 20)) == bigbird);  // global index 0
  longformer.global_block_indices = {2};
  CHECK(plane_rows(make_sparse_layout(longformer, 1, 20)) ==
        Rows{"11100", "11100", "11111", "00111", "00111"});
  longformer.unidirectional = true;
  CHECK(plane_rows(make_sparse_layout(longformer, 1, 20)) ==
        Rows{"10000", "11000", "11100", "00110", "00111"});
}

TEST_CASE("sparse layout: random blocks are the same for a seed, distinct per row, causal") {
  SparsityConfig bigbird = with_mode(SparsityMode::bigbird);
  bigbird.num_random_blocks = 3;
  bigbird.num_sliding_window_blocks = 1;
  bigbird.num_global_blocks = 1;
  bigbird.different_layout_per_head = true;
  const SparseLayout first = make_sparse_layout(bigbird, 2, 128, 7);
  CHECK(first.active == make_sparse_layout(bigbird, 2, 128, 7).active);
  CHECK(first.active != make_sparse_layout(bigbird, 2, 128, 8).active);
  CHECK(plane_rows(first, 0) != plane_rows(first, 1));  // each head draws its own
  for (int64_t head = 0; head < 2; ++head) {
    for (int64_t row = 1; row < first.blocks; ++row) {
      // Column 0 (global) and the diagonal (window of 1) are set; 3 distinct random columns
      // add between 1 and 3 more.
      int64_t count = 0;
      for (int64_t col = 0; col < first.blocks; ++col) count += first.at(head, row, col);
      CHECK(count >= 3);
      CHECK(count <= 5);
    }
  }
  bigbird.unidirectional = true;
  const SparseLayout causal = make_sparse_layout(bigbird, 2, 128, 7);
  for (int64_t row = 0; row < causal.blocks; ++row) {
    for (int64_t col = row + 1; col < causal.blocks; ++col) CHECK(!causal.at(1, row, col));
  }
  // One layout for all heads unless asked: head 1 copies head 0.
  bigbird.different_layout_per_head = false;
  const SparseLayout shared = make_sparse_layout(bigbird, 2, 128, 7);
  CHECK(plane_rows(shared, 0) == plane_rows(shared, 1));
}

TEST_CASE("sparse layout: bad sequence lengths, modes and combinations name the key") {
  SparsityConfig fixed;
  CHECK(error_of([&] { make_sparse_layout(fixed, 1, 100); }) ==
        "sparse_attention: sequence length 100 is not a positive multiple of block 16");
  CHECK(error_of([] { parse_sparsity_mode("strided"); }) ==
        "sparse_attention.mode: expected one of \"dense\", \"fixed\", \"variable\", \"bigbird\", "
        "\"bslongformer\", got \"strided\"");
  fixed.num_global_blocks = 3;
  CHECK(error_of([&] { fixed.validate(); }) ==
        "sparse_attention.num_local_blocks: 4 must be a multiple of num_global_blocks (3)");
  fixed.num_global_blocks = 1;
  fixed.num_different_global_patterns = 2;
  CHECK(error_of([&] { fixed.validate(); }).find("need different_layout_per_head true") !=
        std::string::npos);
  fixed.num_different_global_patterns = 1;
  fixed.unidirectional = true;
  fixed.horizontal_global_attention = true;
  CHECK(error_of([&] { fixed.validate(); }) ==
        "sparse_attention.horizontal_global_attention: needs \"attention\": \"bidirectional\"");
  SparsityConfig bigbird = with_mode(SparsityMode::bigbird);
  bigbird.num_sliding_window_blocks = 5;
  CHECK(error_of([&] { make_sparse_layout(bigbird, 1, 16); }) ==
        "sparse_attention.num_sliding_window_blocks: 5 is more than the 4 blocks of a row");
  SparsityConfig variable = with_mode(SparsityMode::variable);
  variable.global_block_end_indices = {0};
  CHECK(error_of([&] { variable.validate(); }) ==
        "sparse_attention.global_block_end_indices: entry 0 (0) must be above "
        "global_block_indices[0] (0)");
}
