// GEMM through the ops layer (matmul, mm, bmm, linear) and Backend::gemm, checked against a
// plain triple loop in double: sizes 1, 3, 17, 129, both transposes as views, sliced and
// strided views, batches with broadcasting, f32/f64 exactly-ish and f16/bf16 by precision.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

const int64_t kOddSizes[] = {1, 3, 17, 129};

// C[m,n] = A[m,k] @ B[k,n] on row-major values.
std::vector<double> reference_matmul(const std::vector<double>& a, const std::vector<double>& b,
                                     int64_t m, int64_t k, int64_t n) {
  std::vector<double> c(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < k; ++p) sum += a[size_t(i * k + p)] * b[size_t(p * n + j)];
      c[size_t(i * n + j)] = sum;
    }
  }
  return c;
}

// A [rows, cols] operand, built either directly or as the transpose of a [cols, rows] tensor.
Tensor operand(int64_t rows, int64_t cols, bool as_transposed_view, uint32_t seed, DType dtype) {
  if (!as_transposed_view) return zt::test::random_tensor({rows, cols}, seed, dtype);
  return ops::transpose(zt::test::random_tensor({cols, rows}, seed, dtype), 0, 1);
}

double tolerance(DType dtype, int64_t k) {
  return dtype == DType::f64 ? 1e-12 * double(k + 1) : 1e-5 * double(k + 1);
}

}  // namespace

TEST_CASE("matmul of sizes 1, 3, 17, 129 with both transposes equals the reference loop") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (int64_t m : kOddSizes) {
      for (int64_t n : kOddSizes) {
        for (int64_t k : kOddSizes) {
          for (int transposes = 0; transposes < 4; ++transposes) {
            bool transpose_a = transposes & 1, transpose_b = transposes & 2;
            Tensor a = operand(m, k, transpose_a, uint32_t(m * 7 + k), dtype);
            Tensor b = operand(k, n, transpose_b, uint32_t(k * 11 + n), dtype);
            Tensor c = ops::matmul(a, b);
            CHECK(c.sizes() == Shape{m, n});
            CHECK(c.dtype() == dtype);
            zt::test::check_close(c, reference_matmul(a.to_vector(), b.to_vector(), m, k, n), 0.0,
                                  tolerance(dtype, k),
                                  "m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                      " k=" + std::to_string(k) +
                                      " transposes=" + std::to_string(transposes));
          }
        }
      }
    }
  }
}

TEST_CASE("mm of sliced and strided views equals the reference loop") {
  // A row slice keeps unit column stride with a row stride wider than the row: no copy needed.
  Tensor wide = zt::test::random_tensor({20, 40}, 1);
  Tensor a = ops::narrow(ops::narrow(wide, 1, 5, 17), 0, 2, 3);  // [3, 17], row stride 40
  // Every other column: neither stride is 1, so the ops layer must copy.
  Tensor b = ops::slice(zt::test::random_tensor({17, 258}, 2), 1, 0, 258, 2);  // [17, 129]
  Tensor c = ops::mm(a, b);
  zt::test::check_close(c, reference_matmul(a.to_vector(), b.to_vector(), 3, 17, 129), 0.0, 1e-4);
  // A transposed slice: column-major with a leading dimension larger than the rows.
  Tensor t = ops::transpose(ops::narrow(zt::test::random_tensor({17, 50}, 3), 1, 1, 3), 0, 1);
  Tensor d = ops::mm(t, zt::test::random_tensor({17, 1}, 4));
  zt::test::check_close(
      d, reference_matmul(t.to_vector(), zt::test::random_tensor({17, 1}, 4).to_vector(), 3, 17, 1),
      0.0, 1e-4);
}

TEST_CASE("bmm and broadcast batched matmul in f32 and f64 equal the reference loop per batch") {
  for (DType dtype : {DType::f32, DType::f64}) {
    int64_t m = 17, k = 3, n = 129;
    Tensor a = zt::test::random_tensor({3, m, k}, 5, dtype);
    Tensor b = ops::transpose(zt::test::random_tensor({3, n, k}, 6, dtype), 1, 2);  // [3, k, n]
    Tensor c = ops::bmm(a, b);
    REQUIRE(c.sizes() == Shape{3, m, n});
    for (int64_t batch = 0; batch < 3; ++batch) {
      zt::test::check_close(ops::select(c, 0, batch),
                            reference_matmul(ops::select(a, 0, batch).to_vector(),
                                             ops::select(b, 0, batch).to_vector(), m, k, n),
                            0.0, tolerance(dtype, k));
    }
    // [2, 1, m, k] @ [3, k, n] broadcasts to [2, 3, m, n].
    Tensor left = zt::test::random_tensor({2, 1, m, k}, 7, dtype);
    Tensor right = zt::test::random_tensor({3, k, n}, 8, dtype);
    Tensor product = ops::matmul(left, right);
    REQUIRE(product.sizes() == Shape{2, 3, m, n});
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        zt::test::check_close(
            ops::select(ops::select(product, 0, i), 0, j),
            reference_matmul(ops::select(ops::select(left, 0, i), 0, 0).to_vector(),
                             ops::select(right, 0, j).to_vector(), m, k, n),
            0.0, tolerance(dtype, k));
      }
    }
  }
}

TEST_CASE("matmul follows PyTorch's rules for 1-d operands and folds a batch times a matrix") {
  Tensor vector = zt::test::random_tensor({17}, 9, DType::f64);
  Tensor matrix = zt::test::random_tensor({17, 3}, 10, DType::f64);
  Tensor dot = ops::matmul(vector, vector);
  CHECK(dot.dim() == 0);
  std::vector<double> v = vector.to_vector();
  double expected_dot = 0.0;
  for (double x : v) expected_dot += x * x;
  CHECK(dot.item() == doctest::Approx(expected_dot).epsilon(1e-12));

  Tensor row = ops::matmul(vector, matrix);  // [17] @ [17, 3] -> [3]
  CHECK(row.sizes() == Shape{3});
  zt::test::check_close(row, reference_matmul(v, matrix.to_vector(), 1, 17, 3), 0.0, 1e-12);

  Tensor column = ops::matmul(ops::transpose(matrix, 0, 1), vector);  // [3, 17] @ [17] -> [3]
  CHECK(column.sizes() == Shape{3});
  zt::test::check_close(column, reference_matmul(v, matrix.to_vector(), 1, 17, 3), 0.0, 1e-12);

  // A strided vector (every other element) still multiplies correctly.
  Tensor strided = ops::slice(zt::test::random_tensor({34}, 11, DType::f64), 0, 0, 34, 2);
  zt::test::check_close(ops::matmul(strided, matrix),
                        reference_matmul(strided.to_vector(), matrix.to_vector(), 1, 17, 3), 0.0,
                        1e-12);

  // [2, 3, 17] @ [17, 3]: folded into one [6, 17] @ [17, 3] product.
  Tensor batch = zt::test::random_tensor({2, 3, 17}, 12, DType::f64);
  Tensor folded = ops::matmul(batch, matrix);
  CHECK(folded.sizes() == Shape{2, 3, 3});
  zt::test::check_close(folded, reference_matmul(batch.to_vector(), matrix.to_vector(), 6, 17, 3),
                        0.0, 1e-12);

  // A broadcast (stride-0) batch operand.
  Tensor expanded = ops::expand(ops::unsqueeze(matrix, 0), {4, 17, 3});
  Tensor batched = ops::matmul(zt::test::random_tensor({4, 1, 17}, 13, DType::f64), expanded);
  CHECK(batched.sizes() == Shape{4, 1, 3});
}

TEST_CASE("linear with and without bias equals x @ weight^T + bias") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = zt::test::random_tensor({2, 3, 17}, 14, dtype);
    Tensor weight = zt::test::random_tensor({129, 17}, 15, dtype);
    Tensor bias = zt::test::random_tensor({129}, 16, dtype);
    std::vector<double> weight_t(17 * 129);
    std::vector<double> w = weight.to_vector();
    for (int64_t o = 0; o < 129; ++o) {
      for (int64_t i = 0; i < 17; ++i) weight_t[size_t(i * 129 + o)] = w[size_t(o * 17 + i)];
    }
    std::vector<double> expected = reference_matmul(x.to_vector(), weight_t, 6, 17, 129);
    zt::test::check_close(ops::linear(x, weight, Tensor()), expected, 0.0, tolerance(dtype, 17));
    std::vector<double> b = bias.to_vector();
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += b[i % 129];
    Tensor out = ops::linear(x, weight, bias);
    CHECK(out.sizes() == Shape{2, 3, 129});
    zt::test::check_close(out, expected, 0.0, tolerance(dtype, 17));
  }
}

TEST_CASE("f16 and bf16 matmul match the reference within their precision") {
  for (DType dtype : {DType::f16, DType::bf16}) {
    for (int64_t size : kOddSizes) {
      Tensor a = operand(size, 17, true, 17, dtype);
      Tensor b = operand(17, size, false, 18, dtype);
      Tensor c = ops::matmul(a, b);
      CHECK(c.dtype() == dtype);
      // Inputs are exact in the reference (it reads the rounded values); the result is rounded
      // once to the dtype, and the f32 accumulation adds a little.
      zt::test::check_close(c, reference_matmul(a.to_vector(), b.to_vector(), size, 17, size),
                            2 * zt::test::unit_roundoff(dtype), 1e-4);
    }
  }
}

TEST_CASE("Backend::gemm honours alpha, beta and batch strides") {
  int64_t m = 3, n = 17, k = 129, batch = 2;
  Tensor a = zt::test::random_tensor({batch, m, k}, 19, DType::f64);
  Tensor b = zt::test::random_tensor({batch, k, n}, 20, DType::f64);
  Tensor c = zt::test::random_tensor({batch, m, n}, 21, DType::f64);
  std::vector<double> c_before = c.to_vector();
  zt::GemmArgs args;
  args.m = m;
  args.n = n;
  args.k = k;
  args.alpha = 2.0;
  args.beta = 0.5;
  args.a = a.raw_data();
  args.lda = k;
  args.batch_stride_a = m * k;
  args.b = b.raw_data();
  args.ldb = n;
  args.batch_stride_b = k * n;
  args.c = c.raw_data();
  args.ldc = n;
  args.batch_stride_c = m * n;
  args.batch = batch;
  args.dtype = DType::f64;
  zt::backend_for(zt::Device::cpu()).gemm(args);
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<double> product = reference_matmul(ops::select(a, 0, i).to_vector(),
                                                   ops::select(b, 0, i).to_vector(), m, k, n);
    for (size_t j = 0; j < product.size(); ++j) {
      product[j] = 2.0 * product[j] + 0.5 * c_before[size_t(i * m * n) + j];
    }
    zt::test::check_close(ops::select(c, 0, i), product, 0.0, 1e-11);
  }
}

// A single row of C goes through BLAS's matrix-vector product (a decode step at batch 1):
// every layout of A and B, alpha and beta, and beta 0 over a C that holds NaNs.
TEST_CASE("Backend::gemm of a single row: both transposes, alpha, beta, and beta 0 over NaNs") {
  const int64_t n = 70, k = 129;
  const std::vector<double> a_values = zt::test::random_tensor({k}, 31).to_vector();
  const std::vector<double> b_values = zt::test::random_tensor({k, n}, 32).to_vector();
  const std::vector<double> product = reference_matmul(a_values, b_values, 1, k, n);
  for (bool transpose_a : {false, true}) {
    for (bool transpose_b : {false, true}) {
      for (double beta : {0.0, 0.5}) {
        CAPTURE(transpose_a);
        CAPTURE(transpose_b);
        CAPTURE(beta);
        // A stored [1, k] or [k, 3] (op(A) its column 1); B stored [k, n] or [n, k].
        const int64_t a_stride = 3;
        std::vector<double> a_stored(size_t(transpose_a ? k * a_stride : k), 0.0);
        for (int64_t p = 0; p < k; ++p)
          a_stored[size_t(transpose_a ? p * a_stride + 1 : p)] = a_values[size_t(p)];
        std::vector<double> b_stored(size_t(k * n));
        for (int64_t p = 0; p < k; ++p)
          for (int64_t j = 0; j < n; ++j)
            b_stored[size_t(transpose_b ? j * k + p : p * n + j)] = b_values[size_t(p * n + j)];
        Tensor a = zt::from_values(a_stored, {int64_t(a_stored.size())}).to(DType::f32);
        Tensor b = zt::from_values(b_stored, {k * n}).to(DType::f32);
        Tensor c = zt::full({n}, beta == 0.0 ? std::nan("") : 2.0);
        zt::GemmArgs args;
        args.transpose_a = transpose_a;
        args.transpose_b = transpose_b;
        args.m = 1;
        args.n = n;
        args.k = k;
        args.alpha = 2.0;
        args.beta = beta;
        args.a = static_cast<const float*>(a.raw_data()) + (transpose_a ? 1 : 0);
        args.lda = transpose_a ? a_stride : k;
        args.b = b.raw_data();
        args.ldb = transpose_b ? k : n;
        args.c = c.raw_data();
        args.ldc = n;
        zt::backend_for(zt::Device::cpu()).gemm(args);
        std::vector<double> expected(static_cast<size_t>(n), 0.0);
        for (int64_t j = 0; j < n; ++j)
          expected[size_t(j)] = 2.0 * product[size_t(j)] + (beta == 0.0 ? 0.0 : 0.5 * 2.0);
        zt::test::check_close(c, expected, 1e-5, 1e-5);
      }
    }
  }
}

TEST_CASE("matmul with an empty inner dimension gives zeros") {
  Tensor a = zt::zeros({3, 0});
  Tensor b = zt::zeros({0, 17});
  Tensor c = ops::matmul(a, b);
  CHECK(c.sizes() == Shape{3, 17});
  zt::test::check_close(c, std::vector<double>(51, 0.0), 0.0, 0.0);
}

TEST_CASE("matmul errors name the op and both shapes") {
  Tensor a = zt::zeros({3, 4});
  Tensor b = zt::zeros({5, 6});
  CHECK_THROWS_WITH_AS(ops::matmul(a, b), doctest::Contains("matmul: shapes [3, 4] and [5, 6]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::mm(zt::zeros({3}), b), doctest::Contains("mm: expected two 2-d"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::matmul(a, zt::zeros({4, 2}, {.dtype = DType::f64})),
                       doctest::Contains("matmul: dtypes differ"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::bmm(zt::zeros({2, 3, 4}), zt::zeros({3, 4, 5})),
                       doctest::Contains("bmm:"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::linear(zt::zeros({2, 3}), zt::zeros({4, 5}), Tensor()),
                       doctest::Contains("linear: input [2, 3]"), std::invalid_argument);
}

TEST_CASE("matmul gives the same bits on 1 and 2 threads, cut into pieces or not") {
  // The shapes where OpenBLAS's own threading rounded differently (inner sizes 512-1024),
  // edge-sized ones, both transposes, and a batch.
  struct Shape3 {
    int64_t m, n, k;
    bool transpose_a, transpose_b;
  };
  for (Shape3 shape : {Shape3{64, 256, 784, false, false}, Shape3{64, 784, 256, false, true},
                       Shape3{256, 128, 64, true, false}, Shape3{129, 517, 1000, true, true},
                       Shape3{300, 33, 600, false, false}, Shape3{1, 1024, 1024, false, false}}) {
    CAPTURE(shape.m);
    CAPTURE(shape.n);
    CAPTURE(shape.k);
    Tensor a = operand(shape.m, shape.k, shape.transpose_a, 11, DType::f32);
    Tensor b = operand(shape.k, shape.n, shape.transpose_b, 12, DType::f32);
    zt::set_num_threads(1);
    std::vector<double> one_thread = ops::matmul(a, b).to_vector();
    zt::set_num_threads(2);
    std::vector<double> two_threads = ops::matmul(a, b).to_vector();
    zt::set_num_threads(zt::default_num_threads());
    CHECK(two_threads == one_thread);
  }
  Tensor batched_a = ops::reshape(operand(3 * 96, 640, false, 13, DType::f32), {3, 96, 640});
  Tensor batched_b = ops::reshape(operand(3 * 640, 200, false, 14, DType::f32), {3, 640, 200});
  zt::set_num_threads(1);
  std::vector<double> one_thread = ops::bmm(batched_a, batched_b).to_vector();
  zt::set_num_threads(2);
  std::vector<double> two_threads = ops::bmm(batched_a, batched_b).to_vector();
  zt::set_num_threads(zt::default_num_threads());
  CHECK(two_threads == one_thread);
}
