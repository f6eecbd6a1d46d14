// A W8A8 QuantizedLinear on a CUDA input (its int8 product in cuBLASLt) against the same layer
// on the CPU (the int8 GEMM of core/cpu/cpu_int8_gemm.h): the int32 sums are exact on both,
// and the host applies the same epilogue, so the outputs agree to float rounding. Widths that
// are not a multiple of 4 are padded to cuBLASLt's quads; asymmetric weights and tokens, group
// scales, the fused GELU, and 16-bit inputs are covered.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "quant/quantized_linear.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/largest_difference.h"

using namespace zt;
using quant::QuantizationType;

using testing::largest_relative_difference;

TEST_CASE("W8A8 QuantizedLinear on CUDA (cuBLASLt) equals the CPU int8 GEMM" *
          ZT_NEEDS_CUDA_DEVICE) {
  Generator generator(41);
  for (int64_t in : {67, 128})
    for (int64_t groups : {1, 10})
      for (QuantizationType type : {QuantizationType::symmetric, QuantizationType::asymmetric}) {
        INFO("in=" << in << " groups=" << groups << " type=" << int(type));
        const Tensor weight = randn({130, in}, {}, &generator);
        const Tensor bias = randn({130}, {}, &generator);
        const Tensor x = randn({2, 9, in}, {}, &generator);
        quant::QuantizedLinear layer(weight, bias, 8, groups, type, type);
        const Tensor on_cpu = layer(x);
        const Tensor on_gpu = layer(x.to(cuda_test::kGpu));
        CHECK(on_gpu.device() == cuda_test::kGpu);
        CHECK(on_gpu.sizes() == on_cpu.sizes());
        CHECK(largest_relative_difference(on_gpu.to(Device::cpu()), on_cpu) < 1e-6);
        const Tensor gelu_cpu = layer.forward_gelu_tanh(x);
        const Tensor gelu_gpu = layer.forward_gelu_tanh(x.to(cuda_test::kGpu));
        CHECK(largest_relative_difference(gelu_gpu.to(Device::cpu()), gelu_cpu) < 1e-6);
        const Tensor half = x.to(DType::bf16);
        const Tensor half_gpu = layer(half.to(cuda_test::kGpu));
        CHECK(half_gpu.dtype() == DType::bf16);
        CHECK(largest_relative_difference(half_gpu.to(Device::cpu()), layer(half)) < 1e-6);
      }
}

TEST_CASE("a QuantizedLinear moved to the GPU says its state stays on the CPU" *
          ZT_NEEDS_CUDA_DEVICE) {
  Generator generator(43);
  quant::QuantizedLinear layer(randn({64, 16}, {}, &generator), Tensor(), 8, 1,
                               QuantizationType::symmetric, QuantizationType::symmetric);
  layer.to(cuda_test::kGpu);
  CHECK_THROWS_WITH_AS(layer(randn({2, 16}, {}, &generator).to(cuda_test::kGpu)),
                       "QuantizedLinear: its codes, scales and bias stay on the CPU, but were "
                       "moved to cuda:0 (a W8A8 layer given a CUDA input multiplies there itself)",
                       std::invalid_argument);
}
