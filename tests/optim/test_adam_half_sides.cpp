// The 16-bit sides of the host Adam (cpu::AdamRange's grads16 and params16, the offload
// engine's form): every instruction-set path, and the parallel driver, give the bits of the f32
// update of the widened gradient followed by a cast of the parameter (core/half.h), for bf16 and
// f16, for every 16-bit gradient value and for the f32 values where the casts round specially.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cpu/optimizer_paths.h"
#include "core/half.h"
#include "core/parallel.h"
#include "optim/update_rules.h"
#include "tests/optim/reference_updates.h"

using namespace zt;

namespace {

struct Path {
  std::string name;
  std::function<void(const cpu::AdamRange&, const AdamStepConstants&)> run;
};

std::vector<Path> adam_paths() {
  std::vector<Path> paths{{"scalar", cpu::adam_range_scalar}};
  if (cpu::has_avx2_fma()) paths.push_back({"avx2", cpu::adam_range_avx2});
  if (cpu::has_avx512()) paths.push_back({"avx512", cpu::adam_range_avx512});
  return paths;
}

float widen(uint16_t bits, DType dtype) {
  return dtype == DType::f16 ? f16_bits_to_float(bits) : bf16_bits_to_float(bits);
}

uint16_t narrow(float value, DType dtype) {
  return dtype == DType::f16 ? f16(value).bits : bf16(value).bits;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

std::vector<float> uniform(size_t count, uint32_t seed, float low, float high) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(count);
  for (float& value : values) value = distribution(engine);
  return values;
}

// One range's operands and what the plain element and the cast make of them.
struct Operands {
  std::vector<float> params, grads, exp_avg, exp_avg_sq;
  std::vector<uint16_t> grads16;
  std::vector<float> want_params, want_exp_avg, want_exp_avg_sq;
  std::vector<uint16_t> want_params16;

  Operands(std::vector<uint16_t> gradient_bits, DType dtype, const AdamStepConstants& k)
      : grads16(std::move(gradient_bits)) {
    const size_t n = grads16.size();
    params = uniform(n, 1, -1, 1);
    exp_avg = uniform(n, 3, -0.01f, 0.01f);
    exp_avg_sq = uniform(n, 4, 0, 1e-4f);
    for (uint16_t bits : grads16) grads.push_back(widen(bits, dtype));
    want_params = params, want_exp_avg = exp_avg, want_exp_avg_sq = exp_avg_sq;
    for (size_t i = 0; i < n; ++i) {
      testing::reference_adam_element(want_params[i], grads[i], want_exp_avg[i], want_exp_avg_sq[i],
                                      k);
      want_params16.push_back(narrow(want_params[i], dtype));
    }
  }
};

// Every 16-bit pattern once (finite, infinite and NaN gradients), then random finite ones to
// make up `count`.
std::vector<uint16_t> gradient_bits(size_t count, DType dtype) {
  std::vector<uint16_t> bits;
  for (uint32_t value = 0; value < 65536 && bits.size() < count; ++value)
    bits.push_back(uint16_t(value));
  for (float value : uniform(count - bits.size(), 2, -0.1f, 0.1f))
    bits.push_back(narrow(value, dtype));
  return bits;
}

const AdamStepConstants kAdamW =
    optim::adam_step_constants({.lr = 1e-3, .weight_decay = 0.01, .step = 3});

}  // namespace

TEST_CASE("every_cpu_path_with_16_bit_gradients_and_parameters_gives_the_f32_update_then_a_cast") {
  const int64_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 33, 65536 + 23};
  for (DType dtype : {DType::bf16, DType::f16}) {
    for (int64_t count : sizes) {
      const Operands in(gradient_bits(size_t(count), dtype), dtype, kAdamW);
      for (const Path& path : adam_paths()) {
        // Each side alone and both: a 16-bit gradient, a 16-bit copy out, or the two at once.
        for (int sides : {1, 2, 3}) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(count);
          CAPTURE(path.name);
          CAPTURE(sides);
          const bool grad16 = sides & 1, param16 = sides & 2;
          std::vector<float> p = in.params, m = in.exp_avg, v = in.exp_avg_sq;
          std::vector<uint16_t> p16(size_t(count), 0xdead);
          path.run({p.data(), grad16 ? nullptr : in.grads.data(), m.data(), v.data(), count,
                    grad16 ? in.grads16.data() : nullptr, param16 ? p16.data() : nullptr, dtype},
                   kAdamW);
          CHECK(same_bits(p, in.want_params));
          CHECK(same_bits(m, in.want_exp_avg));
          CHECK(same_bits(v, in.want_exp_avg_sq));
          if (param16) CHECK(same_bits(p16, in.want_params16));
        }
      }
    }
  }
}

TEST_CASE("every_cpu_path_casts_the_special_parameters_as_the_tensor_cast_does") {
  // An update that leaves each parameter as it is (a zero step), so that the casts meet the
  // values where they round specially: signed zeros, f32 subnormals, f16's subnormal and
  // overflow boundaries, ties, the largest finite floats, infinities and NaNs with payloads.
  AdamStepConstants identity;
  identity.eps = 1.0f;
  std::vector<float> params;
  for (uint32_t bits :
       {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x33000000u, 0x33000001u,
        0x387fe000u, 0x387ff000u, 0x38800000u, 0x477fefffu, 0x477ff000u, 0xc77ff000u,
        0x3f808000u, 0x3f818000u, 0x3f800fffu, 0x3f801000u, 0x3f803000u, 0x7f7fffffu,
        0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xffc12345u, 0x7fffffffu})
    params.push_back(bits_float(bits));
  for (float value : uniform(40, 9, -70000, 70000)) params.push_back(value);
  const int64_t count = int64_t(params.size());
  const std::vector<float> zeros(params.size(), 0.0f);
  for (DType dtype : {DType::bf16, DType::f16}) {
    std::vector<uint16_t> want;
    for (float value : params) want.push_back(narrow(value, dtype));
    for (const Path& path : adam_paths()) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(path.name);
      std::vector<float> p = params, m = zeros, v = zeros;
      std::vector<uint16_t> p16(params.size());
      path.run({p.data(), zeros.data(), m.data(), v.data(), count, nullptr, p16.data(), dtype},
               identity);
      CHECK(same_bits(p16, want));
    }
  }
}

TEST_CASE("adam_update_ranges_with_16_bit_sides_equals_the_plain_ranges_then_a_cast") {
  // Ranges longer than the driver's chunk, at offsets that are not multiples of a vector, on
  // two threads: each chunk must take its own slice of the 16-bit operands.
  const int previous_threads = num_threads();
  set_num_threads(2);
  for (DType dtype : {DType::bf16, DType::f16}) {
    CAPTURE(dtype_name(dtype));
    const Operands a(gradient_bits(100003, dtype), dtype, kAdamW);
    const Operands b(gradient_bits(70001, dtype), dtype, kAdamW);
    std::vector<float> pa = a.params, ma = a.exp_avg, va = a.exp_avg_sq;
    std::vector<float> pb = b.params, mb = b.exp_avg, vb = b.exp_avg_sq;
    std::vector<uint16_t> pa16(a.params.size()), pb16(b.params.size());
    const cpu::AdamRange ranges[] = {{pa.data(), nullptr, ma.data(), va.data(), int64_t(pa.size()),
                                      a.grads16.data(), pa16.data(), dtype},
                                     {pb.data(), nullptr, mb.data(), vb.data(), int64_t(pb.size()),
                                      b.grads16.data(), pb16.data(), dtype}};
    cpu::adam_update_ranges(ranges, kAdamW);
    CHECK(same_bits(pa, a.want_params));
    CHECK(same_bits(ma, a.want_exp_avg));
    CHECK(same_bits(va, a.want_exp_avg_sq));
    CHECK(same_bits(pa16, a.want_params16));
    CHECK(same_bits(pb, b.want_params));
    CHECK(same_bits(pb16, b.want_params16));
  }
  set_num_threads(previous_threads);
}

TEST_CASE("adam_update_ranges_rejects_a_range_without_gradient_or_with_a_wide_16_bit_side") {
  std::vector<float> p(4, 1.0f), g(4, 0.1f), m(4, 0.0f), v(4, 0.0f);
  std::vector<uint16_t> p16(4);
  const cpu::AdamRange fine{p.data(), g.data(), m.data(), v.data(), 4};
  const cpu::AdamRange no_gradient{p.data(), nullptr, m.data(), v.data(), 4};
  const cpu::AdamRange wide{p.data(), g.data(), m.data(),   v.data(),
                            4,        nullptr,  p16.data(), DType::f32};
  const cpu::AdamRange two[] = {fine, no_gradient};
  CHECK_THROWS_WITH_AS(cpu::adam_update_ranges(two, kAdamW),
                       "adam_update_ranges: range 1 has neither grads nor grads16",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(cpu::adam_update_ranges({&wide, 1}, kAdamW),
                       "adam_update_ranges: range 0 has a 16-bit side of dtype f32; expected bf16 "
                       "or f16",
                       std::invalid_argument);
  CHECK(p == std::vector<float>(4, 1.0f));  // nothing was updated before the check
}
