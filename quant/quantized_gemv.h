// One token times a quantized weight, y = W x + b, reading the int8 or int4 codes where they lie
// and turning them into floats in registers: a decode step reads each code byte once instead of
// writing and rereading an f32 panel of the weight.
#pragma once

#include "quant/weight_quantization.h"

namespace zt::quant {

// y[n] = scale(n) * (sum_k x[k] code[n, k] - zero(n) sum_k x[k]) + bias[n] for every row n of
// `weight` (bias may be null); x has weight.cols floats, y weight.rows.
void quantized_gemv(const QuantizedWeight& weight, const float* x, const float* bias, float* y);

}  // namespace zt::quant
