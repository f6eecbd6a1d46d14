// The fused scaled_dot_product_attention: f64 gradient checks (causal, boolean and float masks,
// L != S, broadcast batch dims, custom scale, several tiles), its forward and backward
// against the composed reference (scaled_dot_product_attention_math) and a plain loop, and
// the same bits on any thread count.
#include <cmath>
#include <limits>

#include "core/ops/view.h"
#include "core/parallel.h"
#include "tests/autograd/attention_reference.h"
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

namespace {

Tensor sdpa(const Inputs& in, const Tensor& mask = Tensor(), bool causal = false,
            std::optional<double> scale = std::nullopt) {
  return scaled_dot_product_attention(in[0], in[1], in[2], mask, 0.0, causal, scale);
}

Tensor random_values(const Shape& shape, uint64_t seed, DType dtype = DType::f32, double low = -1.0,
                     double high = 1.0) {
  Generator generator(seed);
  Tensor values = uniform(shape, low, high, {.dtype = DType::f64}, &generator).to(dtype);
  values.set_requires_grad(true);
  return values;
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

// Forward and the three gradients of the fused op and of the composed reference, on copies of
// the same inputs, within `tolerance`.
void check_against_math(const Shape& q_shape, const Shape& k_shape, const Shape& v_shape,
                        const Tensor& mask, bool causal, DType dtype, double tolerance,
                        std::optional<double> scale = std::nullopt) {
  Inputs fused = {random_values(q_shape, 1, dtype), random_values(k_shape, 2, dtype),
                  random_values(v_shape, 3, dtype)};
  Inputs math = {random_values(q_shape, 1, dtype), random_values(k_shape, 2, dtype),
                 random_values(v_shape, 3, dtype)};
  Tensor out = sdpa(fused, mask, causal, scale);
  Tensor expected =
      scaled_dot_product_attention_math(math[0], math[1], math[2], mask, 0.0, causal, scale);
  CHECK(max_abs_difference(out, expected) < tolerance);
  Tensor weights = random_values(out.sizes(), 4, dtype).detach();
  sum(mul(out, weights)).backward();
  sum(mul(expected, weights)).backward();
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(max_abs_difference(fused[i].grad(), math[i].grad()) < tolerance);
  }
}

Tensor u8_mask(const Shape& shape, uint64_t seed) {
  Generator generator(seed);
  return ops::gt(uniform(shape, 0.0, 1.0, {}, &generator), 0.3);
}

}  // namespace

TEST_CASE("gradcheck scaled_dot_product_attention: plain, custom scale, Ev != E") {
  check_gradients(
      [](const Inputs& in) { return sdpa(in); },
      {test::f64_leaf({2, 5, 4}, 1), test::f64_leaf({2, 6, 4}, 2), test::f64_leaf({2, 6, 3}, 3)});
  check_gradients([](const Inputs& in) { return sdpa(in, Tensor(), false, 0.7); },
                  {test::f64_leaf({1, 2, 4, 3}, 4), test::transposed_leaf({1, 2, 5, 3}, 5),
                   test::strided_leaf({1, 2, 5, 6}, 6)});
}

TEST_CASE("gradcheck scaled_dot_product_attention: causal with L == S, L > S and L < S") {
  for (auto [L, S] : {std::pair{5, 5}, std::pair{6, 4}, std::pair{3, 5}}) {
    CAPTURE(L);
    CAPTURE(S);
    check_gradients([](const Inputs& in) { return sdpa(in, Tensor(), true); },
                    {test::f64_leaf({1, 2, L, 4}, 7), test::f64_leaf({1, 2, S, 4}, 8),
                     test::f64_leaf({1, 2, S, 3}, 9)});
  }
}

TEST_CASE("gradcheck scaled_dot_product_attention: boolean [L, S] and float [B, 1, L, S] masks") {
  const Tensor keep = u8_mask({4, 6}, 10);
  check_gradients([keep](const Inputs& in) { return sdpa(in, keep); },
                  {test::f64_leaf({2, 3, 4, 5}, 11), test::f64_leaf({2, 3, 6, 5}, 12),
                   test::f64_leaf({2, 3, 6, 2}, 13)});
  Generator generator(14);
  const Tensor bias = uniform({2, 1, 4, 6}, -2.0, 2.0, {.dtype = DType::f64}, &generator);
  check_gradients([bias](const Inputs& in) { return sdpa(in, bias); },
                  {test::f64_leaf({2, 3, 4, 5}, 15), test::f64_leaf({2, 3, 6, 5}, 16),
                   test::f64_leaf({2, 3, 6, 2}, 17)});
}

TEST_CASE("gradcheck scaled_dot_product_attention: broadcast batch dims sum their gradients") {
  // k and v shared by the heads (one [S, E] per batch entry), q with its own heads.
  check_gradients([](const Inputs& in) { return sdpa(in, Tensor(), true); },
                  {test::f64_leaf({2, 3, 4, 4}, 18), test::f64_leaf({2, 1, 5, 4}, 19),
                   test::f64_leaf({5, 3}, 20)});
}

TEST_CASE("gradcheck scaled_dot_product_attention across several query and key tiles") {
  // 70 queries and 140 keys cross the kernels' 64-query and 128-key tiles.
  const Tensor keep = u8_mask({70, 140}, 21);
  check_gradients([keep](const Inputs& in) { return sdpa(in, keep); },
                  {test::f64_leaf({1, 70, 3}, 22), test::f64_leaf({1, 140, 3}, 23),
                   test::f64_leaf({1, 140, 2}, 24)});
  check_gradients([](const Inputs& in) { return sdpa(in, Tensor(), true); },
                  {test::f64_leaf({1, 140, 2}, 25), test::f64_leaf({1, 140, 2}, 26),
                   test::f64_leaf({1, 140, 2}, 27)});
}

TEST_CASE("fused attention equals the composed reference in f32 over many tiles, fwd and bwd") {
  check_against_math({2, 3, 150, 32}, {2, 3, 150, 32}, {2, 3, 150, 16}, Tensor(), true, DType::f32,
                     2e-5);
  check_against_math({2, 3, 100, 32}, {2, 3, 300, 32}, {2, 3, 300, 24}, u8_mask({100, 300}, 30),
                     false, DType::f32, 2e-5);
  Generator generator(31);
  const Tensor bias = uniform({2, 1, 130, 200}, -3.0, 3.0, {}, &generator);
  check_against_math({2, 2, 130, 16}, {1, 2, 200, 16}, {2, 1, 200, 16}, bias, false, DType::f32,
                     2e-5, 0.3);
  check_against_math({1, 2, 300, 16}, {1, 2, 70, 16}, {1, 2, 70, 16}, Tensor(), true, DType::f32,
                     2e-5);
}

TEST_CASE("fused attention in f16 and bf16 accumulates in f32, near the f32 reference") {
  for (auto [dtype, tolerance] : {std::pair{DType::f16, 4e-3}, std::pair{DType::bf16, 3e-2}}) {
    CAPTURE(dtype_name(dtype));
    Inputs low = {random_values({1, 2, 100, 32}, 40, dtype),
                  random_values({1, 2, 140, 32}, 41, dtype),
                  random_values({1, 2, 140, 32}, 42, dtype)};
    Inputs wide = {low[0].detach().to(DType::f32), low[1].detach().to(DType::f32),
                   low[2].detach().to(DType::f32)};
    for (Tensor& x : wide) x.set_requires_grad(true);
    Tensor out = sdpa(low, Tensor(), true);
    Tensor expected =
        scaled_dot_product_attention_math(wide[0], wide[1], wide[2], Tensor(), 0.0, true);
    CHECK(out.dtype() == dtype);
    CHECK(max_abs_difference(out.to(DType::f32), expected) < tolerance);
    sum(out).backward();
    sum(expected).backward();
    for (size_t i = 0; i < 3; ++i) {
      CHECK(low[i].grad().dtype() == dtype);
      CHECK(max_abs_difference(low[i].grad().to(DType::f32), wide[i].grad()) < 4 * tolerance);
    }
  }
}

TEST_CASE("fused attention equals a plain loop in f64: causal top-left with L > S, masks") {
  const test::LoopAttentionShape shape{4, 90, 70, 5, 3};
  Inputs in = {random_values({2, 2, 90, 5}, 50, DType::f64),
               random_values({2, 2, 70, 5}, 51, DType::f64),
               random_values({2, 2, 70, 3}, 52, DType::f64)};
  const auto q = in[0].to_vector(), k = in[1].to_vector(), v = in[2].to_vector();
  auto no_bias = [](int64_t, int64_t, int64_t) { return 0.0; };
  auto causal = [](int64_t, int64_t l, int64_t s) { return s <= l; };
  std::vector<double> expected = test::loop_attention(shape, q, k, v, 0.5, causal, no_bias);
  std::vector<double> actual = sdpa(in, Tensor(), true, 0.5).to_vector();
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) REQUIRE(std::abs(actual[i] - expected[i]) < 1e-12);

  // A [1, L, S] float mask shared by every batch entry and head, with a row of -inf.
  Generator generator(53);
  Tensor bias = uniform({1, 90, 70}, -1.0, 1.0, {.dtype = DType::f64}, &generator);
  ops::fill_(bias.narrow(1, 7, 1), -std::numeric_limits<double>::infinity());
  const std::vector<double> bias_values = bias.to_vector();
  auto all = [](int64_t, int64_t, int64_t) { return true; };
  auto bias_at = [&](int64_t, int64_t l, int64_t s) { return bias_values[size_t(l * 70 + s)]; };
  expected = test::loop_attention(shape, q, k, v, 1.0 / std::sqrt(5.0), all, bias_at);
  actual = sdpa(in, bias).to_vector();
  for (size_t i = 0; i < actual.size(); ++i) REQUIRE(std::abs(actual[i] - expected[i]) < 1e-12);
}

TEST_CASE("a fully masked row gives output 0 and no gradient, in the fused op and the reference") {
  // PyTorch 2.x returns zeros for such rows (its fused CPU kernel and its math path alike).
  Tensor keep = u8_mask({6, 9}, 60);
  ops::fill_(keep.narrow(0, 2, 1), 0.0);
  for (bool fused : {true, false}) {
    CAPTURE(fused);
    Inputs in = {random_values({2, 6, 4}, 61, DType::f64), random_values({2, 9, 4}, 62, DType::f64),
                 random_values({2, 9, 4}, 63, DType::f64)};
    Tensor out =
        fused ? sdpa(in, keep) : scaled_dot_product_attention_math(in[0], in[1], in[2], keep);
    sum(out).backward();
    std::vector<double> values = out.to_vector(), grad_q = in[0].grad().to_vector();
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t d = 0; d < 4; ++d) {
        CHECK(values[size_t((b * 6 + 2) * 4 + d)] == 0.0);
        CHECK(grad_q[size_t((b * 6 + 2) * 4 + d)] == 0.0);
      }
    }
    for (double value : values) CHECK(std::isfinite(value));
    for (double value : in[1].grad().to_vector()) CHECK(std::isfinite(value));
  }
}

TEST_CASE("fused attention gives the same bits on 1 and 2 threads, forward and backward") {
  const int threads_before = num_threads();
  std::vector<std::vector<double>> results[2];
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Inputs in = {random_values({1, 3, 150, 32}, 70), random_values({1, 3, 200, 32}, 71),
                 random_values({1, 3, 200, 16}, 72)};
    Tensor out = sdpa(in, Tensor(), true);
    sum(mul(out, random_values(out.sizes(), 73).detach())).backward();
    results[threads - 1] = {out.to_vector(), in[0].grad().to_vector(), in[1].grad().to_vector(),
                            in[2].grad().to_vector()};
  }
  set_num_threads(threads_before);
  for (size_t i = 0; i < 4; ++i) CHECK(results[0][i] == results[1][i]);
}

TEST_CASE("attention over no keys gives zeros and zero gradients, as PyTorch") {
  Inputs in = {random_values({2, 3, 4}, 80), zeros({2, 0, 4}), zeros({2, 0, 5})};
  Tensor out = sdpa(in);
  CHECK(out.sizes() == Shape{2, 3, 5});
  for (double value : out.to_vector()) CHECK(value == 0.0);
  sum(out).backward();
  for (double value : in[0].grad().to_vector()) CHECK(value == 0.0);
}
