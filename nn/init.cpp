// Initialisers over the factory's random fills.
#include "nn/init.h"

#include <cmath>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::nn::init {

int64_t fan_in(const Tensor& weight) {
  if (weight.dim() < 2) {
    throw std::invalid_argument("fan_in: needs a weight of rank >= 2, got shape " +
                                shape_str(weight.sizes()));
  }
  int64_t receptive_field = 1;
  for (int64_t d = 2; d < weight.dim(); ++d) receptive_field *= weight.size(d);
  return weight.size(1) * receptive_field;
}

void uniform_(const Tensor& tensor, double low, double high, Generator* generator) {
  zt::uniform_(tensor, low, high, generator);
}

void normal_(const Tensor& tensor, double mean, double stddev, Generator* generator) {
  zt::normal_(tensor, mean, stddev, generator);
}

void constant_(const Tensor& tensor, double value) {
  ops::fill_(tensor, value);
}

void kaiming_uniform_(const Tensor& weight, double a, Generator* generator) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in(weight)));
  init::uniform_(weight, -bound, bound, generator);
}

}  // namespace zt::nn::init
