// Paged attention on the CPU (inference/paged_attention.h): per (token, head), the scores
// against every visible cached key, a softmax, and the weighted sum of the values, each key
// and value row read in its block (a 16-bit row widened to f32 as it is read).
#include "inference/paged_attention.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "core/half.h"
#include "core/parallel.h"

namespace zt::inference {

namespace {

#if defined(__x86_64__) && !defined(__clang__)
// Cloned per instruction set: the dot products and the accumulation are over head_dim floats.
#define ZT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZT_VECTOR_CLONES
#endif

ZT_VECTOR_CLONES float dot(const float* a, const float* b, int64_t count) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < count; ++i) sum += a[i] * b[i];
  return sum;
}

ZT_VECTOR_CLONES void add_scaled(float* out, const float* row, float weight, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] += weight * row[i];
}

// A 16-bit cached row into f32, where it is read: no f32 copy of the whole context.
ZT_VECTOR_CLONES void widen_bf16(const uint16_t* row, float* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = bf16_bits_to_float(row[i]);
}

ZT_VECTOR_CLONES void widen_f16(const uint16_t* row, float* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = f16_bits_to_float(row[i]);
}

struct PagedView {
  const void* keys;    // the layer's pool [blocks, KV, P, D], f32, f16 or bf16
  const void* values;  // the same layout and dtype
  DType dtype;
  const std::vector<int64_t>* blocks;
  int64_t kv_heads, positions_per_block, head_dim;
  // Row of position s of KV head `head` in `pool`, as f32: in place for an f32 cache, else
  // widened into `scratch` (head_dim floats).
  const float* row(const void* pool, int64_t head, int64_t s, float* scratch) const {
    const int64_t block = (*blocks)[size_t(s / positions_per_block)];
    const int64_t at =
        ((block * kv_heads + head) * positions_per_block + s % positions_per_block) * head_dim;
    if (dtype == DType::f32) return static_cast<const float*>(pool) + at;
    const uint16_t* bits = static_cast<const uint16_t*>(pool) + at;
    if (dtype == DType::bf16) {
      widen_bf16(bits, scratch, head_dim);
    } else {
      widen_f16(bits, scratch, head_dim);
    }
    return scratch;
  }
};

// One query row against positions 0..visible-1 of one KV head: out = softmax(q k^T scale) v.
void attend_row(const PagedView& view, const float* query, int64_t head, int64_t visible,
                float scale, std::vector<float>& scores, float* out) {
  const int64_t D = view.head_dim;
  thread_local std::vector<float> widened;
  widened.resize(size_t(D));
  scores.resize(size_t(visible));
  float largest = -INFINITY;
  for (int64_t s = 0; s < visible; ++s) {
    scores[size_t(s)] = scale * dot(query, view.row(view.keys, head, s, widened.data()), D);
    largest = std::max(largest, scores[size_t(s)]);
  }
  float total = 0.0f;
  for (int64_t s = 0; s < visible; ++s) {
    scores[size_t(s)] = std::exp(scores[size_t(s)] - largest);
    total += scores[size_t(s)];
  }
  std::fill(out, out + D, 0.0f);
  for (int64_t s = 0; s < visible; ++s)
    add_scaled(out, view.row(view.values, head, s, widened.data()), scores[size_t(s)] / total, D);
}

}  // namespace

Tensor paged_attention(const Tensor& q, const PagedKVCache& cache, int64_t sequence, int64_t layer,
                       int64_t start) {
  const PagedKVCacheShape& shape = cache.shape();
  const DType cached = cache.key_pool(layer).dtype();
  const bool known_dtypes =
      (cached == DType::f32 || cached == DType::f16 || cached == DType::bf16) &&
      (q.dtype() == DType::f32 || q.dtype() == cached);
  if (q.dim() != 4 || q.size(0) != 1 || q.size(3) != shape.head_dim ||
      q.size(1) % shape.kv_heads != 0 || !known_dtypes || !q.device().is_cpu() ||
      !cache.key_pool(layer).device().is_cpu()) {
    throw std::invalid_argument(fmt::format(
        "paged_attention: expected q [1, H, T, {}] on the CPU with H a multiple of {}, f32 or "
        "the cache's dtype, and an f32, f16 or bf16 cache; got {} {} and a {} cache",
        shape.head_dim, shape.kv_heads, dtype_name(q.dtype()), shape_str(q.sizes()),
        dtype_name(cached)));
  }
  const int64_t H = q.size(1), T = q.size(2), D = q.size(3), groups = H / shape.kv_heads;
  if (start < 0 || start + T > cache.length(sequence)) {
    throw std::invalid_argument(
        fmt::format("paged_attention: positions {}..{} of a sequence of {} cached", start,
                    start + T - 1, cache.length(sequence)));
  }
  const PagedView view{cache.key_pool(layer).raw_data(),
                       cache.value_pool(layer).raw_data(),
                       cached,
                       &cache.blocks_of(sequence),
                       shape.kv_heads,
                       shape.block_positions,
                       D};
  // The few query rows in f32 (a 16-bit model's are widened once; the context stays put).
  const Tensor queries_f32 = q.dtype() == DType::f32 ? q : q.to(DType::f32);
  const float* queries = queries_f32.data_ptr<float>();
  const int64_t head_stride = queries_f32.stride(1), token_stride = queries_f32.stride(2),
                dim_stride = queries_f32.stride(3);
  Tensor out = empty({1, T, H * D}, TensorOptions().with_tag(MemoryTag::activation));
  float* out_rows = out.data_ptr<float>();
  const float scale = 1.0f / std::sqrt(float(D));
  parallel_for(0, T * H, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores, query;
    query.resize(size_t(D));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t = task / H, h = task % H;
      const float* q_row = queries + h * head_stride + t * token_stride;
      for (int64_t d = 0; d < D; ++d) query[size_t(d)] = q_row[d * dim_stride];
      attend_row(view, query.data(), h / groups, start + t + 1, scale, scores,
                 out_rows + t * H * D + h * D);
    }
  });
  return q.dtype() == DType::f32 ? out : out.to(q.dtype());
}

}  // namespace zt::inference
