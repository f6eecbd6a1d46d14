// Paged attention (reading the cache's blocks in place) against a plain double loop over the
// positions each query sees: two sequences interleaved so that their blocks alternate in the
// pool, grouped-query heads, several new tokens after a cached prefix, strided queries.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/factory.h"
#include "inference/paged_attention.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::inference;

namespace {

constexpr int64_t kHeads = 4, kKvHeads = 2, kDim = 5;

// softmax(q k^T / sqrt(D)) v for query head h over positions 0..visible-1 of `keys`/`values`
// [KV, S, D] (double), h reading KV head h / 2.
std::vector<double> plain_attention_row(const std::vector<double>& query,
                                        const std::vector<double>& keys,
                                        const std::vector<double>& values, int64_t positions,
                                        int64_t h, int64_t visible) {
  const int64_t kv = h / (kHeads / kKvHeads);
  std::vector<double> scores(static_cast<size_t>(visible), 0.0);
  double largest = -INFINITY, total = 0.0;
  for (int64_t s = 0; s < visible; ++s) {
    double dot = 0.0;
    for (int64_t d = 0; d < kDim; ++d)
      dot += query[size_t(d)] * keys[size_t((kv * positions + s) * kDim + d)];
    scores[size_t(s)] = dot / std::sqrt(double(kDim));
    largest = std::max(largest, scores[size_t(s)]);
  }
  for (double& score : scores) total += (score = std::exp(score - largest));
  std::vector<double> out(static_cast<size_t>(kDim), 0.0);
  for (int64_t s = 0; s < visible; ++s)
    for (int64_t d = 0; d < kDim; ++d)
      out[size_t(d)] += scores[size_t(s)] / total * values[size_t((kv * positions + s) * kDim + d)];
  return out;
}

// A cache of `dtype` (and queries of it, for a 16-bit one) against the plain loop in double
// over the values the cache and queries hold (16-bit ones rounded), within `tolerance`: the
// output's own rounding to `dtype`.
void check_paged_attention(DType dtype, double tolerance) {
  PagedKVCache cache(
      {.layers = 2, .kv_heads = kKvHeads, .head_dim = kDim, .block_positions = 3, .blocks = 20},
      dtype, Device::cpu());
  const int64_t first = cache.add_sequence(), second = cache.add_sequence();
  const int64_t cached = 7, fresh = 3, total = cached + fresh;
  Generator generator(11);
  // [KV, S, D] keys and values for both sequences, written a few positions at a time in turn,
  // so that their blocks interleave in the pool.
  const Tensor keys = randn({kKvHeads, total, kDim}, {}, &generator).to(dtype);
  const Tensor values = randn({kKvHeads, total, kDim}, {}, &generator).to(dtype);
  const Tensor other = randn({kKvHeads, total, kDim}, {}, &generator).to(dtype);
  for (int64_t done = 0; done < total;) {
    const int64_t count = std::min<int64_t>(2, total - done);
    for (int64_t sequence : {first, second}) {
      const int64_t start = cache.grow(sequence, count);
      const Tensor& k = sequence == first ? keys : other;
      cache.write(sequence, 1, start, k.narrow(1, done, count), values.narrow(1, done, count));
    }
    done += count;
  }
  CHECK(cache.blocks_of(first)[1] != cache.blocks_of(first)[0] + 1);  // really interleaved
  // Queries of positions 7..9 as a strided view, [1, H, T, D] from [1, T, H, D].
  const Tensor queries = randn({1, fresh, kHeads, kDim}, {}, &generator).to(dtype);
  const Tensor q = queries.transpose(1, 2);
  const Tensor out = paged_attention(q, cache, first, 1, cached);
  REQUIRE(out.sizes() == Shape{1, fresh, kHeads * kDim});
  CHECK(out.dtype() == dtype);
  const std::vector<double> got = out.to_vector(), all_queries = queries.to_vector();
  const std::vector<double> key_values = keys.to_vector(), value_values = values.to_vector();
  double worst = 0.0;
  for (int64_t t = 0; t < fresh; ++t)
    for (int64_t h = 0; h < kHeads; ++h) {
      const auto begin = all_queries.begin() + (t * kHeads + h) * kDim;
      const std::vector<double> expected =
          plain_attention_row(std::vector<double>(begin, begin + kDim), key_values, value_values,
                              total, h, cached + t + 1);
      for (int64_t d = 0; d < kDim; ++d) {
        worst = std::max(worst,
                         std::abs(got[size_t((t * kHeads + h) * kDim + d)] - expected[size_t(d)]));
      }
    }
  CHECK(worst < tolerance);
  CHECK(error_of([&] { paged_attention(q, cache, first, 1, cached + 1); }) ==
        "paged_attention: positions 8..10 of a sequence of 10 cached");
}

}  // namespace

TEST_CASE("paged attention reads the blocks in place and equals a plain loop (GQA, T > 1)") {
  check_paged_attention(DType::f32, 1e-5);
}

// A 16-bit model's cache is read where it lies too, each row widened to f32 as it is read.
TEST_CASE("paged attention reads f16 and bf16 caches in place and equals a plain loop") {
  check_paged_attention(DType::f16, 2e-3);  // outputs below 4 in size: half an f16 step is 2e-3
  check_paged_attention(DType::bf16, 1.6e-2);
}
