// The CUDA backend's neural-network ops against the CPU backend's (softmax, cross entropy, layer
// norm, embedding and indexing, pooling, GEMM through cuBLAS, conv through cuDNN, the device
// allocator), as tests/cuda/test_cuda_ops.cpp does for the elementwise ops. Skipped without a
// GPU (ZT_NEEDS_CUDA_DEVICE).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"
#include "core/ops/linalg.h"
#include "core/ops/nn.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "tests/cuda/cuda_compare.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using cuda_test::check_matches;
using cuda_test::compare;
using cuda_test::kFloatDTypes;
using cuda_test::kGpu;
using cuda_test::random_tensor;
using cuda_test::relative_tolerance;

TEST_SUITE("cuda") {
  TEST_CASE("softmax_and_log_softmax_forward_and_backward_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      for (const Shape& shape : {Shape{5, 10}, Shape{3, 4, 1000}, Shape{2, 5000}}) {
        Tensor x = random_tensor(shape, dtype, 17, -8, 8), g = random_tensor(shape, dtype, 18);
        for (bool log : {false, true}) {
          compare(
              {x, g},
              [&](const std::vector<Tensor>& in) {
                Tensor y = log ? ops::log_softmax(in[0], -1) : ops::softmax(in[0], -1);
                return std::vector<Tensor>{y, ops::softmax_backward(in[1], y, -1, log)};
              },
              std::string(log ? "log_softmax " : "softmax ") + shape_str(shape) + " " +
                  std::string(dtype_name(dtype)));
        }
      }
    }
  }

  TEST_CASE("cross_entropy_forward_and_backward_match_the_cpu_and_reject_bad_targets" *
            ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      Tensor logits = random_tensor({17, 11}, dtype, 19, -5, 5);
      std::vector<int64_t> labels;
      for (int i = 0; i < 17; ++i) labels.push_back(i % 3 == 0 ? -100 : (i * 7) % 11);
      Tensor target = from_int64(labels, {17});
      Tensor grad = random_tensor({17}, dtype, 20);
      for (double smoothing : {0.0, 0.1}) {
        compare(
            {logits, target, grad},
            [&](const std::vector<Tensor>& in) {
              ops::CrossEntropyForward forward =
                  ops::cross_entropy_forward(in[0], in[1], -100, smoothing);
              return std::vector<Tensor>{
                  forward.losses, forward.log_probs,
                  ops::cross_entropy_backward(in[2], forward, in[1], -100, smoothing)};
            },
            "cross entropy " + std::string(dtype_name(dtype)));
      }
    }
    Tensor logits = ops::to_device(random_tensor({2, 3}, DType::f32, 21), kGpu);
    Tensor bad = ops::to_device(from_int64(std::vector<int64_t>{1, 3}, {2}), kGpu);
    CHECK_THROWS_AS(ops::cross_entropy_forward(logits, bad), std::out_of_range);
  }

  TEST_CASE("layer_norm_forward_and_backward_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      for (const Shape& shape : {Shape{4, 7}, Shape{3, 5, 768}, Shape{1000, 33}}) {
        int64_t cols = shape.back();
        Tensor x = random_tensor(shape, dtype, 22), g = random_tensor(shape, dtype, 23);
        Tensor w = random_tensor({cols}, dtype, 24), b = random_tensor({cols}, dtype, 25);
        compare(
            {x, g, w, b},
            [&](const std::vector<Tensor>& in) {
              ops::LayerNormForward forward = ops::layer_norm(in[0], {cols}, in[2], in[3], 1e-5);
              ops::LayerNormGrads grads =
                  ops::layer_norm_backward(in[1], in[0], {cols}, forward, in[2], true, true);
              return std::vector<Tensor>{forward.out, forward.mean, forward.rstd,
                                         grads.input, grads.weight, grads.bias};
            },
            "layer norm " + shape_str(shape) + " " + std::string(dtype_name(dtype)),
            dtype == DType::f32 ? 1e-5 : -1);
      }
    }
  }

  TEST_CASE("embedding_index_select_and_index_add_match_the_cpu_and_reject_bad_indices" *
            ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      Tensor weight = random_tensor({50, 24}, dtype, 26);
      std::vector<int64_t> picks;
      for (int i = 0; i < 60; ++i) picks.push_back((i * 17) % 50);
      Tensor indices = from_int64(picks, {6, 10});
      Tensor grad = random_tensor({6, 10, 24}, dtype, 27);
      compare(
          {weight, indices, grad},
          [&](const std::vector<Tensor>& in) {
            Tensor flat = ops::reshape(in[1], {60});
            Tensor source = random_tensor({3, 60, 4}, dtype, 28);
            Tensor x = random_tensor({3, 50, 4}, dtype, 29);
            return std::vector<Tensor>{ops::embedding(in[0], in[1]),
                                       ops::embedding_backward(in[2], in[1], 50, 17),
                                       ops::index_select(in[0], 0, flat),
                                       ops::index_add(ops::to_device(x, in[0].device()), 1, flat,
                                                      ops::to_device(source, in[0].device()))};
          },
          "embedding " + std::string(dtype_name(dtype)));
    }
    Tensor weight = zeros({5, 2}, {.device = kGpu});
    Tensor bad = ops::to_device(from_int64(std::vector<int64_t>{0, 5}, {2}), kGpu);
    CHECK_THROWS_AS(ops::embedding(weight, bad), std::out_of_range);
    CHECK_THROWS_AS(ops::index_select(weight, 0, bad), std::out_of_range);
  }

  TEST_CASE("max_and_average_pooling_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    Pool2dParams plain{.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
    Pool2dParams overlapping{.kernel_h = 3,
                             .kernel_w = 3,
                             .stride_h = 2,
                             .stride_w = 1,
                             .padding_h = 1,
                             .padding_w = 1,
                             .dilation_h = 1,
                             .dilation_w = 2,
                             .count_include_pad = false};
    for (DType dtype : kFloatDTypes) {
      for (const Pool2dParams& params : {plain, overlapping}) {
        Tensor x = random_tensor({2, 3, 9, 10}, dtype, 30);
        compare(
            {x},
            [&](const std::vector<Tensor>& in) {
              ops::MaxPoolForward max = ops::max_pool2d(in[0], params);
              Tensor avg = ops::avg_pool2d(in[0], params);
              Tensor grad_max =
                  ops::to_device(random_tensor(max.out.sizes(), dtype, 31), in[0].device());
              Tensor grad_avg =
                  ops::to_device(random_tensor(avg.sizes(), dtype, 32), in[0].device());
              return std::vector<Tensor>{
                  max.out, max.indices, avg,
                  ops::max_pool2d_backward(grad_max, max.indices, in[0].sizes()),
                  ops::avg_pool2d_backward(grad_avg, in[0].sizes(), params)};
            },
            "pooling " + std::string(dtype_name(dtype)));
      }
    }
  }

  TEST_CASE("matmul_through_cublas_matches_the_cpu_for_every_float_dtype" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      Tensor a = random_tensor({3, 33, 65}, dtype, 33), b = random_tensor({3, 65, 17}, dtype, 34);
      Tensor w = random_tensor({17, 65}, dtype, 35), bias = random_tensor({17}, dtype, 36);
      Tensor empty_k = random_tensor({4, 0}, dtype, 37),
             empty_k2 = random_tensor({0, 5}, dtype, 38);
      // Accumulation order differs (65 terms): relative bounds with a floor of 5% of the largest
      // result, since cancelling sums lose relative precision in any order.
      double rtol = dtype == DType::f32
                        ? 1e-5
                        : (dtype == DType::f64 ? 1e-10 : 4 * relative_tolerance(dtype));
      compare(
          {a, b, w, bias, empty_k, empty_k2},
          [&](const std::vector<Tensor>& in) {
            return std::vector<Tensor>{
                ops::matmul(in[0], in[1]),
                ops::matmul(ops::transpose(in[1], 1, 2), ops::transpose(in[0], 1, 2)),
                ops::linear(in[0], in[2], in[3]), ops::mm(in[4], in[5])};
          },
          "matmul " + std::string(dtype_name(dtype)), rtol, 5e-2);
    }
  }

  TEST_CASE("device_allocator_accounts_by_tag_and_enforces_its_limit" * ZT_NEEDS_CUDA_DEVICE) {
    MemoryAccounting& accounting = backend_for(kGpu).allocator(kGpu).accounting();
    int64_t before = accounting.stats().live(MemoryTag::grad);
    {
      Tensor grad = empty({1000}, {.device = kGpu, .tag = MemoryTag::grad});
      CHECK(accounting.stats().live(MemoryTag::grad) - before == 4000);
    }
    CHECK(accounting.stats().live(MemoryTag::grad) == before);
    int64_t live = accounting.stats().total_live_bytes;
    accounting.set_limit(live + 1024);
    CHECK_THROWS_AS(empty({1024}, {.device = kGpu}), OutOfMemoryError);
    accounting.set_limit(0);
    // CPU accounting is untouched by device allocations.
    CHECK(cpu_allocator().accounting().stats().live(MemoryTag::grad) >= 0);
  }

  TEST_CASE("conv2d_forward_and_backward_through_cudnn_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    struct ConvCase {
      Shape input, weight;
      Conv2dParams params;
      bool bias;
    };
    const ConvCase cases[] = {
        {{2, 4, 9, 10}, {6, 4, 3, 3}, {.padding_h = 1, .padding_w = 1}, true},
        // Strides, padding and dilation differing by axis, two groups, a non-square kernel.
        {{3, 6, 11, 9},
         {4, 3, 3, 2},
         {.stride_h = 2,
          .stride_w = 1,
          .padding_h = 2,
          .padding_w = 1,
          .dilation_h = 1,
          .dilation_w = 2,
          .groups = 2},
         true},
        {{2, 8, 5, 5}, {8, 1, 3, 3}, {.padding_h = 1, .padding_w = 1, .groups = 8}, false},
        {{1, 5, 7, 6}, {3, 5, 1, 1}, {}, false},
    };
    for (DType dtype : kFloatDTypes) {
      // Sums of up to a few hundred products in another order (and, for f32, possibly through
      // Winograd or FFT transforms, which cuDNN's heuristics may pick): relative bounds with a
      // floor of 1% of the largest result for sums that cancel. 16-bit outputs with a bias round
      // twice on the device (cuDNN's result, then the bias sum), once on the CPU.
      double rtol = dtype == DType::f32
                        ? 1e-4
                        : (dtype == DType::f64 ? 1e-10 : 4 * relative_tolerance(dtype));
      for (size_t index = 0; index < std::size(cases); ++index) {
        const ConvCase& conv = cases[index];
        uint32_t seed = uint32_t(40 + 4 * index);
        Tensor x = random_tensor(conv.input, dtype, seed);
        Tensor w = random_tensor(conv.weight, dtype, seed + 1);
        Tensor b = conv.bias ? random_tensor({conv.weight[0]}, dtype, seed + 2) : Tensor();
        std::vector<Tensor> inputs = {x, w};
        if (conv.bias) inputs.push_back(b);
        compare(
            inputs,
            [&](const std::vector<Tensor>& in) {
              Tensor out = ops::conv2d(in[0], in[1], conv.bias ? in[2] : Tensor(), conv.params);
              Tensor grad =
                  ops::to_device(random_tensor(out.sizes(), dtype, seed + 3), in[0].device());
              return std::vector<Tensor>{
                  out, ops::conv2d_backward_input(grad, in[1], in[0].sizes(), conv.params),
                  ops::conv2d_backward_weight(grad, in[0], in[1].sizes(), conv.params)};
            },
            "conv2d case " + std::to_string(index) + " " + std::string(dtype_name(dtype)), rtol,
            1e-2);
      }
    }
    // No images: the output is empty and the weight gradient is zero (cuDNN rejects 0 sizes).
    Tensor no_images = zeros({0, 2, 5, 5}, {.device = kGpu});
    Tensor weight = ones({3, 2, 3, 3}, {.device = kGpu});
    Tensor out = ops::conv2d(no_images, weight, Tensor(), Conv2dParams{});
    CHECK(out.numel() == 0);
    Tensor grad_weight = ops::conv2d_backward_weight(out, no_images, weight.sizes(), {});
    CHECK(grad_weight.to_vector() == std::vector<double>(size_t(weight.numel()), 0.0));
  }

}  // TEST_SUITE("cuda")
