// CPU fused optimizer updates: the Adam and SGD element kernels (scalar, SSE, AVX-512), the
// parallel driver over a list of ranges, and the backend's multi-tensor adam_update and
// sgd_update on top of it. Each range is cut into fixed chunks of kUpdateGrain elements and the
// chunks of all ranges run in parallel; the updates are elementwise, so the cut changes nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/host_optimizer_kernels.h"
#include "core/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace zt::cpu {

namespace {

constexpr int64_t kUpdateGrain = 1 << 15;

// ---- Adam ----------------------------------------------------------------------------------

// One element. The vector paths below, and the CUDA kernel (cuda/optimizer.cu), apply the same
// IEEE operations in the same order to each lane, never a fused multiply-add: this scalar code
// and the SSE path are compiled for baseline x86-64, which has no FMA; the AVX-512 path uses
// explicit-rounding intrinsics, which the compiler cannot fuse (plain _mm512_mul_ps/_add_ps it
// would contract into vfmadd under GCC's default -ffp-contract=fast); CUDA uses __fmul_rn and
// friends. So every path, tail included, gives the same bits, whatever the processor.
inline void adam_element(float& param, float grad_in, float& m_state, float& v_state,
                         const AdamStepConstants& k) {
  float grad = grad_in + k.l2_decay * param;
  float m = k.beta1 * m_state + k.one_minus_beta1 * grad;
  float v = k.beta2 * v_state + k.one_minus_beta2 * grad * grad;
  m_state = m;
  v_state = v;
  float denominator = std::sqrt(v) * k.inverse_sqrt_correction2 + k.eps;
  param = param * k.decay_factor - k.step_size * m / denominator;
}

#if defined(__x86_64__)
// Four lanes with SSE (every x86-64 has it): the scalar loop's sqrt keeps errno semantics, so
// the compiler will not vectorise it by itself.
void adam_range_sse(const AdamRange& r, const AdamStepConstants& k) {
  int64_t i = 0;
  for (; i + 4 <= r.count; i += 4) {
    __m128 param = _mm_loadu_ps(r.params + i);
    __m128 grad = _mm_add_ps(_mm_loadu_ps(r.grads + i), _mm_mul_ps(_mm_set1_ps(k.l2_decay), param));
    __m128 m = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(k.beta1), _mm_loadu_ps(r.exp_avg + i)),
                          _mm_mul_ps(_mm_set1_ps(k.one_minus_beta1), grad));
    __m128 v = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(k.beta2), _mm_loadu_ps(r.exp_avg_sq + i)),
                          _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(k.one_minus_beta2), grad), grad));
    _mm_storeu_ps(r.exp_avg + i, m);
    _mm_storeu_ps(r.exp_avg_sq + i, v);
    __m128 denominator = _mm_add_ps(
        _mm_mul_ps(_mm_sqrt_ps(v), _mm_set1_ps(k.inverse_sqrt_correction2)), _mm_set1_ps(k.eps));
    __m128 step = _mm_div_ps(_mm_mul_ps(_mm_set1_ps(k.step_size), m), denominator);
    _mm_storeu_ps(r.params + i, _mm_sub_ps(_mm_mul_ps(param, _mm_set1_ps(k.decay_factor)), step));
  }
  for (; i < r.count; ++i) adam_element(r.params[i], r.grads[i], r.exp_avg[i], r.exp_avg_sq[i], k);
}

// AVX-512 arithmetic with the rounding mode in the instruction (round to nearest even, no
// exceptions): one IEEE operation each, which the compiler never contracts into an FMA. The
// masked forms with every lane on: GCC 12 warns that the unmasked ones' undefined pass-through
// vector may be used uninitialised.
constexpr int kRoundNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
constexpr __mmask16 kAllLanes = 0xFFFF;
[[gnu::target("avx512f")]] inline __m512 add_rn(__m512 a, __m512 b) {
  return _mm512_mask_add_round_ps(a, kAllLanes, a, b, kRoundNearest);
}
[[gnu::target("avx512f")]] inline __m512 sub_rn(__m512 a, __m512 b) {
  return _mm512_mask_sub_round_ps(a, kAllLanes, a, b, kRoundNearest);
}
[[gnu::target("avx512f")]] inline __m512 mul_rn(__m512 a, __m512 b) {
  return _mm512_mask_mul_round_ps(a, kAllLanes, a, b, kRoundNearest);
}
[[gnu::target("avx512f")]] inline __m512 div_rn(__m512 a, __m512 b) {
  return _mm512_mask_div_round_ps(a, kAllLanes, a, b, kRoundNearest);
}
[[gnu::target("avx512f")]] inline __m512 sqrt_rn(__m512 a) {
  return _mm512_mask_sqrt_round_ps(a, kAllLanes, a, kRoundNearest);
}

// Sixteen lanes, for processors with AVX-512 (chosen at run time). The tail runs masked
// rather than through adam_element, which would round the same but is slower.
[[gnu::target("avx512f")]] void adam_range_avx512(const AdamRange& r, const AdamStepConstants& k) {
  for (int64_t i = 0; i < r.count; i += 16) {
    __mmask16 lanes = r.count - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (r.count - i)) - 1);
    __m512 param = _mm512_maskz_loadu_ps(lanes, r.params + i);
    __m512 grad = add_rn(_mm512_maskz_loadu_ps(lanes, r.grads + i),
                         mul_rn(_mm512_set1_ps(k.l2_decay), param));
    __m512 m = add_rn(mul_rn(_mm512_set1_ps(k.beta1), _mm512_maskz_loadu_ps(lanes, r.exp_avg + i)),
                      mul_rn(_mm512_set1_ps(k.one_minus_beta1), grad));
    __m512 v =
        add_rn(mul_rn(_mm512_set1_ps(k.beta2), _mm512_maskz_loadu_ps(lanes, r.exp_avg_sq + i)),
               mul_rn(mul_rn(_mm512_set1_ps(k.one_minus_beta2), grad), grad));
    _mm512_mask_storeu_ps(r.exp_avg + i, lanes, m);
    _mm512_mask_storeu_ps(r.exp_avg_sq + i, lanes, v);
    __m512 denominator = add_rn(mul_rn(sqrt_rn(v), _mm512_set1_ps(k.inverse_sqrt_correction2)),
                                _mm512_set1_ps(k.eps));
    __m512 step = div_rn(mul_rn(_mm512_set1_ps(k.step_size), m), denominator);
    _mm512_mask_storeu_ps(r.params + i, lanes,
                          sub_rn(mul_rn(param, _mm512_set1_ps(k.decay_factor)), step));
  }
}
#endif

void adam_range(const AdamRange& r, const AdamStepConstants& k) {
#if defined(__x86_64__)
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  if (has_avx512) {
    adam_range_avx512(r, k);
  } else {
    adam_range_sse(r, k);
  }
#else
  for (int64_t i = 0; i < r.count; ++i)
    adam_element(r.params[i], r.grads[i], r.exp_avg[i], r.exp_avg_sq[i], k);
#endif
}

// ---- SGD -----------------------------------------------------------------------------------

// Plain scalar code (the compiler vectorises it; baseline x86-64 has no FMA to fuse with), in
// the order of the CUDA kernel.
void sgd_range(const SgdRange& r, const SgdStepConstants& k) {
  for (int64_t i = 0; i < r.count; ++i) {
    float grad = r.grads[i];
    if (k.weight_decay != 0.0f) grad += k.weight_decay * r.params[i];
    if (k.use_momentum) {
      float& buffer = r.momentum_buffer[i];
      buffer = k.first_step ? grad : k.momentum * buffer + k.grad_scale * grad;
      grad = k.nesterov ? grad + k.momentum * buffer : buffer;
    }
    r.params[i] -= k.lr * grad;
  }
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

void adam_update_ranges(std::span<const AdamRange> ranges, const AdamStepConstants& k) {
  update_in_chunks(ranges, [&](const AdamRange& r, int64_t begin, int64_t count) {
    adam_range({r.params + begin, r.grads + begin, r.exp_avg + begin, r.exp_avg_sq + begin, count},
               k);
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
