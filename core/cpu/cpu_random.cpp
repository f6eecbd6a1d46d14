// CPU uniform, normal and dropout kernels over contiguous tensors. Element i's value is a pure
// function of (seed, offset + i) through Philox (core/philox.h documents the exact mapping,
// which the CUDA kernels reproduce), so results never depend on threads or chunking.
#include <cstring>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/cpu/strided_loop.h"
#include "core/philox.h"

namespace zt::cpu {

namespace {

// Philox blocks are ~10x the cost of an add, so smaller chunks still amortise thread start-up.
constexpr int64_t kRandomGrain = 16 * 1024;

// The uniform [0, 1) draw of element `index`: 53 bits for f64, else 24 bits.
template <typename T>
inline double uniform_draw(uint64_t seed, uint64_t offset, int64_t index) {
  philox::Block block = philox::block_for(seed, offset, uint64_t(index));
  if constexpr (std::is_same_v<T, double>) {
    return philox::uniform_53bit(block.word[0], block.word[1]);
  } else {
    return double(philox::uniform_24bit(block.word[0]));
  }
}

}  // namespace

void CpuBackend::uniform(const Tensor& dst, double low, double high, uint64_t seed,
                         uint64_t offset) {
  dispatch_floating(dst.dtype(), "uniform", [&]<typename T>() {
    T* out = static_cast<T*>(dst.raw_data());
    const double range = high - low;
    parallel_for(0, dst.numel(), kRandomGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        out[i] = T(compute_type<T>(low + range * uniform_draw<T>(seed, offset, i)));
      }
    });
  });
}

void CpuBackend::normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                        uint64_t offset) {
  dispatch_floating(dst.dtype(), "normal", [&]<typename T>() {
    T* out = static_cast<T*>(dst.raw_data());
    parallel_for(0, dst.numel(), kRandomGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        philox::Block block = philox::block_for(seed, offset, uint64_t(i));
        double standard = std::is_same_v<T, double> ? philox::normal_from_53bit(block)
                                                    : philox::normal_from_24bit(block);
        out[i] = T(compute_type<T>(mean + stddev * standard));
      }
    });
  });
}

void CpuBackend::dropout_forward(const Tensor& input, const Tensor& out, const Tensor& mask,
                                 double p, uint64_t seed, uint64_t offset) {
  dispatch_floating(input.dtype(), "dropout_forward", [&]<typename T>() {
    using C = compute_type<T>;
    const T* in = static_cast<const T*>(input.raw_data());
    T* result = static_cast<T*>(out.raw_data());
    uint8_t* kept = static_cast<uint8_t*>(mask.raw_data());
    const C scale = C(1.0 / (1.0 - p));
    parallel_for(0, input.numel(), kRandomGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        bool keep = uniform_draw<T>(seed, offset, i) >= p;
        kept[i] = keep ? 1 : 0;
        result[i] = T(keep ? C(in[i]) * scale : C(0));
      }
    });
  });
}

void CpuBackend::dropout_backward(const Tensor& grad_out, const Tensor& mask, double p,
                                  const Tensor& grad_input) {
  dispatch_floating(grad_out.dtype(), "dropout_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const T* upstream = static_cast<const T*>(grad_out.raw_data());
    const uint8_t* kept = static_cast<const uint8_t*>(mask.raw_data());
    T* result = static_cast<T*>(grad_input.raw_data());
    const C scale = C(1.0 / (1.0 - p));
    parallel_for(0, grad_out.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        result[i] = T(kept[i] != 0 ? C(upstream[i]) * scale : C(0));
      }
    });
  });
}

}  // namespace zt::cpu
