// Every instruction-set path of the CPU's fused updates (scalar, AVX2, AVX-512:
// core/cpu/optimizer_paths.h) called directly, so that each is checked on a machine that has it,
// not only the one the backend picks: the bits of the plainly written element
// (tests/optim/reference_updates.h) for every option, at sizes around the vector widths, and the
// quotient by the bias correction for every significand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpu/optimizer_paths.h"
#include "core/half.h"
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

TEST_CASE("every_cpu_path_divides_by_the_bias_correction_to_the_correctly_rounded_quotient") {
  // Constants under which the update keeps v and m, and the parameter becomes
  // 0 - m / (sqrt(v) / c): with m set to the correctly rounded sqrt(v) / c, each parameter is
  // exactly -1 where the path's quotient is that one, and something else where it is not. (The
  // AVX-512 path divides by c with a multiply in double: core/cpu/cpu_optimizer_avx512.cpp.)
  // The roots cover every significand of one binade for four c and a sample for the others;
  // the quotient rounds alike in every binade. Zero and subnormal v are compared to the
  // reference element.
  auto paths = available_paths<cpu::AdamRange, AdamStepConstants>(
      cpu::adam_range_scalar, cpu::adam_range_avx2, cpu::adam_range_avx512);
  std::vector<float> corrections{1.0f, 0x1.fffffep-1f, 0x1.8p-126f, 0.7f};
  for (double beta2 : {0.999, 0.99, 0.9, 0.5})
    for (int step = 1; step <= 5; ++step)
      corrections.push_back(float(std::sqrt(1.0 - std::pow(beta2, step))));
  std::mt19937 engine(11);
  for (size_t c = 0; c < corrections.size(); ++c) {
    AdamStepConstants k;
    k.beta2 = 1.0f;
    k.sqrt_correction2 = corrections[c];
    k.step_size = 1.0f;
    std::vector<float> v, m;
    auto add_root = [&](float root) {
      v.push_back(root * root);
      m.push_back(float(double(std::sqrt(v.back())) / double(corrections[c])));
    };
    if (c < 4) {
      for (uint32_t significand = 0; significand < (1u << 23); ++significand)
        add_root(bits_float(0x3f800000u | significand));
    } else {
      for (int i = 0; i < (1 << 20); ++i) add_root(bits_float(0x3f800000u | (engine() >> 9)));
    }
    const int64_t count = int64_t(v.size());
    const std::vector<float> grads(v.size(), 0.0f);
    for (const auto& path : paths) {
      CAPTURE(path.name);
      CAPTURE(corrections[c]);
      std::vector<float> p(v.size(), 0.0f), pm = m, pv = v;
      path.run({p.data(), grads.data(), pm.data(), pv.data(), count}, k);
      int64_t not_minus_one = std::count_if(p.begin(), p.end(), [](float x) { return x != -1.0f; });
      CHECK(not_minus_one == 0);
      // Zero, subnormal and tiny second moments, against the reference element.
      std::vector<float> small_v{0.0f, 0x1p-149f, 0x1.234p-140f, 0x1p-126f, 3e-30f, 1e-20f};
      std::vector<float> sp(small_v.size(), 0.5f), sm(small_v.size(), 1e-3f), sv = small_v;
      std::vector<float> want_p = sp, want_m = sm, want_v = sv;
      const std::vector<float> sg(small_v.size(), 0.0f);
      for (size_t i = 0; i < small_v.size(); ++i)
        testing::reference_adam_element(want_p[i], sg[i], want_m[i], want_v[i], k);
      path.run({sp.data(), sg.data(), sm.data(), sv.data(), int64_t(sp.size())}, k);
      CHECK(same_bits(sp, want_p));
    }
  }
}
