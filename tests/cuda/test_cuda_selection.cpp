// The CUDA topk and multinomial kernels against the CPU's: topk picks the same positions
// (ties and NaN included) for every dtype and its backward scatters alike; multinomial draws
// the same categories from the same seed, with and without replacement. Skipped without a GPU
// (ZT_NEEDS_CUDA_DEVICE).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/multinomial.h"
#include "core/ops/topk.h"
#include "core/ops/view.h"
#include "tests/cuda/cuda_compare.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using cuda_test::compare;
using cuda_test::kGpu;
using cuda_test::random_tensor;

TEST_SUITE("cuda") {
  TEST_CASE("topk_forward_and_backward_match_the_cpu_for_every_dtype" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64}) {
      // Rounded values, so rows have ties; a NaN in the floating ones.
      Tensor x = ops::to_dtype(random_tensor({6, 40, 3}, DType::f64, 41, -8.0, 8.0), DType::i64);
      x = ops::to_dtype(x, dtype);
      if (dtype != DType::i64) ops::fill_(ops::select(ops::select(x, 0, 2), 0, 5), std::nan(""));
      Tensor grad = random_tensor({6, 7, 3}, dtype == DType::i64 ? DType::f64 : dtype, 42);
      compare(
          {x, grad},
          [](const std::vector<Tensor>& in) {
            ops::TopK largest = ops::topk(in[0], 7, 1);
            ops::TopK smallest = ops::topk(in[0], 7, 1, /*largest=*/false);
            return std::vector<Tensor>{largest.values, largest.indices, smallest.values,
                                       smallest.indices,
                                       ops::topk_backward(in[1], largest.indices, {6, 40, 3}, 1)};
          },
          "topk " + std::string(dtype_name(dtype)));
    }
  }

  TEST_CASE("multinomial_draws_the_cpu_categories_from_the_same_seed" * ZT_NEEDS_CUDA_DEVICE) {
    Tensor probs = random_tensor({64, 300}, DType::f32, 43, 0.0, 1.0);
    ops::fill_(ops::narrow(probs, 1, 0, 10), 0.0);  // categories that are never drawn
    for (bool replacement : {true, false}) {
      Generator cpu_generator(44), gpu_generator(44);
      Tensor on_cpu = ops::multinomial(probs, 20, replacement, &cpu_generator);
      Tensor on_gpu =
          ops::multinomial(ops::to_device(probs, kGpu), 20, replacement, &gpu_generator);
      REQUIRE(on_gpu.device() == kGpu);
      CHECK(on_gpu.to_vector() == on_cpu.to_vector());
      CHECK(gpu_generator.offset() == cpu_generator.offset());
    }
    Tensor bad = ops::to_device(from_values({1.0, -1.0}, {2}), kGpu);
    CHECK_THROWS_AS(ops::multinomial(bad, 1, true), std::invalid_argument);
  }
}
