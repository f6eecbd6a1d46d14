// GELU's tanh form over dense f32 arrays (GPT-2's activation), each loop built for AVX-512,
// AVX2 and the baseline and chosen at run time; the elementwise kernels call them for
// contiguous f32 operands. Every build computes the same bits (no fused multiply-adds).
#pragma once

#include <cstdint>

namespace zt::cpu {

// out[i] = gelu_tanh(x[i])
void gelu_tanh_forward_f32(const float* x, float* out, int64_t count);
// out[i] = grad[i] * gelu_tanh'(x[i])
void gelu_tanh_backward_f32(const float* grad, const float* x, float* out, int64_t count);

// The same for one element: the strided loops' form, giving the same bits.
float gelu_tanh_forward_f32(float x);
float gelu_tanh_backward_f32(float grad, float x);

}  // namespace zt::cpu
