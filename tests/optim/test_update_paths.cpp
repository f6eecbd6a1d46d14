// Every instruction-set path of the CPU's fused updates (scalar, AVX2, AVX-512:
// core/cpu/optimizer_paths.h) called directly, so that each is checked on a machine that has it,
// not only the one the backend picks: the bits of the plainly written element
// (tests/optim/reference_updates.h) for every option, at sizes around the vector widths.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpu/optimizer_paths.h"
#include "optim/update_rules.h"
#include "tests/optim/reference_updates.h"

using namespace zt;

namespace {

const int64_t kSizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100};

std::vector<float> uniform(size_t count, uint32_t seed, float low, float high) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(count);
  for (float& value : values) value = distribution(engine);
  return values;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <typename Range, typename Constants>
struct Path {
  std::string name;
  std::function<void(const Range&, const Constants&)> run;
};

template <typename Range, typename Constants>
std::vector<Path<Range, Constants>> available_paths(void (*scalar)(const Range&, const Constants&),
                                                    void (*avx2)(const Range&, const Constants&),
                                                    void (*avx512)(const Range&,
                                                                   const Constants&)) {
  std::vector<Path<Range, Constants>> paths{{"scalar", scalar}};
  if (cpu::has_avx2_fma()) paths.push_back({"avx2", avx2});
  if (cpu::has_avx512()) paths.push_back({"avx512", avx512});
  std::string names;
  for (const auto& path : paths) names += " " + path.name;
  MESSAGE("instruction-set paths checked:", names);
  return paths;
}

}  // namespace

TEST_CASE("every_cpu_path_of_adam_gives_the_reference_elements_bits") {
  auto paths = available_paths<cpu::AdamRange, AdamStepConstants>(
      cpu::adam_range_scalar, cpu::adam_range_avx2, cpu::adam_range_avx512);
  const optim::AdamHyper hypers[] = {
      {.lr = 1e-3, .weight_decay = 0.01, .step = 1},
      {.lr = 3e-3, .weight_decay = 0.05, .decoupled_weight_decay = false, .step = 9},
      {.lr = 1e-2, .beta1 = 0.3, .beta2 = 0.99, .bias_correction = false, .step = 4}};
  for (const optim::AdamHyper& hyper : hypers) {
    const AdamStepConstants k = optim::adam_step_constants(hyper);
    for (int64_t count : kSizes) {
      const size_t n = size_t(count);
      const std::vector<float> params = uniform(n, 1, -1, 1), grads = uniform(n, 2, -0.1f, 0.1f),
                               exp_avg = uniform(n, 3, -0.01f, 0.01f),
                               exp_avg_sq = uniform(n, 4, 0, 1e-4f);
      std::vector<float> want_p = params, want_m = exp_avg, want_v = exp_avg_sq;
      for (size_t i = 0; i < n; ++i)
        testing::reference_adam_element(want_p[i], grads[i], want_m[i], want_v[i], k);
      for (const auto& path : paths) {
        CAPTURE(path.name);
        CAPTURE(count);
        CAPTURE(hyper.step);
        std::vector<float> p = params, m = exp_avg, v = exp_avg_sq;
        path.run({p.data(), grads.data(), m.data(), v.data(), count}, k);
        CHECK(same_bits(p, want_p));
        CHECK(same_bits(m, want_m));
        CHECK(same_bits(v, want_v));
      }
    }
  }
}

TEST_CASE("every_cpu_path_of_sgd_gives_the_reference_elements_bits") {
  auto paths = available_paths<cpu::SgdRange, SgdStepConstants>(
      cpu::sgd_range_scalar, cpu::sgd_range_avx2, cpu::sgd_range_avx512);
  const optim::SgdHyper hypers[] = {{0.1, 0.0, 0.0, 0.0, false},
                                    {0.1, 0.9, 0.0, 0.01, false},
                                    {0.05, 0.9, 0.3, 0.0, false},
                                    {0.05, 0.8, 0.0, 0.02, true}};
  for (const optim::SgdHyper& hyper : hypers) {
    for (bool first_step : {true, false}) {
      const SgdStepConstants k = optim::sgd_step_constants(hyper, first_step);
      for (int64_t count : kSizes) {
        const size_t n = size_t(count);
        const std::vector<float> params = uniform(n, 5, -1, 1), grads = uniform(n, 6, -0.1f, 0.1f),
                                 buffer = uniform(n, 7, -0.01f, 0.01f);
        std::vector<float> want_p = params, want_b = buffer;
        for (size_t i = 0; i < n; ++i)
          testing::reference_sgd_element(want_p[i], grads[i], want_b[i], k);
        for (const auto& path : paths) {
          CAPTURE(path.name);
          CAPTURE(count);
          CAPTURE(hyper.momentum);
          CAPTURE(first_step);
          std::vector<float> p = params, b = buffer;
          path.run({p.data(), grads.data(), k.use_momentum ? b.data() : nullptr, count}, k);
          CHECK(same_bits(p, want_p));
          CHECK(same_bits(b, want_b));
        }
      }
    }
  }
}
