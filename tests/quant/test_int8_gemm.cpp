// The int8 GEMM (VNNI and portable paths) against a plain int32 loop, on shapes with every
// kind of tail (rows past a 6-row tile, columns past a 64-column panel, k not a multiple of 4).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/cpu/cpu_int8_gemm.h"

using namespace zt;

namespace {

struct Operands {
  int64_t m, n, k;
  std::vector<uint8_t> a;
  std::vector<int8_t> b;
};

Operands random_operands(int64_t m, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  Operands operands{m, n, k, std::vector<uint8_t>(size_t(m * k)),
                    std::vector<int8_t>(size_t(n * k))};
  for (uint8_t& value : operands.a) value = uint8_t(byte(random));
  for (int8_t& value : operands.b) value = int8_t(byte(random) - 128);
  return operands;
}

std::vector<int32_t> plain_product(const Operands& o) {
  std::vector<int32_t> c(size_t(o.m * o.n), 0);
  for (int64_t i = 0; i < o.m; ++i)
    for (int64_t j = 0; j < o.n; ++j) {
      int64_t sum = 0;
      for (int64_t p = 0; p < o.k; ++p)
        sum += int64_t(o.a[size_t(i * o.k + p)]) * o.b[size_t(j * o.k + p)];
      c[size_t(i * o.n + j)] = int32_t(sum);
    }
  return c;
}

std::vector<int32_t> run(void (*gemm)(const cpu::Int8GemmArgs&), const Operands& o,
                         const int8_t* b_packed = nullptr) {
  std::vector<int32_t> c(size_t(o.m * o.n), -7);
  gemm({.a = o.a.data(),
        .lda = o.k,
        .b = o.b.empty() ? nullptr : o.b.data(),
        .ldb = o.k,
        .b_packed = b_packed,
        .c = c.data(),
        .ldc = o.n,
        .m = o.m,
        .n = o.n,
        .k = o.k});
  return c;
}

}  // namespace

TEST_CASE("int8 gemm: VNNI and portable paths equal a plain int32 loop on tails of every kind") {
  uint32_t seed = 1;
  for (int64_t m : {1, 5, 6, 13, 100})
    for (int64_t n : {1, 63, 64, 130})
      for (int64_t k : {1, 3, 4, 67, 256}) {
        INFO("m=" << m << " n=" << n << " k=" << k);
        Operands operands = random_operands(m, n, k, seed++);
        std::vector<int32_t> expected = plain_product(operands);
        CHECK(run(cpu::int8_gemm_portable, operands) == expected);
        CHECK(run(cpu::int8_gemm, operands) == expected);
        if (cpu::int8_gemm_has_vnni()) CHECK(run(cpu::int8_gemm_vnni, operands) == expected);
      }
}

TEST_CASE("int8 gemm: B packed once gives the same integers; the layout is [k/4][64][4] panels") {
  uint32_t seed = 100;
  for (int64_t m : {1, 7, 100})
    for (int64_t n : {1, 63, 130})
      for (int64_t k : {1, 3, 67, 256}) {
        INFO("m=" << m << " n=" << n << " k=" << k);
        Operands operands = random_operands(m, n, k, seed++);
        int64_t quads = (k + 3) / 4, panels = (n + 63) / 64;
        REQUIRE(cpu::int8_gemm_packed_b_bytes(n, k) == panels * quads * 256);
        std::vector<int8_t> packed(size_t(cpu::int8_gemm_packed_b_bytes(n, k)), 99);
        cpu::int8_gemm_pack_b(operands.b.data(), k, n, k, packed.data());
        // Byte (panel, quad, column, lane) holds B[panel * 64 + column, quad * 4 + lane], or 0.
        bool layout_right = true;
        for (int64_t j = 0; j < panels * 64; ++j)
          for (int64_t p = 0; p < quads * 4; ++p) {
            int8_t expected = j < n && p < k ? operands.b[size_t(j * k + p)] : int8_t(0);
            size_t at = size_t(((j / 64 * quads + p / 4) * 64 + j % 64) * 4 + p % 4);
            layout_right &= packed[at] == expected;
          }
        CHECK(layout_right);
        std::vector<int32_t> expected = plain_product(operands);
        CHECK(run(cpu::int8_gemm, operands, packed.data()) == expected);
        CHECK(run(cpu::int8_gemm_serial, operands, packed.data()) == expected);
        // B held packed only (a W8A8 layer keeps no row-major copy): every path reads the
        // panels, and unpacking them gives B back.
        std::vector<int8_t> row_major = std::move(operands.b);
        operands.b.clear();
        CHECK(run(cpu::int8_gemm, operands, packed.data()) == expected);
        CHECK(run(cpu::int8_gemm_portable, operands, packed.data()) == expected);
        std::vector<int8_t> unpacked(size_t(n * k), 99);
        cpu::int8_gemm_unpack_b(packed.data(), n, k, unpacked.data(), k);
        CHECK(unpacked == row_major);
        bool reads_right = true;
        for (int64_t j = 0; j < n; ++j)
          for (int64_t p = 0; p < k; ++p)
            reads_right &=
                cpu::int8_gemm_packed_b_at(packed.data(), k, j, p) == row_major[size_t(j * k + p)];
        CHECK(reads_right);
      }
}

TEST_CASE("int8 gemm: extreme codes (255 x -128 at the largest k) sum without overflow") {
  int64_t k = cpu::kInt8GemmMaxK;
  Operands operands{2, 3, k, std::vector<uint8_t>(size_t(2 * k), 255),
                    std::vector<int8_t>(size_t(3 * k), -128)};
  std::vector<int32_t> c = run(cpu::int8_gemm, operands);
  CHECK(c[0] == int32_t(-255LL * 128 * k));
  CHECK(c == plain_product(operands));
}

TEST_CASE("int8 gemm: k past the accumulator's bound is refused naming k") {
  Operands operands = random_operands(1, 1, 1, 3);
  cpu::Int8GemmArgs args{.a = operands.a.data(),
                         .lda = 70000,
                         .b = operands.b.data(),
                         .ldb = 70000,
                         .c = nullptr,
                         .ldc = 1,
                         .m = 1,
                         .n = 1,
                         .k = 70000};
  CHECK_THROWS_WITH_AS(cpu::int8_gemm(args), doctest::Contains("k=70000"), std::invalid_argument);
}

TEST_CASE("int8 gemm: this x86-64 build takes the VNNI path where the processor has it") {
#if defined(__x86_64__)
  bool processor_has = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  CHECK(cpu::int8_gemm_has_vnni() == processor_has);
#endif
}

namespace {

// Random per-row and per-column terms of the epilogue for operands `o`, and the formula in
// double over the plain int32 product.
struct RescaleCase {
  std::vector<float> row_scales, row_sums, col_scales, col_zeros, bias;
  std::vector<int32_t> row_zeros, col_sums;
  std::vector<double> expected;  // [m, n]
};

double gelu_tanh_of(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

// no_col_scales: col_scales left empty (passed as null: one), as a one-group weight passes them.
RescaleCase rescale_case(const Operands& o, bool asymmetric, bool gelu, bool no_col_scales,
                         uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> unit(0.001f, 0.02f);
  std::uniform_int_distribution<int> zero(0, 255);
  RescaleCase r;
  for (int64_t i = 0; i < o.m; ++i) {
    r.row_scales.push_back(unit(random));
    r.row_zeros.push_back(zero(random));
    r.row_sums.push_back(float(zero(random) * 40 - 5000));
  }
  for (int64_t j = 0; j < o.n; ++j) {
    int32_t sum = 0;
    for (int64_t p = 0; p < o.k; ++p) sum += o.b[size_t(j * o.k + p)];
    r.col_sums.push_back(sum);
    const float col_scale = unit(random);
    if (!no_col_scales) r.col_scales.push_back(col_scale);
    r.col_zeros.push_back(float(zero(random) - 128));
    r.bias.push_back(unit(random) * 50 - 0.5f);
  }
  const std::vector<int32_t> product = plain_product(o);
  for (int64_t i = 0; i < o.m; ++i)
    for (int64_t j = 0; j < o.n; ++j) {
      double value = double(product[size_t(i * o.n + j)]) -
                     double(r.row_zeros[size_t(i)]) * r.col_sums[size_t(j)];
      if (asymmetric) value -= double(r.row_sums[size_t(i)]) * r.col_zeros[size_t(j)];
      const double col_scale = no_col_scales ? 1.0 : r.col_scales[size_t(j)];
      value = double(r.row_scales[size_t(i)]) * col_scale * value + r.bias[size_t(j)];
      r.expected.push_back(gelu ? gelu_tanh_of(value) : value);
    }
  return r;
}

// The largest error (relative to max(1, |expected|)) of `gemm` with the epilogue, writing rows
// of stride n + 3 whose 3 extra floats must stay untouched.
double rescaled_error(void (*gemm)(const cpu::Int8GemmArgs&), const Operands& o,
                      const RescaleCase& r, bool asymmetric, bool gelu) {
  const int64_t m = o.m, n = o.n;
  std::vector<float> y(size_t(m * (n + 3)), -7.0f);
  const cpu::Int8GemmRescale rescale{
      .y = y.data(),
      .ldy = n + 3,
      .row_scales = r.row_scales.data(),
      .row_zeros = r.row_zeros.data(),
      .row_sums = r.row_sums.data(),
      .col_scales = r.col_scales.empty() ? nullptr : r.col_scales.data(),
      .col_sums = r.col_sums.data(),
      .col_zeros = asymmetric ? r.col_zeros.data() : nullptr,
      .bias = r.bias.data(),
      .gelu_tanh = gelu};
  gemm({.a = o.a.data(),
        .lda = o.k,
        .b = o.b.empty() ? nullptr : o.b.data(),
        .ldb = o.k,
        .rescale = &rescale,
        .m = m,
        .n = n,
        .k = o.k});
  double worst = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double want = r.expected[size_t(i * n + j)];
      worst = std::max(worst,
                       std::abs(y[size_t(i * (n + 3) + j)] - want) / std::max(1.0, std::abs(want)));
    }
    for (int64_t j = n; j < n + 3; ++j) CHECK(y[size_t(i * (n + 3) + j)] == -7.0f);
  }
  return worst;
}

}  // namespace

// The epilogue (Int8GemmRescale) on every path against the formula in double over the plain
// int32 product: per-row scales and zero points, per-column scales, code sums, zero points and
// bias, with and without GELU (its tanh form), on tails of every kind; at n = 64 without column
// scales (null: one).
TEST_CASE("int8 gemm: the rescaling epilogue (zero points, bias, GELU) equals the formula") {
  uint32_t seed = 300;
  for (int64_t m : {1, 7, 13})
    for (int64_t n : {5, 64, 130})
      for (bool asymmetric : {false, true})
        for (bool gelu : {false, true}) {
          INFO("m=" << m << " n=" << n << " asymmetric=" << asymmetric << " gelu=" << gelu);
          const Operands o = random_operands(m, n, 67, seed++);
          const RescaleCase r = rescale_case(o, asymmetric, gelu, n == 64, seed);
          CHECK(rescaled_error(cpu::int8_gemm_portable, o, r, asymmetric, gelu) < 1e-5);
          CHECK(rescaled_error(cpu::int8_gemm, o, r, asymmetric, gelu) < 1e-5);
          CHECK(rescaled_error(cpu::int8_gemm_serial, o, r, asymmetric, gelu) < 1e-5);
          if (cpu::int8_gemm_has_vnni())
            CHECK(rescaled_error(cpu::int8_gemm_vnni, o, r, asymmetric, gelu) < 1e-5);
        }
}
