// The fused rms_norm and rotary_embedding: finite-difference gradient checks in f64, values
// against plain loops written from the definitions (PyTorch's rms_norm with finfo(dtype).eps
// as the default; Hugging Face's apply_rotary_pos_emb with rotate_half), agreement with the
// composed references of autograd/transformer_reference.cpp, and errors that name the argument.
#include <cmath>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "core/ops/transformer.h"
#include "core/parallel.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/error_of.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

namespace {

// x / sqrt(mean(x^2) + eps) * w over rows of `cols`, in double.
std::vector<double> rms_norm_loop(const std::vector<double>& x, const std::vector<double>& w,
                                  int64_t cols, double eps) {
  std::vector<double> out(x.size());
  for (size_t row = 0; row < x.size() / size_t(cols); ++row) {
    double squares = 0;
    for (int64_t c = 0; c < cols; ++c) squares += x[row * cols + c] * x[row * cols + c];
    double scale = 1.0 / std::sqrt(squares / double(cols) + eps);
    for (int64_t c = 0; c < cols; ++c) {
      out[row * cols + c] = x[row * cols + c] * scale * (w.empty() ? 1.0 : w[size_t(c)]);
    }
  }
  return out;
}

// Hugging Face's Llama: inv_freq[i] = 1 / theta^(2i / D), emb = cat(freqs, freqs),
// q_embed = q * cos(emb) + rotate_half(q) * sin(emb), rotate_half(q) = cat(-q2, q1).
std::vector<double> hugging_face_rotary(const std::vector<double>& x, int64_t positions,
                                        int64_t dim, int64_t start, double theta) {
  std::vector<double> out(x.size());
  const int64_t half = dim / 2;
  for (size_t row = 0; row < x.size() / size_t(dim); ++row) {
    const int64_t t = start + int64_t(row) % positions;
    const double* q = &x[row * dim];
    for (int64_t j = 0; j < dim; ++j) {
      const double inv_freq = 1.0 / std::pow(theta, double(2 * (j % half)) / double(dim));
      const double angle = double(t) * inv_freq;
      const double rotated = j < half ? -q[j + half] : q[j - half];
      out[row * dim + j] = q[j] * std::cos(angle) + rotated * std::sin(angle);
    }
  }
  return out;
}

// |actual - expected| <= rtol * (|expected| + floor): the floor covers outputs that cancel.
void check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                 double rtol, const std::string& what, double floor = 1e-3) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    const double bound = rtol * (std::abs(expected[i]) + floor);
    if (!(std::abs(actual[i] - expected[i]) <= bound)) {
      CHECK_MESSAGE(false, what << " element " << i << ": " << actual[i] << " vs " << expected[i]);
      return;
    }
  }
}

Tensor random_values(const Shape& shape, uint64_t seed, DType dtype, double low = -2.0,
                     double high = 2.0) {
  Generator generator(seed);
  return uniform(shape, low, high, {.dtype = DType::f64}, &generator).to(dtype);
}

}  // namespace

TEST_CASE("gradcheck rms_norm with weight over the last dim") {
  check_gradients([](const Inputs& in) { return rms_norm(in[0], {5}, in[1]); },
                  {test::f64_leaf({2, 3, 5}, 401), test::f64_leaf({5}, 402, 0.5, 1.5)});
}

TEST_CASE("gradcheck rms_norm over two dims without weight on a transposed input, eps 0.1") {
  check_gradients(
      [](const Inputs& in) {
        return rms_norm(in[0], {3, 4}, Tensor(), 0.1);
      },
      {test::transposed_leaf({2, 3, 4}, 403)});
}

TEST_CASE("rms_norm equals a plain loop with finfo(dtype).eps as the default eps") {
  // Rows of 1e-4 make mean(x^2) = 1e-8, below f32's eps of 1.19e-7: a wrong default shows.
  for (DType dtype : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    const double tolerance = dtype == DType::f64   ? 1e-14
                             : dtype == DType::f32 ? 1e-6
                             : dtype == DType::f16 ? 2e-3
                                                   : 1.6e-2;
    Tensor x = random_values({3, 4, 16}, 404, dtype);
    Tensor tiny = mul(random_values({2, 16}, 405, dtype), 1e-4);
    Tensor w = random_values({16}, 406, dtype, 0.5, 1.5);
    for (const Tensor& input : {x, tiny}) {
      std::vector<double> expected =
          rms_norm_loop(input.to_vector(), w.to_vector(), 16, dtype_epsilon(dtype));
      check_close(rms_norm(input, {16}, w).to_vector(), expected, tolerance,
                  "rms_norm " + std::string(dtype_name(dtype)));
    }
  }
  CHECK(dtype_epsilon(DType::f32) == 1.1920928955078125e-07);
  CHECK(dtype_epsilon(DType::bf16) == 0.0078125);
}

TEST_CASE("rms_norm's fused values and gradients equal the composed reference within 1e-12") {
  Tensor x = test::f64_leaf({4, 6, 32}, 407), w = test::f64_leaf({32}, 408);
  Tensor x_ref = test::f64_leaf({4, 6, 32}, 407), w_ref = test::f64_leaf({32}, 408);
  Tensor g = random_values({4, 6, 32}, 409, DType::f64);
  Tensor out = rms_norm(x, {32}, w), out_ref = rms_norm_math(x_ref, {32}, w_ref);
  check_close(out.to_vector(), out_ref.to_vector(), 1e-12, "out");
  sum(mul(out, g)).backward();
  sum(mul(out_ref, g)).backward();
  check_close(x.grad().to_vector(), x_ref.grad().to_vector(), 1e-12, "grad x");
  check_close(w.grad().to_vector(), w_ref.grad().to_vector(), 1e-12, "grad weight");
}

TEST_CASE("rms_norm and rotary_embedding record one fused node each") {
  Tensor x = test::f64_leaf({3, 8}, 425), w = test::f64_leaf({8}, 426);
  CHECK(rms_norm(x, {8}, w).grad_fn()->name() == "RmsNormBackward");
  auto [cos, sin] = rotary_tables(0, 3, 8, 10000.0, {.dtype = DType::f64});
  CHECK(rotary_embedding(x, cos, sin).grad_fn()->name() == "RotaryEmbeddingBackward");
}

TEST_CASE("rms_norm's forward and both gradients are bitwise the same for 1 and 2 threads") {
  Tensor x = random_values({300, 200}, 427, DType::f32),
         g = random_values({300, 200}, 428, DType::f32);
  Tensor w = random_values({200}, 429, DType::f32);
  std::vector<std::vector<double>> results[2];
  const int previous = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    ops::RmsNormForward forward = ops::rms_norm(x, {200}, w, 1e-6);
    ops::RmsNormGrads grads = ops::rms_norm_backward(g, x, {200}, forward.rstd, w, true);
    results[threads - 1] = {forward.out.to_vector(), grads.input.to_vector(),
                            grads.weight.to_vector()};
  }
  set_num_threads(previous);
  CHECK(results[0] == results[1]);
}

TEST_CASE("rms_norm keeps only the input and one f32 rstd per row for 16-bit inputs") {
  Tensor x = random_values({5, 8}, 410, DType::bf16);
  ops::RmsNormForward forward = ops::rms_norm(x, {8}, Tensor(), 1e-6);
  CHECK(forward.rstd.dtype() == DType::f32);
  CHECK(forward.rstd.sizes() == Shape{5});
}

TEST_CASE("rms_norm rejects bad arguments, naming them") {
  Tensor x = random_values({2, 3}, 411, DType::f32);
  CHECK(error_of([&] { rms_norm(x, {4}); }) ==
        "rms_norm: normalized_shape [4] must be non-empty and match the last dims of input [2, 3]");
  CHECK(error_of([&] { rms_norm(x, {3}, random_values({4}, 412, DType::f32)); }) ==
        "rms_norm: weight has shape [4], expected [3]");
  CHECK(error_of([&] { rms_norm(x, {3}, random_values({3}, 413, DType::f64)); }) ==
        "rms_norm: weight has dtype f64, expected f32");
  CHECK(error_of([&] { rms_norm(x, {3}, Tensor(), 0.0); }) == "rms_norm: eps must be > 0, got 0");
  CHECK(error_of([&] {
          rms_norm(test::indices_tensor({1, 2}, {2}), {2});
        }) == "rms_norm: input has dtype i64, expected a floating dtype");
}

TEST_CASE("gradcheck rotary_embedding of x [2, 3, 4, 6]") {
  auto [cos, sin] = rotary_tables(2, 4, 6, 100.0, {.dtype = DType::f64});
  check_gradients([cos, sin](const Inputs& in) { return rotary_embedding(in[0], cos, sin); },
                  {test::f64_leaf({2, 3, 4, 6}, 414)});
}

TEST_CASE("gradcheck rotary_embedding of heads transposed from [B, T, H, D], tables with grad") {
  auto [cos, sin] = rotary_tables(0, 5, 4, 10000.0, {.dtype = DType::f64});
  check_gradients(
      [cos, sin](const Inputs& in) { return rotary_embedding(in[0].transpose(1, 2), cos, sin); },
      {test::f64_leaf({2, 5, 3, 4}, 415)});
  // Learned tables fall back to the composed form, which differentiates them too.
  check_gradients(
      [](const Inputs& in) { return rotary_embedding(in[0], in[1], in[2]); },
      {test::f64_leaf({2, 3, 4}, 416), test::f64_leaf({3, 2}, 417), test::f64_leaf({3, 2}, 418)});
}

TEST_CASE("rotary_embedding equals Hugging Face's apply_rotary_pos_emb written as a loop") {
  const int64_t positions = 7, dim = 8, start = 3;
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    const double tolerance = dtype == DType::f64 ? 1e-13 : dtype == DType::f32 ? 1e-5 : 3e-2;
    auto [cos, sin] = rotary_tables(start, positions, dim, 500.0, {.dtype = dtype});
    Tensor x = random_values({2, 3, positions, dim}, 419, dtype);
    std::vector<double> expected = hugging_face_rotary(x.to_vector(), positions, dim, start, 500.0);
    // 16-bit tables are rounded (relative 2^-8 for bf16), so outputs that cancel keep an
    // error of the inputs' size (|x| < 2): the floor of 1.
    check_close(rotary_embedding(x, cos, sin).to_vector(), expected, tolerance,
                "rotary " + std::string(dtype_name(dtype)), dtype == DType::bf16 ? 1.0 : 1e-3);
  }
}

TEST_CASE("rotary_embedding's fused values and gradients equal the composed reference") {
  auto [cos, sin] = rotary_tables(0, 9, 16, 10000.0, {.dtype = DType::f64});
  Tensor x = test::f64_leaf({2, 4, 9, 16}, 420), x_ref = test::f64_leaf({2, 4, 9, 16}, 420);
  Tensor g = random_values({2, 4, 9, 16}, 421, DType::f64);
  Tensor out = rotary_embedding(x, cos, sin), out_ref = rotary_embedding_math(x_ref, cos, sin);
  check_close(out.to_vector(), out_ref.to_vector(), 1e-14, "out");
  sum(mul(out, g)).backward();
  sum(mul(out_ref, g)).backward();
  check_close(x.grad().to_vector(), x_ref.grad().to_vector(), 1e-14, "grad x");
}

TEST_CASE("rotary_embedding rejects bad arguments, naming them") {
  auto [cos, sin] = rotary_tables(0, 4, 6);
  CHECK(error_of([&] {
          rotary_embedding(random_values({4, 5}, 422, DType::f32), cos, sin);
        }) == "rotary_embedding: x must be [..., T, D] with D even, got [4, 5]");
  CHECK(error_of([&] {
          rotary_embedding(random_values({3, 6}, 423, DType::f32), cos, sin);
        }) == "rotary_embedding: cos has shape [4, 3], expected [3, 3]");
  CHECK(error_of([&] {
          rotary_embedding(random_values({4, 6}, 424, DType::f32), cos, sin.to(DType::f64));
        }) == "rotary_embedding: sin has dtype f64, expected f32");
}
