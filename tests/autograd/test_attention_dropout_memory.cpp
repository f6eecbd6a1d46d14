// The fused attention's dropout (the mask regenerated from the generator's counters equals the
// one the composed reference draws and stores), its memory (forward + backward peak through
// the allocator's accounting grows linearly in T, the reference's quadratically), and its
// errors, each naming the argument.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "tests/error_of.h"

using namespace zt;

namespace {

Tensor leaf(const Shape& shape, uint64_t seed, DType dtype = DType::f32) {
  Generator generator(seed);
  Tensor values = uniform(shape, -1.0, 1.0, {.dtype = dtype}, &generator);
  values.set_requires_grad(true);
  return values;
}

struct DropoutRun {
  std::vector<double> out, grad_q, grad_k, grad_v;
  uint64_t offset_after = 0;
};

DropoutRun run_dropout(bool fused, uint64_t seed, DType dtype, bool causal) {
  std::vector<Tensor> in = {leaf({2, 2, 90, 8}, 1, dtype), leaf({2, 2, 150, 8}, 2, dtype),
                            leaf({2, 2, 150, 6}, 3, dtype)};
  Generator generator(seed);
  auto op = fused ? scaled_dot_product_attention : scaled_dot_product_attention_math;
  Tensor out = op(in[0], in[1], in[2], Tensor(), 0.4, causal, std::nullopt, &generator);
  sum(mul(out, leaf(out.sizes(), 4, dtype).detach())).backward();
  return {out.to_vector(), in[0].grad().to_vector(), in[1].grad().to_vector(),
          in[2].grad().to_vector(), generator.offset()};
}

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tolerance) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  CHECK(worst < tolerance);
}

// Bytes allocated at the peak of one forward + backward above what was live before, at T.
int64_t attention_peak_bytes(bool fused, int64_t T) {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  std::vector<Tensor> in = {leaf({1, 2, T, 32}, 5), leaf({1, 2, T, 32}, 6), leaf({1, 2, T, 32}, 7)};
  const int64_t live_before = accounting.stats().total_live_bytes;
  accounting.reset_peak();
  {
    auto op = fused ? scaled_dot_product_attention : scaled_dot_product_attention_math;
    Tensor out = op(in[0], in[1], in[2], Tensor(), 0.0, true, std::nullopt, nullptr);
    sum(out).backward();
  }
  return accounting.stats().total_peak_bytes - live_before;
}

}  // namespace

TEST_CASE("attention dropout: the fused kernel regenerates the reference's stored mask") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (bool causal : {false, true}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(causal);
      const double tolerance = dtype == DType::f64 ? 1e-12 : 3e-5;
      DropoutRun fused = run_dropout(true, 77, dtype, causal);
      DropoutRun math = run_dropout(false, 77, dtype, causal);
      check_close(fused.out, math.out, tolerance);
      check_close(fused.grad_q, math.grad_q, tolerance);
      check_close(fused.grad_k, math.grad_k, tolerance);
      check_close(fused.grad_v, math.grad_v, tolerance);
      // Both reserve one counter per weight of the [2, 2, 90, 150] weights.
      CHECK(fused.offset_after == 2 * 2 * 90 * 150);
      CHECK(math.offset_after == fused.offset_after);
    }
  }
}

TEST_CASE("attention dropout is reproducible with a seed and changes with it") {
  DropoutRun first = run_dropout(true, 5, DType::f32, true);
  DropoutRun again = run_dropout(true, 5, DType::f32, true);
  DropoutRun other = run_dropout(true, 6, DType::f32, true);
  CHECK(first.out == again.out);
  CHECK(first.grad_k == again.grad_k);
  CHECK(first.out != other.out);
  // About 40% of the weights dropped: far from the output without dropout.
  std::vector<Tensor> in = {leaf({2, 2, 90, 8}, 1), leaf({2, 2, 150, 8}, 2),
                            leaf({2, 2, 150, 6}, 3)};
  std::vector<double> plain =
      scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), 0.0, true).to_vector();
  double difference = 0.0;
  for (size_t i = 0; i < plain.size(); ++i) difference += std::abs(plain[i] - first.out[i]);
  CHECK(difference / double(plain.size()) > 0.05);
}

TEST_CASE("attention memory: fused forward + backward peak grows as T, the reference's as T^2") {
  int64_t fused[3], math[3];
  const int64_t lengths[3] = {256, 512, 1024};
  for (int i = 0; i < 3; ++i) {
    fused[i] = attention_peak_bytes(true, lengths[i]);
    math[i] = attention_peak_bytes(false, lengths[i]);
  }
  for (int i = 1; i < 3; ++i) {
    CAPTURE(lengths[i]);
    const double fused_ratio = double(fused[i]) / double(fused[i - 1]);
    const double math_ratio = double(math[i]) / double(math[i - 1]);
    CAPTURE(fused_ratio);
    CAPTURE(math_ratio);
    CHECK(fused_ratio > 1.8);
    CHECK(fused_ratio < 2.2);
    CHECK(math_ratio > 3.5);
  }
  // At T = 1024 the [2, T, T] weights alone are 8 MiB; the fused op never holds one.
  CHECK(fused[2] < 2 * 1024 * 1024);
  MESSAGE("peak bytes at T = 256, 512, 1024: fused ", fused[0], ", ", fused[1], ", ", fused[2],
          "; composed ", math[0], ", ", math[1], ", ", math[2]);
}

TEST_CASE("attention errors name the argument and what was expected") {
  const Tensor q = leaf({2, 4, 8}, 1), k = leaf({2, 5, 8}, 2), v = leaf({2, 5, 3}, 3);
  auto call = [](const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& mask = Tensor(),
                 double p = 0.0, bool causal = false) {
    return error_of([&] { scaled_dot_product_attention(a, b, c, mask, p, causal); });
  };
  CHECK(call(q, leaf({2, 5, 7}, 4), v) ==
        "scaled_dot_product_attention: key [2, 5, 7] should end in query's embedding size 8");
  CHECK(call(q, k, leaf({2, 6, 3}, 5)) ==
        "scaled_dot_product_attention: value [2, 6, 3] should have key's sequence length 5 in "
        "dim -2");
  CHECK(call(q, k.to(DType::f64), v) ==
        "scaled_dot_product_attention: key has dtype f64, expected f32");
  CHECK(call(q, leaf({3, 5, 8}, 6), v) ==
        "scaled_dot_product_attention: the batch dims of query [2, 4, 8], key [3, 5, 8] and "
        "value [2, 5, 3] do not broadcast");
  CHECK(call(q, k, v, ones({4, 4})) ==
        "scaled_dot_product_attention: attn_mask [4, 4] does not broadcast to [2, 4, 5]");
  CHECK(call(q, k, v, ones({4, 5}, {.dtype = DType::i64})) ==
        "scaled_dot_product_attention: attn_mask has dtype i64, expected u8 or f32");
  CHECK(call(q, k, v, ones({4, 5}), 0.0, true) ==
        "scaled_dot_product_attention: give attn_mask or is_causal, not both");
  CHECK(call(q, k, v, Tensor(), 1.0) ==
        "scaled_dot_product_attention: dropout_p must be in [0, 1), got 1");
  CHECK(call(leaf({4}, 7), k, v) ==
        "scaled_dot_product_attention: query, key and value need at least 2 dims ([..., L, E], "
        "[..., S, E], [..., S, Ev]), got [4], [2, 5, 8] and [2, 5, 3]");
  CHECK(call(ones({2, 4, 8}, {.dtype = DType::i64}), k, v) ==
        "scaled_dot_product_attention: query has dtype i64, expected a floating dtype");
}
