// The CUDA backend's tril, triu, masked_fill and cumsum (forward and reverse, the backward)
// against the CPU backend's, over every floating dtype and an integer one. Skipped without a
// GPU (ZT_NEEDS_CUDA_DEVICE).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/ops/cumsum.h"
#include "core/ops/masking.h"
#include "tests/cuda/cuda_compare.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using cuda_test::compare;
using cuda_test::kFloatDTypes;
using cuda_test::random_tensor;

TEST_SUITE("cuda") {
  TEST_CASE("tril_triu_and_masked_fill_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    std::vector<DType> dtypes(std::begin(kFloatDTypes), std::end(kFloatDTypes));
    dtypes.push_back(DType::i64);
    Tensor mask = ops::to_dtype(ops::gt(random_tensor({1, 7, 1}, DType::f32, 31), 0.0), DType::u8);
    for (DType dtype : dtypes) {
      Tensor x = ops::to_dtype(random_tensor({3, 7, 9}, DType::f64, 32, -50, 50), dtype);
      for (int64_t diagonal : {-2, 0, 3}) {
        compare(
            {x},
            [&](const std::vector<Tensor>& in) {
              return std::vector<Tensor>{ops::tril(in[0], diagonal), ops::triu(in[0], diagonal),
                                         ops::tril(in[0].transpose(-1, -2), diagonal)};
            },
            "tril/triu " + std::string(dtype_name(dtype)) + " diagonal " +
                std::to_string(diagonal));
      }
      compare(
          {x, mask},
          [&](const std::vector<Tensor>& in) {
            return std::vector<Tensor>{ops::masked_fill(in[0], in[1], -3.0)};
          },
          "masked_fill " + std::string(dtype_name(dtype)));
    }
  }

  TEST_CASE("cumsum_forward_and_reverse_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    std::vector<DType> dtypes(std::begin(kFloatDTypes), std::end(kFloatDTypes));
    dtypes.push_back(DType::i64);
    for (DType dtype : dtypes) {
      Tensor x = ops::to_dtype(random_tensor({4, 300, 33}, DType::f64, 33, -9, 9), dtype);
      for (int64_t dim : {0, 1, -1}) {
        compare(
            {x},
            [&](const std::vector<Tensor>& in) {
              return std::vector<Tensor>{ops::cumsum(in[0], dim),
                                         ops::cumsum(in[0], dim, /*reverse=*/true)};
            },
            "cumsum " + std::string(dtype_name(dtype)) + " dim " + std::to_string(dim));
      }
    }
  }
}
