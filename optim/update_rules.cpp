// CPU implementations of the update rules, parallel over fixed chunks (elementwise, so the
// thread count never changes a bit of the result).
#include "optim/update_rules.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace zt::optim {

namespace {
constexpr int64_t kUpdateGrain = 1 << 15;

void check_lengths(const char* rule, size_t expected, std::initializer_list<size_t> lengths) {
  for (size_t length : lengths) {
    if (length != expected) {
      throw std::invalid_argument(std::string(rule) + ": spans of unequal length (" +
                                  std::to_string(expected) + " vs " + std::to_string(length) + ")");
    }
  }
}
}  // namespace

void sgd_update(std::span<float> params, std::span<const float> grads,
                std::span<float> momentum_buffer, const SgdHyper& hyper, bool first_step) {
  bool use_momentum = hyper.momentum != 0.0;
  check_lengths("sgd_update", params.size(),
                use_momentum ? std::initializer_list<size_t>{grads.size(), momentum_buffer.size()}
                             : std::initializer_list<size_t>{grads.size()});
  const float lr = float(hyper.lr);
  const float weight_decay = float(hyper.weight_decay);
  const float momentum = float(hyper.momentum);
  const float grad_scale = float(1.0 - hyper.dampening);
  parallel_for(0, int64_t(params.size()), kUpdateGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float grad = grads[size_t(i)];
      if (weight_decay != 0.0f) grad += weight_decay * params[size_t(i)];
      if (use_momentum) {
        float& buffer = momentum_buffer[size_t(i)];
        buffer = first_step ? grad : momentum * buffer + grad_scale * grad;
        grad = hyper.nesterov ? grad + momentum * buffer : buffer;
      }
      params[size_t(i)] -= lr * grad;
    }
  });
}

namespace {

// Adam's per-step constants, as floats, shared by the scalar and vector paths.
struct AdamConstants {
  float l2_decay, beta1, one_minus_beta1, beta2, one_minus_beta2;
  float inverse_sqrt_correction2, eps, decay_factor, step_size;
};

// One element. The vector paths below apply the same operations in the same order to each
// lane. The SSE path and this scalar code (compiled for baseline x86-64, which has no FMA)
// round identically; GCC may fuse a multiply and an add in the AVX-512 path, so its last bit
// can differ from theirs. A process takes one path for every element, tail included, so
// neither the thread count nor the partition of a flat buffer changes a bit of the result.
inline void adam_element(float& param, float grad_in, float& m_state, float& v_state,
                         const AdamConstants& k) {
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
void adam_range_sse(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                    int64_t count, const AdamConstants& k) {
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    __m128 param = _mm_loadu_ps(params + i);
    __m128 grad = _mm_add_ps(_mm_loadu_ps(grads + i), _mm_mul_ps(_mm_set1_ps(k.l2_decay), param));
    __m128 m = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(k.beta1), _mm_loadu_ps(exp_avg + i)),
                          _mm_mul_ps(_mm_set1_ps(k.one_minus_beta1), grad));
    __m128 v = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(k.beta2), _mm_loadu_ps(exp_avg_sq + i)),
                          _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(k.one_minus_beta2), grad), grad));
    _mm_storeu_ps(exp_avg + i, m);
    _mm_storeu_ps(exp_avg_sq + i, v);
    __m128 denominator = _mm_add_ps(
        _mm_mul_ps(_mm_sqrt_ps(v), _mm_set1_ps(k.inverse_sqrt_correction2)), _mm_set1_ps(k.eps));
    __m128 step = _mm_div_ps(_mm_mul_ps(_mm_set1_ps(k.step_size), m), denominator);
    _mm_storeu_ps(params + i, _mm_sub_ps(_mm_mul_ps(param, _mm_set1_ps(k.decay_factor)), step));
  }
  for (; i < count; ++i) adam_element(params[i], grads[i], exp_avg[i], exp_avg_sq[i], k);
}

// Sixteen lanes, for processors with AVX-512 (chosen at run time). The tail runs masked
// rather than through adam_element, so that it rounds exactly as the full vectors do.
[[gnu::target("avx512f")]] void adam_range_avx512(float* params, const float* grads, float* exp_avg,
                                                  float* exp_avg_sq, int64_t count,
                                                  const AdamConstants& k) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 lanes = count - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (count - i)) - 1);
    __m512 param = _mm512_maskz_loadu_ps(lanes, params + i);
    __m512 grad = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, grads + i),
                                _mm512_mul_ps(_mm512_set1_ps(k.l2_decay), param));
    __m512 m = _mm512_add_ps(
        _mm512_mul_ps(_mm512_set1_ps(k.beta1), _mm512_maskz_loadu_ps(lanes, exp_avg + i)),
        _mm512_mul_ps(_mm512_set1_ps(k.one_minus_beta1), grad));
    __m512 v = _mm512_add_ps(
        _mm512_mul_ps(_mm512_set1_ps(k.beta2), _mm512_maskz_loadu_ps(lanes, exp_avg_sq + i)),
        _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(k.one_minus_beta2), grad), grad));
    _mm512_mask_storeu_ps(exp_avg + i, lanes, m);
    _mm512_mask_storeu_ps(exp_avg_sq + i, lanes, v);
    // The masked square root: GCC 12 warns that _mm512_sqrt_ps's undefined pass-through
    // vector may be used uninitialised.
    __m512 root = _mm512_mask_sqrt_ps(v, __mmask16(0xFFFF), v);
    __m512 denominator = _mm512_add_ps(
        _mm512_mul_ps(root, _mm512_set1_ps(k.inverse_sqrt_correction2)), _mm512_set1_ps(k.eps));
    __m512 step = _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(k.step_size), m), denominator);
    _mm512_mask_storeu_ps(
        params + i, lanes,
        _mm512_sub_ps(_mm512_mul_ps(param, _mm512_set1_ps(k.decay_factor)), step));
  }
}
#endif

void adam_range(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t count,
                const AdamConstants& k) {
#if defined(__x86_64__)
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  if (has_avx512) {
    adam_range_avx512(params, grads, exp_avg, exp_avg_sq, count, k);
  } else {
    adam_range_sse(params, grads, exp_avg, exp_avg_sq, count, k);
  }
#else
  for (int64_t i = 0; i < count; ++i)
    adam_element(params[i], grads[i], exp_avg[i], exp_avg_sq[i], k);
#endif
}

}  // namespace

void adam_update(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
                 std::span<float> exp_avg_sq, const AdamHyper& hyper) {
  check_lengths("adam_update", params.size(), {grads.size(), exp_avg.size(), exp_avg_sq.size()});
  if (hyper.step < 1) throw std::invalid_argument("adam_update: step must be >= 1");
  double correction1 =
      hyper.bias_correction ? 1.0 - std::pow(hyper.beta1, double(hyper.step)) : 1.0;
  double correction2 =
      hyper.bias_correction ? 1.0 - std::pow(hyper.beta2, double(hyper.step)) : 1.0;
  AdamConstants constants;
  constants.step_size = float(hyper.lr / correction1);
  constants.inverse_sqrt_correction2 = float(1.0 / std::sqrt(correction2));
  constants.beta1 = float(hyper.beta1);
  constants.one_minus_beta1 = 1.0f - constants.beta1;
  constants.beta2 = float(hyper.beta2);
  constants.one_minus_beta2 = 1.0f - constants.beta2;
  constants.eps = float(hyper.eps);
  constants.l2_decay = hyper.decoupled_weight_decay ? 0.0f : float(hyper.weight_decay);
  // Decoupled decay shrinks the weight before the Adam step: p *= 1 - lr * wd.
  constants.decay_factor =
      hyper.decoupled_weight_decay ? float(1.0 - hyper.lr * hyper.weight_decay) : 1.0f;
  parallel_for(0, int64_t(params.size()), kUpdateGrain, [&](int64_t begin, int64_t end) {
    adam_range(params.data() + begin, grads.data() + begin, exp_avg.data() + begin,
               exp_avg_sq.data() + begin, end - begin, constants);
  });
}

}  // namespace zt::optim
