// The CUDA backend's RMS norm and rotary embedding against the CPU backend's, forward and
// backward, for every float dtype and row lengths below, at and above one block's threads,
// and cross entropy over [N, C, d1, d2] through autograd.
// Skipped without a GPU (ZT_NEEDS_CUDA_DEVICE).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/ops/transformer.h"
#include "core/ops/view.h"
#include "tests/cuda/cuda_compare.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using cuda_test::compare;
using cuda_test::kFloatDTypes;
using cuda_test::random_tensor;

namespace {

// x's values in a non-contiguous view: the transpose of a contiguous copy of x^T.
Tensor strided_copy(const Tensor& x) {
  return ops::transpose(ops::contiguous(ops::transpose(x, 1, 2)), 1, 2);
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("rms_norm_forward_and_backward_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      for (const Shape& shape : {Shape{4, 7}, Shape{3, 5, 768}, Shape{1000, 33}}) {
        const int64_t cols = shape.back();
        Tensor x = random_tensor(shape, dtype, 31), g = random_tensor(shape, dtype, 32);
        Tensor w = random_tensor({cols}, dtype, 33);
        for (bool with_weight : {true, false}) {
          compare(
              {x, g, w},
              [&](const std::vector<Tensor>& in) {
                Tensor weight = with_weight ? in[2] : Tensor();
                ops::RmsNormForward forward = ops::rms_norm(in[0], {cols}, weight, 1e-6);
                ops::RmsNormGrads grads =
                    ops::rms_norm_backward(in[1], in[0], {cols}, forward.rstd, weight, with_weight);
                std::vector<Tensor> outputs{forward.out, forward.rstd, grads.input};
                if (with_weight) outputs.push_back(grads.weight);
                return outputs;
              },
              "rms norm " + shape_str(shape) + " " + std::string(dtype_name(dtype)) +
                  (with_weight ? " with weight" : ""),
              dtype == DType::f32 ? 1e-4 : -1);
        }
      }
    }
  }

  TEST_CASE("rotary_embedding_and_its_inverse_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    for (DType dtype : kFloatDTypes) {
      auto [cos, sin] = rotary_tables(5, 37, 64, 10000.0, {.dtype = dtype});
      Tensor x = random_tensor({2, 3, 37, 64}, dtype, 34);
      compare(
          {x, cos, sin},
          [&](const std::vector<Tensor>& in) {
            return std::vector<Tensor>{ops::rotary_embedding(in[0], in[1], in[2]),
                                       ops::rotary_embedding(in[0], in[1], in[2], true),
                                       ops::rotary_embedding(strided_copy(in[0]), in[1], in[2])};
          },
          "rotary " + std::string(dtype_name(dtype)));
    }
  }

  TEST_CASE("cross_entropy_over_extra_dims_and_its_gradient_match_the_cpu" * ZT_NEEDS_CUDA_DEVICE) {
    std::vector<int64_t> labels;
    for (int i = 0; i < 30; ++i) labels.push_back(i % 7 == 3 ? -100 : (i * 5) % 7);
    Tensor target = from_int64(labels, {3, 5, 2});
    for (DType dtype : kFloatDTypes) {
      Tensor logits = random_tensor({3, 7, 5, 2}, dtype, 35, -4, 4);
      compare(
          {logits, target},
          [&](const std::vector<Tensor>& in) {
            Tensor x = in[0].clone();
            x.set_requires_grad(true);
            Tensor losses = cross_entropy(x, in[1], -100, 0.1, Reduction::none);
            Tensor loss = cross_entropy(x, in[1], -100, 0.1);
            loss.backward();
            return std::vector<Tensor>{losses.detach(), loss.detach(), x.grad()};
          },
          "cross entropy over [N, C, d1, d2] " + std::string(dtype_name(dtype)));
    }
  }
}
