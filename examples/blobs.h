// Synthetic data for the examples: points scattered around one center per class, the centers
// far apart, so that a model that learns classifies nearly all of them. The centers are the
// same for every draw (one task); `seed` picks the points, the same on every rank.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/generator.h"

namespace examples {

struct Blobs {
  zt::Tensor points;  // [count, features], f32
  zt::Tensor labels;  // [count], i64: point i belongs to class i % classes
};

inline Blobs make_blobs(int64_t count, int64_t features, int64_t classes, uint64_t seed) {
  zt::Generator task(0), generator(seed);
  zt::Tensor centers = zt::randn({classes, features}, {}, &task) * 3.0;
  std::vector<int64_t> labels(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) labels[static_cast<size_t>(i)] = i % classes;
  zt::Tensor label_tensor = zt::from_int64(labels, {count});
  zt::Tensor noise = zt::randn({count, features}, {}, &generator) * 0.5;
  return {zt::index_select(centers, 0, label_tensor) + noise, label_tensor};
}

// The fraction of `blobs` that `logits` ([count, classes]) puts in the right class.
inline double accuracy(const zt::Tensor& logits, const Blobs& blobs) {
  zt::Tensor right = zt::eq(zt::argmax(logits, 1), blobs.labels);
  return zt::sum(right.to(zt::DType::f64)).item() / double(blobs.labels.numel());
}

}  // namespace examples
