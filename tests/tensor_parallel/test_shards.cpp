// The pure pieces of tensor parallelism on one process: which columns and rows a rank's shard
// holds (GPT-2's fused q, k, v included) and the vocabulary ranges, against hand-written blocks.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/factory.h"
#include "tensor_parallel/parallel_linear.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::tensor_parallel {
namespace {

TEST_CASE("column_shard_of_fused_qkv_takes_this_ranks_piece_of_each_block") {
  // [2, 12]: entry (i, j) = 100 i + j; three fused blocks of 4 columns over 2 ranks.
  std::vector<double> values;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 12; ++j) values.push_back(100.0 * i + j);
  Tensor full = from_values(values, {2, 12});
  CHECK(column_shard(full, 3, 1, 2).to_vector() ==
        std::vector<double>{2, 3, 6, 7, 10, 11, 102, 103, 106, 107, 110, 111});
  CHECK(column_shard(full, 1, 0, 3).to_vector() ==
        std::vector<double>{0, 1, 2, 3, 100, 101, 102, 103});
  CHECK(row_shard(full, 1, 2).to_vector() ==
        std::vector<double>(values.begin() + 12, values.end()));
  CHECK_THROWS_AS(column_shard(full, 3, 0, 3), std::invalid_argument);  // 4 columns a block
}

TEST_CASE("vocab_ranges_tile_the_vocabulary_and_an_indivisible_one_is_one_line") {
  CHECK(vocab_range(12, 0, 4).begin == 0);
  CHECK(vocab_range(12, 3, 4).begin == 9);
  CHECK(vocab_range(12, 3, 4).end == 12);
  try {
    vocab_range(10, 0, 4);
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          "tensor parallelism: the vocabulary of 10 tokens is not divisible by the "
          "tensor-parallel size 4");
  }
}

}  // namespace
}  // namespace zt::tensor_parallel
