// Overhead of the Tensor API over raw loops and raw BLAS, measured in one process on the same
// buffers: ops::matmul against cblas_sgemm (256, 512, 1024 cubed) and ops::add of 1M floats
// against a plain loop into a preallocated buffer. Each figure is the median of repeated runs
// after warm-up; the ratio api/raw is what matters (targets: GEMM <= 1.05, add <= 1.3).
#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "apps/read_command_line.h"
#include "bench/timing.h"
#include "core/ops.h"
#include "core/parallel.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace {

using zt::bench::median;
using zt::bench::seconds_of;

const zt::apps::CommandLine kOpsCommandLine{
    "bench/ops",
    "Overhead of the Tensor API over raw loops and raw BLAS in one process: ops::matmul against\n"
    "cblas_sgemm (256, 512, 1024 cubed) and ops::add of 1M floats against a plain loop.",
    {}};

struct Timing {
  double api_seconds, raw_seconds;
};

// Median wall times of `api` and `raw` over `repeats` runs after `warmups` untimed runs of each.
// The two alternate run by run, so a change in machine load affects both alike.
template <typename Api, typename Raw>
Timing time_pair(int warmups, int repeats, const Api& api, const Raw& raw) {
  for (int i = 0; i < warmups; ++i) {
    api();
    raw();
  }
  std::vector<double> api_times, raw_times;
  for (int i = 0; i < repeats; ++i) {
    api_times.push_back(seconds_of(api));
    raw_times.push_back(seconds_of(raw));
  }
  return {median(api_times), median(raw_times)};
}

struct Row {
  std::string name;
  double api_seconds, raw_seconds, target;
};

Row bench_gemm(int64_t size) {
  zt::Tensor a = zt::rand({size, size});
  zt::Tensor b = zt::rand({size, size});
  zt::Tensor c = zt::empty({size, size});
  int repeats = size <= 256 ? 101 : size <= 512 ? 31 : 11;
  Timing timing = time_pair(
      3, repeats, [&] { zt::Tensor product = zt::ops::matmul(a, b); },
      [&] {
        // The baseline is OpenBLAS threading the product itself over the same threads (the
        // library keeps OpenBLAS single-threaded and cuts large products into pieces).
        openblas_set_num_threads(zt::num_threads());
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(size), blasint(size),
                    blasint(size), 1.0f, a.data_ptr<float>(), blasint(size), b.data_ptr<float>(),
                    blasint(size), 0.0f, c.data_ptr<float>(), blasint(size));
        openblas_set_num_threads(1);
      });
  return {fmt::format("matmul f32 {}^3", size), timing.api_seconds, timing.raw_seconds, 1.05};
}

Row bench_add() {
  const int64_t count = int64_t(1) << 20;
  zt::Tensor a = zt::rand({count});
  zt::Tensor b = zt::rand({count});
  std::vector<float> sum(static_cast<size_t>(count));
  const float* a_data = a.data_ptr<float>();
  const float* b_data = b.data_ptr<float>();
  Timing timing = time_pair(
      20, 201, [&] { zt::Tensor result = zt::ops::add(a, b); },
      [&] {
        for (int64_t i = 0; i < count; ++i) sum[size_t(i)] = a_data[i] + b_data[i];
      });
  return {"add f32 1M", timing.api_seconds, timing.raw_seconds, 1.3};
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<int> status =
      zt::apps::read_command_line(argc, argv, kOpsCommandLine, [](const zt::apps::Flags&) {});
  if (status) return *status;
  std::vector<Row> rows;
  for (int64_t size : {256, 512, 1024}) rows.push_back(bench_gemm(size));
  rows.push_back(bench_add());
  fmt::print("threads: {}\n", zt::num_threads());
  fmt::print("{:<18} {:>12} {:>12} {:>10} {:>8}\n", "case", "api ms", "raw ms", "api/raw",
             "target");
  for (const Row& row : rows) {
    double ratio = row.api_seconds / row.raw_seconds;
    fmt::print("{:<18} {:>12.4f} {:>12.4f} {:>10.3f} {:>8}\n", row.name, row.api_seconds * 1e3,
               row.raw_seconds * 1e3, ratio,
               fmt::format("{}{:.2f}", ratio <= row.target ? "<=" : "> ", row.target));
  }
  return 0;
}
