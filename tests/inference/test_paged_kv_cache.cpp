// The paged KV cache: what interleaved sequences write across block boundaries reads back in
// position order; finished sequences return their blocks at once; a short pool is one line.
#include <doctest/doctest.h>

#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "inference/paged_kv_cache.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::inference;

namespace {

PagedKVCacheShape small_pool(int64_t blocks) {
  return {.layers = 2, .kv_heads = 2, .head_dim = 3, .block_positions = 4, .blocks = blocks};
}

// Largest |a - b|.
double max_difference(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

}  // namespace

TEST_CASE("paged KV cache: interleaved sequences read back every position they wrote, in order") {
  PagedKVCache cache(small_pool(8), DType::f32, Device::cpu());
  const int64_t a = cache.add_sequence(), b = cache.add_sequence();
  std::vector<Tensor> written_a, written_b;
  // Chunks that start and end inside blocks and cross their boundaries, the two sequences'
  // blocks interleaved in the pool.
  for (int64_t chunk : {3, 1, 5, 2, 1}) {
    for (int64_t sequence : {a, b}) {
      const int64_t start = cache.grow(sequence, chunk);
      for (int64_t layer = 0; layer < 2; ++layer) {
        Tensor k = randn({2, chunk, 3}), v = randn({2, chunk, 3});
        cache.write(sequence, layer, start, k, v);
        if (layer == 1) (sequence == a ? written_a : written_b).push_back(k);
      }
    }
  }
  CHECK(cache.length(a) == 12);
  const Tensor expected_a = cat(written_a, 1).unsqueeze(0),
               expected_b = cat(written_b, 1).unsqueeze(0);
  CHECK(max_difference(cache.read(a, 1, 12).first, expected_a) == 0.0);
  CHECK(max_difference(cache.read(b, 1, 12).first, expected_b) == 0.0);
  CHECK(max_difference(cache.read(a, 1, 7).first, expected_a.narrow(2, 0, 7)) == 0.0);
  CHECK(!cache.read(a, 0, 0).first.defined());
}

TEST_CASE("paged KV cache: a released sequence's blocks serve the next one at once") {
  PagedKVCache cache(small_pool(4), DType::f32, Device::cpu());
  const int64_t first = cache.add_sequence();
  cache.grow(first, 13);  // 4 blocks of 4 positions: the whole pool
  CHECK(cache.free_blocks() == 0);
  const int64_t second = cache.add_sequence();
  CHECK(error_of([&] { cache.grow(second, 1); }) ==
        "PagedKVCache: 1 more positions need 1 blocks of 4, the pool has 0 free");
  cache.release(first);
  CHECK(cache.free_blocks() == 4);
  CHECK(cache.grow(second, 16) == 0);
  CHECK(cache.free_blocks() == 0);
  CHECK(error_of([&] { cache.length(first); }) == "PagedKVCache: no sequence 0");
}
