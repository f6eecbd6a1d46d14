// CudaBackend::conv2d_forward / backward_input / backward_weight through cuDNN's legacy API
// (cudnnConvolutionForward, BackwardData, BackwardFilter), NCHW with any stride, padding,
// dilation and groups, plus our own bias kernel. Invariants: f32 runs without TF32 unless
// set_allow_tf32(true) (CUDNN_FMA_MATH: cuDNN's DEFAULT_MATH would allow TF32 on sm_80+);
// f16/bf16 are stored 16-bit and accumulated in f32 (PSEUDO_HALF / PSEUDO_BFLOAT16 configs);
// f64 in f64. Algorithms come from the cudnnGet*_v7 heuristics (no trial runs, so no device
// synchronisation and no extra memory), deterministic ones first, cached per shape key.
#include <array>
#include <climits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "core/factory.h"
#include "cuda/cuda_backend.h"
#include "cuda/cudnn.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

enum class ConvPass : int64_t { forward, backward_data, backward_filter };

int checked_int(int64_t value, const char* op, const char* what) {
  if (value > INT_MAX) {
    throw std::invalid_argument(std::string(op) + " on CUDA: " + what + " " +
                                std::to_string(value) + " exceeds cuDNN's int range");
  }
  return int(value);
}

cudnnDataType_t cudnn_data_type(DType dtype, const char* op) {
  switch (dtype) {
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::f64:
      return CUDNN_DATA_DOUBLE;
    case DType::f16:
      return CUDNN_DATA_HALF;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    default:
      unsupported_dtype(op, dtype);
  }
}

// f32 keeps f32 products unless TF32 is allowed; 16-bit types use tensor cores (their inputs
// are already 16-bit, the accumulation stays f32 by the descriptor's compute type).
cudnnMathType_t math_type(DType dtype) {
  if (dtype == DType::f32) return allow_tf32() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
  if (dtype == DType::f64) return CUDNN_DEFAULT_MATH;
  return CUDNN_TENSOR_OP_MATH;
}

// RAII wrappers, so that a throwing cuDNN call leaks no descriptor.
class TensorDescriptor {
 public:
  TensorDescriptor(const Tensor& tensor, const char* op, const char* role) {
    ZT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&descriptor_));
    checked_int(tensor.numel(), op, role);  // cuDNN indexes a tensor with int
    ZT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
        descriptor_, CUDNN_TENSOR_NCHW, cudnn_data_type(tensor.dtype(), op),
        checked_int(tensor.size(0), op, role), checked_int(tensor.size(1), op, role),
        checked_int(tensor.size(2), op, role), checked_int(tensor.size(3), op, role)));
  }
  ~TensorDescriptor() { (void)cudnnDestroyTensorDescriptor(descriptor_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return descriptor_; }

 private:
  cudnnTensorDescriptor_t descriptor_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor(const Tensor& weight, const char* op) {
    ZT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&descriptor_));
    checked_int(weight.numel(), op, "weight elements");
    ZT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
        descriptor_, cudnn_data_type(weight.dtype(), op), CUDNN_TENSOR_NCHW,
        checked_int(weight.size(0), op, "out channels"),
        checked_int(weight.size(1), op, "in channels per group"),
        checked_int(weight.size(2), op, "kernel height"),
        checked_int(weight.size(3), op, "kernel width")));
  }
  ~FilterDescriptor() { (void)cudnnDestroyFilterDescriptor(descriptor_); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;
  cudnnFilterDescriptor_t get() const { return descriptor_; }

 private:
  cudnnFilterDescriptor_t descriptor_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor(const Conv2dParams& p, DType dtype, const char* op) {
    ZT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&descriptor_));
    cudnnDataType_t compute = dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    // Cross-correlation: what the CPU backend (and every framework) calls convolution.
    ZT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        descriptor_, checked_int(p.padding_h, op, "padding_h"),
        checked_int(p.padding_w, op, "padding_w"), checked_int(p.stride_h, op, "stride_h"),
        checked_int(p.stride_w, op, "stride_w"), checked_int(p.dilation_h, op, "dilation_h"),
        checked_int(p.dilation_w, op, "dilation_w"), CUDNN_CROSS_CORRELATION, compute));
    ZT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(descriptor_, checked_int(p.groups, op, "groups")));
    ZT_CUDNN_CHECK(cudnnSetConvolutionMathType(descriptor_, math_type(dtype)));
  }
  ~ConvolutionDescriptor() { (void)cudnnDestroyConvolutionDescriptor(descriptor_); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
  cudnnConvolutionDescriptor_t get() const { return descriptor_; }

 private:
  cudnnConvolutionDescriptor_t descriptor_ = nullptr;
};

// Everything one cuDNN call needs: the device scope (current device, compute stream), the
// handle bound to that stream, and the descriptors of input (x), weight (w) and output (y).
struct ConvCall {
  ConvCall(const char* op, const Tensor& input, const Tensor& weight, const Tensor& output,
           const Conv2dParams& params, Device device)
      : scope(device),
        handle(cudnn_handle(device.index)),
        x(input, op, "input"),
        y(output, op, "output"),
        w(weight, op),
        conv(params, weight.dtype(), op) {}
  KernelScope scope;
  cudnnHandle_t handle;
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
};

struct Algorithm {
  int algo = 0;
  size_t workspace_bytes = 0;
  // The math type the heuristics paired the algorithm with: it is set on the descriptor before
  // the workspace query and every run, since an algorithm may need another math type than the
  // one the descriptor was made with (PyTorch applies the result's mathType the same way).
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

// Every size and parameter that can change cuDNN's choice, plus the device, the dtype and the
// TF32 switch (it changes the math type, hence the admissible algorithms).
using AlgorithmKey = std::array<int64_t, 21>;

AlgorithmKey algorithm_key(ConvPass pass, int device, const Tensor& input, const Tensor& weight,
                           const Tensor& output, const Conv2dParams& p) {
  return {int64_t(pass),
          device,
          int64_t(weight.dtype()),
          int64_t(allow_tf32()),
          input.size(0),
          input.size(1),
          input.size(2),
          input.size(3),
          weight.size(0),
          weight.size(1),
          weight.size(2),
          weight.size(3),
          output.size(2),
          output.size(3),
          p.stride_h,
          p.stride_w,
          p.padding_h,
          p.padding_w,
          p.dilation_h,
          p.dilation_w,
          p.groups};
}

std::mutex algorithm_mutex;
std::map<AlgorithmKey, Algorithm> algorithm_cache;

// The first algorithm cuDNN's heuristics rank that is supported, needs no tensor-op math when
// we asked for FMA math (f32 without TF32), and whose workspace size can be queried with our
// descriptors; deterministic ones first: the CPU's results do not depend on scheduling, and
// ZeRO's stage-equality checks need reproducible gradients (backward algorithms that
// accumulate with atomics are not).
template <typename Perf, int kCount, typename Heuristic, typename WorkspaceSize>
Algorithm choose_algorithm(const char* op, DType dtype, cudnnConvolutionDescriptor_t conv,
                           Heuristic heuristic, WorkspaceSize workspace_size) {
  const bool fma_only = math_type(dtype) == CUDNN_FMA_MATH;
  Perf results[kCount];
  int returned = 0;
  ZT_CUDNN_CHECK(heuristic(kCount, &returned, results));
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < returned; ++i) {
      const Perf& result = results[i];
      if (result.status != CUDNN_STATUS_SUCCESS) continue;
      if (pass == 0 && result.determinism != CUDNN_DETERMINISTIC) continue;
      if (fma_only && (result.mathType == CUDNN_TENSOR_OP_MATH ||
                       result.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
        continue;
      // DEFAULT_MATH permits TF32 on sm_80+: f32 without TF32 runs every algorithm with FMA.
      cudnnMathType_t math = fma_only ? CUDNN_FMA_MATH : result.mathType;
      size_t bytes = 0;
      if (cudnnSetConvolutionMathType(conv, math) != CUDNN_STATUS_SUCCESS) continue;
      if (workspace_size(result.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
      return {int(result.algo), bytes, math};
    }
  }
  throw std::runtime_error(std::string(op) + " on CUDA: cuDNN offers no algorithm for this " +
                           "shape, dtype and math type (" + std::to_string(returned) +
                           " candidates, none usable)");
}

template <typename Choose>
Algorithm cached_algorithm(const AlgorithmKey& key, Choose choose) {
  std::lock_guard lock(algorithm_mutex);
  auto found = algorithm_cache.find(key);
  if (found != algorithm_cache.end()) return found->second;
  Algorithm algorithm = choose();
  algorithm_cache.emplace(key, algorithm);
  return algorithm;
}

// Scratch for one call, tagged `other` like every kernel's transient scratch (it is neither an
// activation kept for the backward nor communication staging). Freed right after the call: the
// allocator hands it out again only to work queued later on the same compute stream.
Tensor workspace(size_t bytes, Device device) {
  if (bytes == 0) return Tensor();
  return empty({int64_t(bytes)}, {.dtype = DType::u8, .device = device, .tag = MemoryTag::other});
}

void* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? tensor.raw_data() : nullptr;
}

// cuDNN's alpha/beta: double for double data, float otherwise.
struct Scale {
  explicit Scale(DType dtype) : f64(dtype == DType::f64) {}
  const void* one() const { return f64 ? static_cast<const void*>(&one_d) : &one_f; }
  const void* zero() const { return f64 ? static_cast<const void*>(&zero_d) : &zero_f; }
  bool f64;
  float one_f = 1.0f, zero_f = 0.0f;
  double one_d = 1.0, zero_d = 0.0;
};

template <typename T>
__global__ void add_bias_kernel(T* out, const T* bias, int64_t total, int64_t channels,
                                int64_t plane) {
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    int64_t channel = (i / plane) % channels;
    out[i] = store_compute<T>(compute_t<T>(load_compute(out[i]) + load_compute(bias[channel])));
  }
}

// out[n, c, h, w] += bias[c]. For 16-bit outputs this rounds twice (cuDNN's result, then the
// sum), where the CPU rounds once: within the 16-bit tolerance.
void add_bias(const Tensor& bias, const Tensor& out, const KernelScope& scope) {
  int64_t total = out.numel(), channels = out.size(1), plane = out.size(2) * out.size(3);
  dispatch_floating(out.dtype(), "conv2d_forward", [&]<typename T>() {
    add_bias_kernel<T><<<scope.blocks_for(total), kThreads, 0, scope.stream()>>>(
        static_cast<T*>(out.raw_data()), static_cast<const T*>(bias.raw_data()), total, channels,
        plane);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void CudaBackend::conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                 const Tensor& out, const Conv2dParams& params) {
  constexpr const char* kOp = "conv2d_forward";
  if (out.numel() == 0) return;
  if (weight.numel() == 0) {  // no input channels: a sum of nothing (cuDNN rejects 0 sizes)
    fill(out, 0.0);
    if (bias.defined()) add_bias(bias, out, KernelScope(out.device()));
    return;
  }
  ConvCall call(kOp, input, weight, out, params, out.device());
  AlgorithmKey key =
      algorithm_key(ConvPass::forward, call.scope.index(), input, weight, out, params);
  Algorithm algorithm = cached_algorithm(key, [&] {
    return choose_algorithm<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
        kOp, out.dtype(), call.conv.get(),
        [&](int count, int* returned, cudnnConvolutionFwdAlgoPerf_t* results) {
          return cudnnGetConvolutionForwardAlgorithm_v7(call.handle, call.x.get(), call.w.get(),
                                                        call.conv.get(), call.y.get(), count,
                                                        returned, results);
        },
        [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(
              call.handle, call.x.get(), call.w.get(), call.conv.get(), call.y.get(), algo, bytes);
        });
  });
  Tensor scratch = workspace(algorithm.workspace_bytes, out.device());
  Scale scale(out.dtype());
  ZT_CUDNN_CHECK(cudnnSetConvolutionMathType(call.conv.get(), algorithm.math));
  ZT_CUDNN_CHECK(cudnnConvolutionForward(
      call.handle, scale.one(), call.x.get(), input.raw_data(), call.w.get(), weight.raw_data(),
      call.conv.get(), cudnnConvolutionFwdAlgo_t(algorithm.algo), data_or_null(scratch),
      algorithm.workspace_bytes, scale.zero(), call.y.get(), out.raw_data()));
  if (bias.defined()) add_bias(bias, out, call.scope);
}

void CudaBackend::conv2d_backward_input(const Tensor& grad_out, const Tensor& weight,
                                        const Tensor& grad_input, const Conv2dParams& params) {
  constexpr const char* kOp = "conv2d_backward_input";
  if (grad_input.numel() == 0) return;
  if (grad_out.numel() == 0 || weight.numel() == 0) {  // no output channels reach the input
    fill(grad_input, 0.0);
    return;
  }
  ConvCall call(kOp, grad_input, weight, grad_out, params, grad_input.device());
  AlgorithmKey key = algorithm_key(ConvPass::backward_data, call.scope.index(), grad_input, weight,
                                   grad_out, params);
  Algorithm algorithm = cached_algorithm(key, [&] {
    return choose_algorithm<cudnnConvolutionBwdDataAlgoPerf_t,
                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
        kOp, grad_input.dtype(), call.conv.get(),
        [&](int count, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* results) {
          return cudnnGetConvolutionBackwardDataAlgorithm_v7(
              call.handle, call.w.get(), call.y.get(), call.conv.get(), call.x.get(), count,
              returned, results);
        },
        [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(
              call.handle, call.w.get(), call.y.get(), call.conv.get(), call.x.get(), algo, bytes);
        });
  });
  Tensor scratch = workspace(algorithm.workspace_bytes, grad_input.device());
  Scale scale(grad_input.dtype());
  ZT_CUDNN_CHECK(cudnnSetConvolutionMathType(call.conv.get(), algorithm.math));
  ZT_CUDNN_CHECK(cudnnConvolutionBackwardData(
      call.handle, scale.one(), call.w.get(), weight.raw_data(), call.y.get(), grad_out.raw_data(),
      call.conv.get(), cudnnConvolutionBwdDataAlgo_t(algorithm.algo), data_or_null(scratch),
      algorithm.workspace_bytes, scale.zero(), call.x.get(), grad_input.raw_data()));
}

void CudaBackend::conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                                         const Tensor& grad_weight, const Conv2dParams& params) {
  constexpr const char* kOp = "conv2d_backward_weight";
  if (grad_weight.numel() == 0) return;
  if (grad_out.numel() == 0 || input.numel() == 0) {  // no images: the gradient is zero
    fill(grad_weight, 0.0);
    return;
  }
  ConvCall call(kOp, input, grad_weight, grad_out, params, grad_weight.device());
  AlgorithmKey key = algorithm_key(ConvPass::backward_filter, call.scope.index(), input,
                                   grad_weight, grad_out, params);
  Algorithm algorithm = cached_algorithm(key, [&] {
    return choose_algorithm<cudnnConvolutionBwdFilterAlgoPerf_t,
                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
        kOp, grad_weight.dtype(), call.conv.get(),
        [&](int count, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* results) {
          return cudnnGetConvolutionBackwardFilterAlgorithm_v7(
              call.handle, call.x.get(), call.y.get(), call.conv.get(), call.w.get(), count,
              returned, results);
        },
        [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(
              call.handle, call.x.get(), call.y.get(), call.conv.get(), call.w.get(), algo, bytes);
        });
  });
  Tensor scratch = workspace(algorithm.workspace_bytes, grad_weight.device());
  Scale scale(grad_weight.dtype());
  ZT_CUDNN_CHECK(cudnnSetConvolutionMathType(call.conv.get(), algorithm.math));
  ZT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      call.handle, scale.one(), call.x.get(), input.raw_data(), call.y.get(), grad_out.raw_data(),
      call.conv.get(), cudnnConvolutionBwdFilterAlgo_t(algorithm.algo), data_or_null(scratch),
      algorithm.workspace_bytes, scale.zero(), call.w.get(), grad_weight.raw_data()));
}

}  // namespace zt::cuda
