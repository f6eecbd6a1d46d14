// The one place a W8A8 layer (quant/) reaches the GPU's int8 GEMM (cuBLASLt, cuda/int8_gemm.h): the
// CUDA archive registers it here at static initialisation, so libzerotrain.a references no
// CUDA symbol and a CPU-only program links without any CUDA library.
#pragma once

#include <cstdint>

namespace zt {

// C[m, n] = sum_k A[m, k] * B[n, k], every buffer on CUDA device `device_index`: A and B
// signed 8-bit, C int32, row-major with leading dims lda, ldb, ldc (k, lda and ldb multiples
// of 4, as cuBLASLt's int8 kernels need).
struct DeviceInt8GemmArgs {
  const int8_t* a = nullptr;
  int64_t lda = 0;
  const int8_t* b = nullptr;
  int64_t ldb = 0;
  int32_t* c = nullptr;
  int64_t ldc = 0;
  int64_t m = 0, n = 0, k = 0;
  int device_index = 0;
};

// Runs the product on the device's compute stream and returns once C is written.
using DeviceInt8Gemm = void (*)(const DeviceInt8GemmArgs& args);

void register_device_int8_gemm(DeviceInt8Gemm gemm);
// Null when the program is not linked with the CUDA archive (or the build has no CUDA).
DeviceInt8Gemm registered_device_int8_gemm();

}  // namespace zt
