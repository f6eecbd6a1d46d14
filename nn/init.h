// Parameter initialisers, matching PyTorch's distributions for each layer's defaults.
// All draw from the given generator (the default one when null), in place, without autograd.
// On a parameter built partitioned (core/partitioned_values.h), uniform_, normal_ and constant_
// fill only the elements this rank holds, with the values the whole tensor would get: the draw
// reserves the whole tensor's count (so later draws are unchanged) and element i still comes
// from counter offset + i.
#pragma once

#include "core/generator.h"
#include "core/tensor.h"

namespace zt::nn::init {

// fan_in of a weight: size(1) times the product of the kernel dims (PyTorch's rule).
int64_t fan_in(const Tensor& weight);
void uniform_(const Tensor& tensor, double low, double high, Generator* generator = nullptr);
void normal_(const Tensor& tensor, double mean, double stddev, Generator* generator = nullptr);
void constant_(const Tensor& tensor, double value);
// PyTorch's kaiming_uniform_ with leaky-relu gain sqrt(2 / (1 + a^2)): bound =
// gain * sqrt(3 / fan_in). Linear and Conv2d use a = sqrt(5), which gives 1 / sqrt(fan_in).
void kaiming_uniform_(const Tensor& weight, double a, Generator* generator = nullptr);

}  // namespace zt::nn::init
