// The CUDA backend: the Backend interface for every Device::cuda(i), one instance for all
// devices. Each method runs on the device of its output (made current for the call) and queues
// its kernels on that device's compute stream without waiting for them; only copies to the
// host, and the index checks that must throw (embedding, index_select, index_add, cross
// entropy targets), wait. The methods are defined across cuda/*.cu, one file per kind of
// kernel: copy.cu (copy, fill, arange), random.cu (uniform, normal, dropout), elementwise.cu,
// reduce.cu, gemm.cu (cuBLAS), softmax.cu (softmax, cross entropy), layer_norm.cu,
// rms_norm.cu, rotary.cu (rotary_embedding),
// embedding.cu (embedding, index_select, index_add), pool.cu, conv.cu (cuDNN), optimizer.cu
// (multi-tensor adam_update and sgd_update), sum_of_squares.cu (which waits: it returns host
// values), attention.cu and attention_backward.cu (fused scaled-dot-product attention),
// stream.cpp (synchronize and events).
#pragma once

#include "core/backend.h"

namespace zt::cuda {

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda(0); }
  Allocator& allocator(Device device) override;
  int device_count() const override;

  // The kernels of core/backend_kernels.def.
#define ZT_BACKEND_KERNEL(return_type, name, parameters) return_type name parameters override;
#include "core/backend_kernels.def"
};

CudaBackend& cuda_backend();

}  // namespace zt::cuda
