// CPU fused optimizer updates: the scalar path of the element arithmetic
// (core/optimizer_arithmetic.h), the choice among the scalar, AVX2 and AVX-512 paths
// (core/cpu/optimizer_paths.h), the parallel driver over a list of ranges, and the backend's
// multi-tensor adam_update and sgd_update on top of it. Each range is cut into fixed chunks of
// kUpdateGrain elements and the chunks of all ranges run in parallel; the updates are
// elementwise, so the cut changes nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/optimizer_paths.h"
#include "core/cpu/scalar_arithmetic.h"
#include "core/half.h"
#include "core/host_optimizer_kernels.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

constexpr int64_t kUpdateGrain = 1 << 15;

void adam_range(const AdamRange& r, const AdamStepConstants& k) {
#if defined(__x86_64__)
  static const bool avx512 = has_avx512(), avx2 = has_avx2_fma();
  if (avx512) return adam_range_avx512(r, k);
  if (avx2) return adam_range_avx2(r, k);
#endif
  adam_range_scalar(r, k);
}

void sgd_range(const SgdRange& r, const SgdStepConstants& k) {
#if defined(__x86_64__)
  static const bool avx512 = has_avx512(), avx2 = has_avx2_fma();
  if (avx512) return sgd_range_avx512(r, k);
  if (avx2) return sgd_range_avx2(r, k);
#endif
  sgd_range_scalar(r, k);
}

void check_adam_range(const AdamRange& r, size_t index) {
  const bool half_side = r.grads16 != nullptr || r.params16 != nullptr;
  if (r.count > 0 && r.grads == nullptr && r.grads16 == nullptr)
    throw std::invalid_argument(
        fmt::format("adam_update_ranges: range {} has neither grads nor grads16", index));
  if (half_side && r.half_dtype != DType::bf16 && r.half_dtype != DType::f16)
    throw std::invalid_argument(
        fmt::format("adam_update_ranges: range {} has a 16-bit side of dtype {}; expected bf16 "
                    "or f16",
                    index, dtype_name(r.half_dtype)));
}

// ---- the parallel driver -------------------------------------------------------------------

// Runs update(piece) over every chunk of kUpdateGrain elements of every range, in parallel.
template <typename Range, typename Update>
void update_in_chunks(std::span<const Range> ranges, const Update& update) {
  struct Chunk {
    size_t range;
    int64_t begin;
  };
  std::vector<Chunk> chunks;
  for (size_t r = 0; r < ranges.size(); ++r) {
    for (int64_t begin = 0; begin < ranges[r].count; begin += kUpdateGrain)
      chunks.push_back({r, begin});
  }
  parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const Chunk& chunk = chunks[size_t(c)];
      const Range& range = ranges[chunk.range];
      int64_t count = std::min(kUpdateGrain, range.count - chunk.begin);
      update(range, chunk.begin, count);
    }
  });
}

}  // namespace

void adam_range_scalar(const AdamRange& r, const AdamStepConstants& k) {
  const bool f16 = r.half_dtype == DType::f16;
  for (int64_t i = 0; i < r.count; ++i) {
    float grad = r.grads16 == nullptr ? r.grads[i]
                 : f16                ? f16_bits_to_float(r.grads16[i])
                                      : bf16_bits_to_float(r.grads16[i]);
    adam_element<ScalarArithmetic>(r.params[i], grad, r.exp_avg[i], r.exp_avg_sq[i], k);
    if (r.params16 != nullptr)
      r.params16[i] = f16 ? float_to_f16_bits(r.params[i]) : float_to_bf16_bits(r.params[i]);
  }
}

void sgd_range_scalar(const SgdRange& r, const SgdStepConstants& k) {
  float unused = 0.0f;
  for (int64_t i = 0; i < r.count; ++i) {
    sgd_element<ScalarArithmetic>(r.params[i], r.grads[i],
                                  k.use_momentum ? r.momentum_buffer[i] : unused, k);
  }
}

#if defined(__x86_64__)
bool has_avx2_fma() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool has_avx512() {
  return __builtin_cpu_supports("avx512f");
}
#else
bool has_avx2_fma() {
  return false;
}
bool has_avx512() {
  return false;
}
#endif

void adam_update_ranges(std::span<const AdamRange> ranges, const AdamStepConstants& k) {
  for (size_t r = 0; r < ranges.size(); ++r) check_adam_range(ranges[r], r);
  update_in_chunks(ranges, [&](const AdamRange& r, int64_t begin, int64_t count) {
    AdamRange piece = r;
    piece.params += begin;
    piece.exp_avg += begin;
    piece.exp_avg_sq += begin;
    piece.count = count;
    if (r.grads16 != nullptr)
      piece.grads16 += begin;
    else
      piece.grads += begin;
    if (r.params16 != nullptr) piece.params16 += begin;
    adam_range(piece, k);
  });
}

void sgd_update_ranges(std::span<const SgdRange> ranges, const SgdStepConstants& k) {
  update_in_chunks(ranges, [&](const SgdRange& r, int64_t begin, int64_t count) {
    float* buffer = r.momentum_buffer != nullptr ? r.momentum_buffer + begin : nullptr;
    sgd_range({r.params + begin, r.grads + begin, buffer, count}, k);
  });
}

void CpuBackend::adam_update(std::span<const AdamOperands> tensors, const AdamStepConstants& k) {
  std::vector<AdamRange> ranges;
  ranges.reserve(tensors.size());
  for (const AdamOperands& t : tensors) {
    ranges.push_back({t.param.data_ptr<float>(), t.grad.data_ptr<float>(),
                      t.exp_avg.data_ptr<float>(), t.exp_avg_sq.data_ptr<float>(),
                      t.param.numel()});
  }
  adam_update_ranges(ranges, k);
}

void CpuBackend::sgd_update(std::span<const SgdOperands> tensors, const SgdStepConstants& k) {
  std::vector<SgdRange> ranges;
  ranges.reserve(tensors.size());
  for (const SgdOperands& t : tensors) {
    float* buffer = k.use_momentum ? t.momentum_buffer.data_ptr<float>() : nullptr;
    ranges.push_back(
        {t.param.data_ptr<float>(), t.grad.data_ptr<float>(), buffer, t.param.numel()});
  }
  sgd_update_ranges(ranges, k);
}

}  // namespace zt::cpu
