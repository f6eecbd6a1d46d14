// GELU's tanh form in f32 through vector_tanh (see cpu_gelu_tanh.h). The array loops are
// cloned per instruction set: at SSE2 width the tanh's division and polynomials still made
// GELU a tenth of a small GPT's training step.
#include "core/cpu/cpu_gelu_tanh.h"

#include "core/cpu/vector_math.h"
#include "core/unary_ops.h"

namespace zt::cpu {

namespace {

constexpr float kSqrtTwoOverPi = float(unary_math::kSqrtTwoOverPi);
constexpr float kCubic = float(unary_math::kGeluTanhCubic);
constexpr float kThreeCubic = float(3 * unary_math::kGeluTanhCubic);

[[gnu::always_inline]] inline float forward(float x) {
  float inner = kSqrtTwoOverPi * (x + kCubic * x * x * x);
  return 0.5f * x * (1.0f + vector_tanh(inner));
}

[[gnu::always_inline]] inline float backward(float grad, float x) {
  float inner = kSqrtTwoOverPi * (x + kCubic * x * x * x);
  float t = vector_tanh(inner);
  float inner_derivative = kSqrtTwoOverPi * (1.0f + kThreeCubic * x * x);
  return grad * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * inner_derivative);
}

}  // namespace

#if defined(__x86_64__) && !defined(__clang__)
#define ZT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZT_VECTOR_CLONES
#endif

ZT_VECTOR_CLONES void gelu_tanh_forward_f32(const float* x, float* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = forward(x[i]);
}

ZT_VECTOR_CLONES void gelu_tanh_backward_f32(const float* grad, const float* x, float* out,
                                             int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = backward(grad[i], x[i]);
}

float gelu_tanh_forward_f32(float x) {
  return forward(x);
}

float gelu_tanh_backward_f32(float grad, float x) {
  return backward(grad, x);
}

}  // namespace zt::cpu
