// Random numbers: Philox known answers, the documented (seed, offset + i) -> value mapping,
// independence from the thread count and from how a draw is split, moments of uniform and
// normal, seeding, and the dropout kernels' use of the uniform stream.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/backend.h"
#include "core/factory.h"
#include "core/parallel.h"
#include "core/philox.h"

using namespace zt;

namespace {

struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

struct Moments {
  double mean = 0, variance = 0, minimum = 1e300, maximum = -1e300;
};

Moments moments_of(const std::vector<double>& values) {
  Moments result;
  for (double v : values) {
    result.mean += v;
    result.minimum = std::min(result.minimum, v);
    result.maximum = std::max(result.maximum, v);
  }
  result.mean /= double(values.size());
  for (double v : values) result.variance += (v - result.mean) * (v - result.mean);
  result.variance /= double(values.size());
  return result;
}

}  // namespace

TEST_CASE("philox 4x32-10 matches the Random123 known-answer vectors") {
  using philox::Block;
  Block zero = philox::philox4x32_10(Block{{0, 0, 0, 0}}, 0, 0);
  CHECK(zero.word[0] == 0x6627e8d5u);
  CHECK(zero.word[1] == 0xe169c58du);
  CHECK(zero.word[2] == 0xbc57ac4cu);
  CHECK(zero.word[3] == 0x9b00dbd8u);
  Block ones = philox::philox4x32_10(Block{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  CHECK(ones.word[0] == 0x408f276du);
  CHECK(ones.word[3] == 0x6d5451fdu);
  Block pi = philox::philox4x32_10(Block{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                   0xa4093822u, 0x299f31d0u);
  CHECK(pi.word[0] == 0xd16cfe09u);
  CHECK(pi.word[1] == 0x94fdccebu);
  CHECK(pi.word[2] == 0x5001e420u);
  CHECK(pi.word[3] == 0x24126ea1u);
}

TEST_CASE("element i of a draw is the documented function of (seed, offset + i)") {
  const uint64_t seed = 0x1234567890abcdefull;
  Generator generator(seed);
  generator.reserve((uint64_t(1) << 32) - 3);  // the counter crosses into its high word
  uint64_t offset = generator.offset();
  Tensor uniform_f32 = rand({9}, {}, &generator);
  Tensor uniform_f64 = rand({9}, {.dtype = DType::f64}, &generator);
  Tensor normal_f32 = randn({9}, {}, &generator);
  std::vector<double> u32 = uniform_f32.to_vector(), u64 = uniform_f64.to_vector(),
                      n32 = normal_f32.to_vector();
  for (uint64_t i = 0; i < 9; ++i) {
    philox::Block block = philox::block_for(seed, offset, i);
    CHECK(u32[i] == double(float(block.word[0] >> 8) / 16777216.0f));
    philox::Block block64 = philox::block_for(seed, offset + 9, i);
    uint64_t bits = (uint64_t(block64.word[0]) << 21) ^ (block64.word[1] >> 11);
    CHECK(u64[i] == double(bits) / 9007199254740992.0);
    philox::Block block_normal = philox::block_for(seed, offset + 18, i);
    double u1 = double((block_normal.word[0] >> 8) + 1) / 16777216.0;
    double u2 = double(block_normal.word[1] >> 8) / 16777216.0;
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
    CHECK(n32[i] == doctest::Approx(double(float(z))).epsilon(1e-6));
  }
  CHECK(generator.offset() == offset + 27);
}

TEST_CASE("uniform and normal draws are bitwise equal for 1 and 2 threads") {
  ThreadCountGuard restore;
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    Generator first(42), second(42);
    set_num_threads(1);
    std::vector<double> uniform1 = rand({100003}, {.dtype = dtype}, &first).to_vector();
    std::vector<double> normal1 = randn({100003}, {.dtype = dtype}, &first).to_vector();
    set_num_threads(2);
    CHECK(rand({100003}, {.dtype = dtype}, &second).to_vector() == uniform1);
    CHECK(randn({100003}, {.dtype = dtype}, &second).to_vector() == normal1);
  }
}

TEST_CASE("a draw split in two equals the same draw made at once") {
  Generator whole(7), split(7);
  std::vector<double> at_once = rand({30}, {}, &whole).to_vector();
  std::vector<double> first = rand({13}, {}, &split).to_vector();
  std::vector<double> rest = rand({17}, {}, &split).to_vector();
  first.insert(first.end(), rest.begin(), rest.end());
  CHECK(first == at_once);
  CHECK(rand({30}, {}, &whole).to_vector() != at_once);  // the offset moved on
}

TEST_CASE("uniform moments: mean (low+high)/2 and variance (high-low)^2/12 inside [low, high)") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Generator generator(3);
    Moments m = moments_of(uniform({200000}, -1.0, 3.0, {.dtype = dtype}, &generator).to_vector());
    CHECK(m.mean == doctest::Approx(1.0).epsilon(0.01));
    CHECK(m.variance == doctest::Approx(16.0 / 12.0).epsilon(0.01));
    CHECK(m.minimum >= -1.0);
    CHECK(m.maximum < 3.0);
  }
  Generator generator(4);
  Moments half = moments_of(rand({50000}, {.dtype = DType::f16}, &generator).to_vector());
  CHECK(half.minimum >= 0.0);
  CHECK(half.maximum <= 1.0);
  CHECK(half.mean == doctest::Approx(0.5).epsilon(0.02));
}

TEST_CASE("normal moments: mean, standard deviation and tails look right") {
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    Generator generator(5);
    std::vector<double> values =
        normal({200000}, 2.0, 3.0, {.dtype = dtype}, &generator).to_vector();
    Moments m = moments_of(values);
    CHECK(std::abs(m.mean - 2.0) < 0.03);
    CHECK(std::sqrt(m.variance) == doctest::Approx(3.0).epsilon(0.01));
    int beyond_two_sigma = 0;
    for (double v : values) beyond_two_sigma += std::abs(v - 2.0) > 6.0;
    CHECK(double(beyond_two_sigma) / double(values.size()) == doctest::Approx(0.0455).epsilon(0.1));
  }
}

TEST_CASE("f64 uniform draws use more than 24 random bits") {
  Generator generator(9);
  int finer_than_float = 0;
  for (double v : rand({100}, {.dtype = DType::f64}, &generator).to_vector()) {
    finer_than_float += double(float(v)) != v;
  }
  CHECK(finer_than_float > 90);
}

TEST_CASE("manual_seed makes the default generator repeat its draws") {
  manual_seed(123);
  std::vector<double> first = randn({20}).to_vector();
  CHECK(default_generator().offset() == 20);
  manual_seed(123);
  CHECK(randn({20}).to_vector() == first);
  manual_seed(124);
  CHECK(randn({20}).to_vector() != first);
}

TEST_CASE("dropout keeps elements whose uniform draw is >= p and scales them by 1/(1-p)") {
  ThreadCountGuard restore;
  const int64_t count = 50001;
  const double p = 0.3;
  const uint64_t seed = 77, offset = 1000;
  Tensor input = full({count}, 2.0);
  Tensor out = empty({count});
  Tensor mask = empty({count}, {.dtype = DType::u8});
  Backend& backend = backend_for(Device::cpu());
  set_num_threads(2);
  backend.dropout_forward(input, out, mask, p, seed, offset);
  Tensor draws = empty({count});
  backend.uniform(draws, 0.0, 1.0, seed, offset);
  std::vector<double> u = draws.to_vector(), kept = mask.to_vector(), values = out.to_vector();
  int64_t kept_count = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    CHECK(kept[i] == (u[i] >= p ? 1.0 : 0.0));
    CHECK(values[i] == doctest::Approx(kept[i] * 2.0 / (1.0 - p)));
    kept_count += int64_t(kept[i]);
  }
  CHECK(double(kept_count) / double(count) == doctest::Approx(0.7).epsilon(0.02));

  Tensor out_single = empty({count});
  Tensor mask_single = empty({count}, {.dtype = DType::u8});
  set_num_threads(1);
  backend.dropout_forward(input, out_single, mask_single, p, seed, offset);
  CHECK(mask_single.to_vector() == kept);

  Tensor grad_input = empty({count});
  backend.dropout_backward(full({count}, 1.0), mask, p, grad_input);
  std::vector<double> grads = grad_input.to_vector();
  for (size_t i = 0; i < grads.size(); i += 101) {
    CHECK(grads[i] == doctest::Approx(kept[i] / (1.0 - p)));
  }
}
