// CPU fused LAMB (core/lamb_arithmetic.h): both passes over a list of tensors, each tensor cut
// into fixed chunks that run in parallel. Pass 1's sums of squares are kept per chunk and added
// in chunk order, so the sums depend on the sizes only, never on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/scalar_arithmetic.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

constexpr int64_t kLambGrain = 1 << 15;

struct Chunk {
  size_t tensor;
  int64_t begin;
  int64_t count;
};

std::vector<Chunk> chunks_of(std::span<const AdamOperands> tensors) {
  std::vector<Chunk> chunks;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const int64_t numel = tensors[t].param.numel();
    for (int64_t begin = 0; begin < numel; begin += kLambGrain)
      chunks.push_back({t, begin, std::min(kLambGrain, numel - begin)});
  }
  return chunks;
}

}  // namespace

void CpuBackend::lamb_moments(std::span<const AdamOperands> tensors, const LambStepConstants& k,
                              std::span<double> square_sums) {
  std::fill(square_sums.begin(), square_sums.end(), 0.0);
  const std::vector<Chunk> chunks = chunks_of(tensors);
  std::vector<double> chunk_sums(2 * chunks.size(), 0.0);
  parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const Chunk& chunk = chunks[size_t(c)];
      const AdamOperands& t = tensors[chunk.tensor];
      float* param = t.param.data_ptr<float>() + chunk.begin;
      const float* grad = t.grad.data_ptr<float>() + chunk.begin;
      float* exp_avg = t.exp_avg.data_ptr<float>() + chunk.begin;
      float* exp_avg_sq = t.exp_avg_sq.data_ptr<float>() + chunk.begin;
      double weight_sum = 0.0, update_sum = 0.0;
      for (int64_t i = 0; i < chunk.count; ++i) {
        const float direction =
            lamb_moments_element<ScalarArithmetic>(param[i], grad[i], exp_avg[i], exp_avg_sq[i], k);
        weight_sum += double(param[i]) * double(param[i]);
        update_sum += double(direction) * double(direction);
      }
      chunk_sums[2 * size_t(c)] = weight_sum;
      chunk_sums[2 * size_t(c) + 1] = update_sum;
    }
  });
  for (size_t c = 0; c < chunks.size(); ++c) {
    square_sums[2 * chunks[c].tensor] += chunk_sums[2 * c];
    square_sums[2 * chunks[c].tensor + 1] += chunk_sums[2 * c + 1];
  }
}

void CpuBackend::lamb_apply(std::span<const AdamOperands> tensors, const LambStepConstants& k,
                            std::span<const float> scales) {
  const std::vector<Chunk> chunks = chunks_of(tensors);
  parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const Chunk& chunk = chunks[size_t(c)];
      const AdamOperands& t = tensors[chunk.tensor];
      float* param = t.param.data_ptr<float>() + chunk.begin;
      const float* exp_avg = t.exp_avg.data_ptr<float>() + chunk.begin;
      const float* exp_avg_sq = t.exp_avg_sq.data_ptr<float>() + chunk.begin;
      const float scale = scales[chunk.tensor];
      for (int64_t i = 0; i < chunk.count; ++i)
        lamb_apply_element<ScalarArithmetic>(param[i], exp_avg[i], exp_avg_sq[i], scale, k);
    }
  });
}

}  // namespace zt::cpu
