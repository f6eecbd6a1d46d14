// The CUDA backend against the CPU backend, op by op, on random shapes (ggml's
// test-backend-ops idea): each case builds the same inputs on both devices, runs the op, and
// compares the CUDA result, copied back, with the CPU's. Tolerances scale with the dtype (f32
// 1e-5 relative); casts, random draws and dropout masks must be bitwise equal. Without a GPU
// every case but the first is skipped (ZT_NEEDS_CUDA_DEVICE).
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
#include "tests/cuda/cuda_test_util.h"

using namespace zt;

namespace {

using cuda_test::kGpu;
constexpr DType kFloatDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

double relative_tolerance(DType dtype) {
  switch (dtype) {
    case DType::f64:
      return 1e-10;
    case DType::f32:
      return 1e-5;
    case DType::f16:
      return 2e-3;
    case DType::bf16:
      return 1.6e-2;
    default:
      return 0.0;
  }
}

Tensor random_tensor(const Shape& shape, DType dtype, uint32_t seed, double low = -2.0,
                     double high = 2.0) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(size_t(shape_numel(shape)));
  for (double& value : values) value = distribution(engine);
  return from_values(values, shape, {.dtype = dtype});
}

// |gpu - cpu| <= rtol * (|cpu| + floor * max|cpu|): relative, with a floor for values that
// cancel to near zero (sums of many terms: GEMM passes a larger floor).
void check_matches(const Tensor& gpu, const Tensor& cpu, const std::string& what,
                   double rtol_override = -1, double floor_fraction = 1e-3) {
  REQUIRE_MESSAGE(gpu.device() == kGpu, what);
  REQUIRE_MESSAGE(gpu.sizes() == cpu.sizes(), what);
  REQUIRE_MESSAGE(gpu.dtype() == cpu.dtype(), what);
  std::vector<double> actual = gpu.to_vector(), expected = cpu.to_vector();
  double rtol = rtol_override >= 0 ? rtol_override : relative_tolerance(cpu.dtype());
  double scale = 0;
  for (double value : expected) {
    if (std::isfinite(value)) scale = std::max(scale, std::abs(value));
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    bool same = actual[i] == expected[i] || (std::isnan(actual[i]) && std::isnan(expected[i]));
    double bound = rtol * (std::abs(expected[i]) + floor_fraction * scale);
    if (!same && !(std::abs(actual[i] - expected[i]) <= bound)) {
      CHECK_MESSAGE(false, what << " element " << i << ": cuda " << actual[i] << ", cpu "
                                << expected[i] << " (bound " << bound << ")");
      return;
    }
  }
}

// Runs `op` on copies of `inputs` on each device and compares every output.
void compare(const std::vector<Tensor>& inputs,
             const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& op,
             const std::string& what, double rtol_override = -1, double floor_fraction = 1e-3) {
  std::vector<Tensor> on_gpu;
  for (const Tensor& input : inputs) on_gpu.push_back(ops::to_device(input, kGpu));
  std::vector<Tensor> expected = op(inputs), actual = op(on_gpu);
  REQUIRE(expected.size() == actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    check_matches(actual[i], expected[i], what + " output " + std::to_string(i), rtol_override,
                  floor_fraction);
  }
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("cuda_backend_is_registered_and_a_missing_device_fails_with_its_name") {
    CHECK(cuda_device_count() >= 0);
    int missing = cuda_device_count();
    try {
      (void)empty({4}, {.device = Device::cuda(missing)});
      FAIL("allocating on a missing device did not throw");
    } catch (const std::runtime_error& error) {
      CHECK(std::string(error.what()).find("cuda:" + std::to_string(missing)) != std::string::npos);
    }
  }

  TEST_CASE("copy_casts_between_all_dtypes_bitwise_like_the_cpu_on_strided_views" *
            ZT_NEEDS_CUDA_DEVICE) {
    for (DType from : kAllDTypes) {
      Tensor source = random_tensor({5, 7}, from, 1, -300.0, 300.0);
      for (DType to : kAllDTypes) {
        compare(
            {source},
            [&](const std::vector<Tensor>& in) {
              return std::vector<Tensor>{ops::to_dtype(in[0], to),
                                         ops::to_dtype(ops::transpose(in[0], 0, 1), to)};
            },
            std::string("copy ") + std::string(dtype_name(from)) + " -> " +
                std::string(dtype_name(to)),
            0.0);
      }
    }
  }

  TEST_CASE("host_device_round_trip_keeps_values_tags_and_views" * ZT_NEEDS_CUDA_DEVICE) {
    Tensor host = random_tensor({3, 4, 5}, DType::f32, 2);
    Tensor device = ops::to_device(ops::permute(host, {2, 0, 1}), kGpu);
    CHECK(device.device() == kGpu);
    Tensor back = ops::to_device(device, Device::cpu());
    CHECK(back.to_vector() == ops::contiguous(ops::permute(host, {2, 0, 1})).to_vector());
    Tensor target = zeros({5, 3, 4}, {.dtype = DType::f16, .device = kGpu});
    ops::copy_(target, ops::permute(host, {2, 0, 1}));  // host -> device with a cast
    compare(
        {host},
        [](const std::vector<Tensor>& in) {
          return std::vector<Tensor>{ops::to_dtype(ops::permute(in[0], {2, 0, 1}), DType::f16)};
        },
        "permuted cast");
    CHECK(target.to_vector() ==
          ops::to_dtype(ops::permute(host, {2, 0, 1}), DType::f16).to_vector());
  }

  TEST_CASE("fill_and_arange_match_the_cpu_for_every_dtype" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kAllDTypes) {
      Tensor gpu_full = full({33}, 3.7, {.dtype = dtype, .device = kGpu});
      CHECK(gpu_full.to_vector() == full({33}, 3.7, {.dtype = dtype}).to_vector());
      Tensor gpu_range = arange(-5, 7, 0.3, {.dtype = dtype, .device = kGpu});
      CHECK(gpu_range.to_vector() == arange(-5, 7, 0.3, {.dtype = dtype}).to_vector());
    }
  }

  TEST_CASE("uniform_and_dropout_are_bitwise_equal_to_the_cpu_and_normal_within_ulps" *
            ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      Generator cpu_gen(1234), gpu_gen(1234);
      Tensor cpu_u = uniform({1001}, -3.0, 5.0, {.dtype = dtype}, &cpu_gen);
      Tensor gpu_u = uniform({1001}, -3.0, 5.0, {.dtype = dtype, .device = kGpu}, &gpu_gen);
      CHECK_MESSAGE(gpu_u.to_vector() == cpu_u.to_vector(), dtype_name(dtype));
      Tensor cpu_n = normal({1001}, 1.0, 2.0, {.dtype = dtype}, &cpu_gen);
      Tensor gpu_n = normal({1001}, 1.0, 2.0, {.dtype = dtype, .device = kGpu}, &gpu_gen);
      // CUDA's double log and cos may differ from the host's by an ulp, which moves a draw by
      // ~2e-16 absolute: a floor of 5% of the largest draw keeps that inside the bound where
      // 1 + 2z nearly cancels.
      check_matches(gpu_n, cpu_n, "normal", dtype == DType::f64 ? 1e-14 : relative_tolerance(dtype),
                    5e-2);
      Tensor input = random_tensor({7, 131}, dtype, 3);
      ops::DropoutForward cpu_d = ops::dropout(input, 0.3, &cpu_gen);
      ops::DropoutForward gpu_d = ops::dropout(ops::to_device(input, kGpu), 0.3, &gpu_gen);
      CHECK(gpu_d.mask.to_vector() == cpu_d.mask.to_vector());
      CHECK(gpu_d.out.to_vector() == cpu_d.out.to_vector());
      Tensor grad = random_tensor({7, 131}, dtype, 4);
      CHECK(ops::dropout_backward(ops::to_device(grad, kGpu), gpu_d.mask, 0.3).to_vector() ==
            ops::dropout_backward(grad, cpu_d.mask, 0.3).to_vector());
    }
  }

  TEST_CASE("unary_ops_match_the_cpu_on_contiguous_and_strided_inputs" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      Tensor positive = random_tensor({6, 37}, dtype, 5, 0.1, 3.0);
      Tensor mixed = random_tensor({6, 37}, dtype, 6);
      for (int code = 0; code < kUnaryOpCount; ++code) {  // every op of core/unary_ops.h
        UnaryOp op = UnaryOp(code);
        bool needs_positive = op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt;
        compare(
            {needs_positive ? positive : mixed},
            [&](const std::vector<Tensor>& in) {
              return std::vector<Tensor>{ops::unary(op, in[0]),
                                         ops::unary(op, ops::transpose(in[0], 0, 1))};
            },
            std::string(unary_op_name(op)) + " " + std::string(dtype_name(dtype)));
      }
    }
    for (DType dtype : {DType::i32, DType::i64, DType::u8}) {
      Tensor values = random_tensor({5, 9}, dtype, 7, dtype == DType::u8 ? 0.0 : -50.0, 50.0);
      for (int code = 0; code < kUnaryOpCount; ++code) {
        UnaryOp op = UnaryOp(code);
        if (!unary_accepts_integers(op)) continue;
        compare(
            {values},
            [&](const std::vector<Tensor>& in) {
              return std::vector<Tensor>{ops::unary(op, in[0])};
            },
            "integer " + std::string(unary_op_name(op)), 0.0);
      }
    }
  }

  TEST_CASE("binary_ops_match_the_cpu_with_broadcasting_and_views" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      Tensor a = random_tensor({3, 1, 45}, dtype, 8, 0.2, 2.0);
      Tensor b = random_tensor({4, 45}, dtype, 9, 0.2, 2.0);
      Tensor c = random_tensor({45, 4}, dtype, 10, -1.0, 1.0);
      for (int code = 0; code < kBinaryOpCount; ++code) {
        BinaryOp op = BinaryOp(code);
        compare(
            {a, b, c},
            [&](const std::vector<Tensor>& in) {
              return std::vector<Tensor>{ops::binary(op, in[0], in[1]),
                                         ops::binary(op, in[1], ops::transpose(in[2], 0, 1)),
                                         ops::binary(op, in[1], ops::scalar_like(0.75, in[1]))};
            },
            std::string(binary_op_name(op)) + " " + std::string(dtype_name(dtype)));
      }
    }
    Tensor ints = random_tensor({8, 16}, DType::i64, 11, -100, 100);
    Tensor other = random_tensor({16}, DType::i64, 12, -100, 100);
    for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::maximum,
                        BinaryOp::minimum, BinaryOp::lt, BinaryOp::eq}) {
      compare(
          {ints, other},
          [&](const std::vector<Tensor>& in) {
            return std::vector<Tensor>{ops::binary(op, in[0], in[1])};
          },
          "integer binary " + std::to_string(int(op)), 0.0);
    }
  }

  TEST_CASE("where_and_in_place_updates_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    Tensor a = random_tensor({9, 13}, DType::f32, 13), b = random_tensor({13}, DType::f32, 14);
    compare(
        {a, b},
        [](const std::vector<Tensor>& in) {
          Tensor condition = ops::gt(in[0], 0.0);
          Tensor updated = ops::clone(in[0]);
          ops::add_(updated, in[1]);
          ops::mul_(updated, 0.5);
          return std::vector<Tensor>{ops::where(condition, in[0], in[1]), updated};
        },
        "where");
  }

  TEST_CASE("reductions_match_the_cpu_on_short_long_and_split_rows" * ZT_NEEDS_CUDA_DEVICE) {
    const ReduceOp all_ops[] = {ReduceOp::sum,    ReduceOp::mean,   ReduceOp::max, ReduceOp::min,
                                ReduceOp::argmax, ReduceOp::argmin, ReduceOp::var};
    const Shape shapes[] = {{7, 5}, {3, 1000}, {2, 300001}, {40, 3, 17}};
    for (DType dtype : kFloatDTypes) {
      for (const Shape& shape : shapes) {
        Tensor x = random_tensor(shape, dtype, 15);
        for (ReduceOp op : all_ops) {
          compare(
              {x},
              [&](const std::vector<Tensor>& in) {
                std::vector<Tensor> out{ops::reduce(op, in[0], {-1}, false, 1)};
                if (op != ReduceOp::argmax && op != ReduceOp::argmin) {
                  out.push_back(ops::reduce(op, in[0], {0}, false, 1));
                  out.push_back(ops::reduce(op, in[0], {}, false, 0));
                }
                return out;
              },
              "reduce " + std::to_string(int(op)) + " " + shape_str(shape) + " " +
                  std::string(dtype_name(dtype)),
              dtype == DType::f32 ? 1e-5 : -1);
        }
      }
    }
    Tensor ints = random_tensor({6, 50}, DType::i32, 16, -1000, 1000);
    compare(
        {ints},
        [](const std::vector<Tensor>& in) {
          return std::vector<Tensor>{ops::sum(in[0], {1}), ops::amax(in[0], {0}),
                                     ops::argmin(in[0], 1)};
        },
        "integer reductions", 0.0);
  }

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
