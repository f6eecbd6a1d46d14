// Initialisers over the factory's random fills.
#include "nn/init.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "core/partitioned_values.h"

namespace zt::nn::init {

namespace {

// A partitioned tensor's draw: the generator moves past the whole tensor, as the full draw
// would, and the owned part takes elements [owned_first, owned_end) of that draw, which are a
// pure function of their counters (core/philox.h: every element from its own block).
template <typename Fill>
void draw_owned_part(const Tensor& tensor, const char* op, Generator* generator, Fill fill) {
  if (!is_floating(tensor.dtype())) {
    throw std::invalid_argument(
        fmt::format("{}: dtype {} is not floating", op, dtype_name(tensor.dtype())));
  }
  const PartitionedValues& values = *tensor.impl()->partitioned;
  Generator& source = generator != nullptr ? *generator : default_generator();
  uint64_t offset = source.reserve(uint64_t(tensor.numel()));
  Tensor part = values.owned_part();
  if (part.numel() > 0) fill(part, source.seed(), offset + uint64_t(values.owned_first()));
}

}  // namespace

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
  if (!is_partitioned(tensor)) return zt::uniform_(tensor, low, high, generator);
  if (!(low <= high)) {
    throw std::invalid_argument(fmt::format("uniform_: low {} must not exceed high {}", low, high));
  }
  draw_owned_part(tensor, "uniform_", generator,
                  [&](const Tensor& part, uint64_t seed, uint64_t offset) {
                    backend_for(part.device()).uniform(part, low, high, seed, offset);
                  });
}

void normal_(const Tensor& tensor, double mean, double stddev, Generator* generator) {
  if (!is_partitioned(tensor)) return zt::normal_(tensor, mean, stddev, generator);
  if (!(stddev >= 0)) {
    throw std::invalid_argument(fmt::format("normal_: stddev {} must be >= 0", stddev));
  }
  draw_owned_part(tensor, "normal_", generator,
                  [&](const Tensor& part, uint64_t seed, uint64_t offset) {
                    backend_for(part.device()).normal(part, mean, stddev, seed, offset);
                  });
}

void constant_(const Tensor& tensor, double value) {
  if (!is_partitioned(tensor)) return ops::fill_(tensor, value);
  Tensor part = tensor.impl()->partitioned->owned_part();
  if (part.numel() > 0) ops::fill_(part, value);
}

void kaiming_uniform_(const Tensor& weight, double a, Generator* generator) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in(weight)));
  init::uniform_(weight, -bound, bound, generator);
}

}  // namespace zt::nn::init
