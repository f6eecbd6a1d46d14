// cuBLASLt int8 x int8 -> int32 GEMM (cuda/int8_gemm.h).
#include "cuda/int8_gemm.h"

#include <cublasLt.h>

#include <limits>
#include <stdexcept>
#include <string>

#include "core/device_int8_gemm.h"
#include "cuda/check.h"
#include "cuda/device.h"

namespace zt::cuda {

namespace {

// One cuBLASLt handle per process: it holds no stream, so every caller may share it.
cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t handle = [] {
    cublasLtHandle_t created = nullptr;
    ZT_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return handle;
}

void check_args(const Int8GemmDeviceArgs& args) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("int8_gemm_cublaslt: " + what + " (m=" + std::to_string(args.m) +
                                " n=" + std::to_string(args.n) + " k=" + std::to_string(args.k) +
                                ")");
  };
  if (args.k % 4 != 0 || args.lda % 4 != 0 || args.ldb % 4 != 0)
    fail("k, lda and ldb must be multiples of 4");
  if (args.lda < args.k || args.ldb < args.k || args.ldc < args.n) fail("leading dims too small");
  if (args.m > std::numeric_limits<int32_t>::max() || args.n > std::numeric_limits<int32_t>::max())
    fail("sizes exceed cuBLASLt's int range");
}

// A column-major int8 or int32 matrix layout of rows x cols with leading dim ld.
struct Layout {
  cublasLtMatrixLayout_t handle = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    ZT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&handle, type, uint64_t(rows), uint64_t(cols), ld));
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(handle); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

// The int32 product's descriptor, B's buffer transposed (the "TN" form).
struct MatmulDesc {
  cublasLtMatmulDesc_t handle = nullptr;
  MatmulDesc() {
    ZT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&handle, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    cublasOperation_t transposed = CUBLAS_OP_T, plain = CUBLAS_OP_N;
    set(CUBLASLT_MATMUL_DESC_TRANSA, transposed);
    set(CUBLASLT_MATMUL_DESC_TRANSB, plain);
  }
  void set(cublasLtMatmulDescAttributes_t attribute, cublasOperation_t value) {
    cublasStatus_t status =
        cublasLtMatmulDescSetAttribute(handle, attribute, &value, sizeof(value));
    if (status != CUBLAS_STATUS_SUCCESS) {
      cublasLtMatmulDescDestroy(handle);
      ZT_CUBLAS_CHECK(status);
    }
  }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(handle); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
};

}  // namespace

void int8_gemm_cublaslt(const Int8GemmDeviceArgs& args, cudaStream_t stream) {
  check_args(args);
  if (args.m == 0 || args.n == 0) return;
  MatmulDesc operation;
  // Column-major: C^T [n, m] = (B buffer read as [k, n], ld = ldb)^T x (A buffer read as
  // [k, m], ld = lda).
  Layout weight(CUDA_R_8I, args.k, args.n, args.ldb);
  Layout tokens(CUDA_R_8I, args.k, args.m, args.lda);
  Layout sums(CUDA_R_32I, args.n, args.m, args.ldc);
  int32_t alpha = 1, beta = 0;
  ZT_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), operation.handle, &alpha, args.b, weight.handle,
                                 args.a, tokens.handle, &beta, args.c, sums.handle, args.c,
                                 sums.handle, nullptr, nullptr, 0, stream));
}

namespace {

// What QuantizedLinear's W8A8 forward calls for CUDA inputs (core/device_int8_gemm.h): the
// product on the device's compute stream, waited for, since the host rescales C next.
[[maybe_unused]] const bool device_int8_gemm_registered = [] {
  register_device_int8_gemm([](const DeviceInt8GemmArgs& args) {
    DeviceGuard on_device(args.device_index);
    const cudaStream_t stream = compute_stream(args.device_index);
    int8_gemm_cublaslt({.a = args.a,
                        .lda = args.lda,
                        .b = args.b,
                        .ldb = args.ldb,
                        .c = args.c,
                        .ldc = args.ldc,
                        .m = args.m,
                        .n = args.n,
                        .k = args.k},
                       stream);
    ZT_CUDA_CHECK(cudaStreamSynchronize(stream));
  });
  return true;
}();

}  // namespace

}  // namespace zt::cuda
