// The CUDA backend against the CPU backend, op by op, on random shapes (ggml's
// test-backend-ops idea): each case builds the same inputs on both devices, runs the op, and
// compares the CUDA result, copied back, with the CPU's. Tolerances scale with the dtype (f32
// 1e-5 relative); casts, random draws and dropout masks must be bitwise equal. Without a GPU
// every case but the first is skipped (ZT_NEEDS_CUDA_DEVICE). The neural-network ops (softmax,
// cross entropy, layer norm, embedding, pooling, GEMM, conv): tests/cuda/test_cuda_nn_ops.cpp.
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

}  // TEST_SUITE("cuda")
