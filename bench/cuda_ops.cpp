// CUDA kernel speed, as ratios within one run: elementwise add, an f32 -> bf16 cast and layer
// norm forward, each as a fraction of the bandwidth of a device-to-device copy of the same
// bytes measured in the same process; the fused multi-tensor Adam over 100M parameters (one
// flat tensor, and the same bytes as 100 tensors in one call) and sum_of_squares, against a
// copy of 100M f32; and GEMM TFLOP/s through the Tensor API (ops::matmul)
// against cublasGemmEx called directly on the same buffers. Prints "no CUDA device" and exits
// 0 on a machine without a GPU or in a build without CUDA.
#include <cstdio>
#include <optional>

#include "apps/read_command_line.h"

namespace {

const zt::apps::CommandLine kCudaOpsCommandLine{
    "bench/cuda_ops",
    "CUDA kernel speed as ratios within one run: add, cast and layer norm against a device copy;\n"
    "fused Adam over 100M parameters; GEMM through the Tensor API against cuBLAS.",
    {}};

// nullopt when the program goes on; else the status that --help or a bad flag ends it with.
std::optional<int> read_flags(int argc, char** argv) {
  return zt::apps::read_command_line(argc, argv, kCudaOpsCommandLine,
                                     [](const zt::apps::Flags&) {});
}

}  // namespace

#ifndef ZT_CUDA
int main(int argc, char** argv) {
  if (std::optional<int> status = read_flags(argc, argv)) return *status;
  std::printf("no CUDA device (built without CUDA)\n");
  return 0;
}
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"
#include "core/ops/nn.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "cuda/device.h"
#include "optim/update_rules.h"

using namespace zt;

namespace {

const Device kGpu = Device::cuda(0);

// Milliseconds per call of `fn` on the compute stream, after warm-up, by CUDA events.
double time_ms(const std::function<void()>& fn, int repeats = 20) {
  cudaStream_t stream = cuda::compute_stream(0);
  for (int i = 0; i < 3; ++i) fn();
  cuda::Event start(true), stop(true);
  start.record(stream);
  for (int i = 0; i < repeats; ++i) fn();
  stop.record(stream);
  stop.synchronize();
  return double(start.elapsed_ms(stop)) / repeats;
}

double gib_per_s(double bytes, double ms) {
  return bytes / (ms * 1e-3) / double(1 << 30);
}

// Bandwidth of elementwise kernels over 64 Mi f32 elements, as a fraction of a device copy.
void bench_elementwise() {
  const int64_t n = int64_t(1) << 26;  // 64 Mi elements: 256 MiB in f32
  Tensor a = rand({n}, {.device = kGpu}), b = rand({n}, {.device = kGpu});
  Tensor out = empty({n}, {.device = kGpu});
  Tensor half_out = empty({n}, {.dtype = DType::bf16, .device = kGpu});

  double copy_ms = time_ms([&] { ops::copy_(out, a); });
  double copy_bw = gib_per_s(2.0 * 4 * double(n), copy_ms);
  std::printf("%-28s %10s %12s %10s\n", "kernel", "ms", "GiB/s", "of copy");
  std::printf("%-28s %10.3f %12.1f %10s\n", "copy d2d f32 (baseline)", copy_ms, copy_bw, "1.00");
  auto report = [&](const char* name, double bytes, double ms) {
    double bw = gib_per_s(bytes, ms);
    std::printf("%-28s %10.3f %12.1f %10.2f\n", name, ms, bw, bw / copy_bw);
  };
  report("add f32", 3.0 * 4 * double(n),
         time_ms([&] { backend_for(kGpu).binary(BinaryOp::add, a, b, out); }));
  report("cast f32 -> bf16", 6.0 * double(n), time_ms([&] { ops::copy_(half_out, a); }));
  const int64_t cols = 1024, rows = n / cols;
  Tensor x = ops::view(a, {rows, cols}), y = ops::view(out, {rows, cols});
  Tensor gamma = ones({cols}, {.device = kGpu}), beta = zeros({cols}, {.device = kGpu});
  Tensor mean = empty({rows}, {.device = kGpu}), rstd = empty({rows}, {.device = kGpu});
  report("layer norm f32 [65536,1024]", 2.0 * 4 * double(n), time_ms([&] {
           backend_for(kGpu).layer_norm_forward(x, gamma, beta, 1e-5, y, mean, rstd);
         }));
}

// The fused Adam update over 100M parameters (one tensor, then 100), against a copy of them.
void bench_adam() {
  // Adam reads param, grad, exp_avg, exp_avg_sq and writes param, exp_avg, exp_avg_sq.
  const int64_t params = 100'000'000, pieces = 100;
  Tensor param = rand({params}, {.device = kGpu}), grad = rand({params}, {.device = kGpu});
  Tensor exp_avg = zeros({params}, {.device = kGpu}),
         exp_avg_sq = zeros({params}, {.device = kGpu});
  Tensor param_copy = empty({params}, {.device = kGpu});
  double adam_copy_bw =
      gib_per_s(2.0 * 4 * double(params), time_ms([&] { ops::copy_(param_copy, param); }));
  AdamStepConstants k = optim::adam_step_constants({.lr = 1e-3, .weight_decay = 0.01, .step = 10});
  std::vector<AdamOperands> flat = {{param, grad, exp_avg, exp_avg_sq}}, split;
  for (int64_t piece = 0; piece < pieces; ++piece) {
    auto slice = [&](const Tensor& t) {
      return ops::narrow(t, 0, piece * (params / pieces), params / pieces);
    };
    split.push_back({slice(param), slice(grad), slice(exp_avg), slice(exp_avg_sq)});
  }
  auto report_100m = [&](const char* name, double bytes, double ms) {
    double bw = gib_per_s(bytes, ms);
    std::printf("%-28s %10.3f %12.1f %10.2f\n", name, ms, bw, bw / adam_copy_bw);
  };
  std::printf("\n%-28s %10s %12s %10s\n", "100M f32 parameters", "ms", "GiB/s", "of copy");
  std::printf("%-28s %10s %12.1f %10s\n", "copy d2d f32 (baseline)", "", adam_copy_bw, "1.00");
  const double adam_bytes = 7.0 * 4 * double(params);
  report_100m("adam fused, 1 tensor", adam_bytes,
              time_ms([&] { backend_for(kGpu).adam_update(flat, k); }));
  report_100m("adam fused, 100 tensors", adam_bytes,
              time_ms([&] { backend_for(kGpu).adam_update(split, k); }));
  std::vector<double> sums(1);
  report_100m("sum_of_squares f32 (+sync)", 4.0 * double(params), time_ms([&] {
                backend_for(kGpu).sum_of_squares({&grad, 1}, sums);
              }));
}

// ZeroTrain's matmul against cuBLAS called directly, f32 and bf16.
void bench_gemm() {
  std::printf("\n%-28s %10s %12s %12s\n", "gemm m=n=k", "dtype", "zt TFLOP/s", "cublas TFLOP/s");
  cublasHandle_t handle = cuda::context(0).blas;
  for (DType dtype : {DType::f32, DType::bf16}) {
    const int size = 4096;
    Tensor left = rand({size, size}, {.dtype = dtype, .device = kGpu});
    Tensor right = rand({size, size}, {.dtype = dtype, .device = kGpu});
    Tensor product = empty({size, size}, {.dtype = dtype, .device = kGpu});
    double flops = 2.0 * size * double(size) * size;
    double api_ms = time_ms([&] { product = ops::matmul(left, right); }, 10);
    cudaDataType_t type = dtype == DType::f32 ? CUDA_R_32F : CUDA_R_16BF;
    float alpha = 1.0f, beta_value = 0.0f;
    double direct_ms = time_ms(
        [&] {
          cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, size, size, size, &alpha, right.raw_data(),
                       type, size, left.raw_data(), type, size, &beta_value, product.raw_data(),
                       type, size, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        },
        10);
    std::printf("%-28d %10s %12.1f %12.1f\n", size, std::string(dtype_name(dtype)).c_str(),
                flops / (api_ms * 1e-3) / 1e12, flops / (direct_ms * 1e-3) / 1e12);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (std::optional<int> status = read_flags(argc, argv)) return *status;
  if (cuda_device_count() == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  std::printf("device: %s\n", properties.name);
  bench_elementwise();
  bench_adam();
  bench_gemm();
  return 0;
}
#endif
