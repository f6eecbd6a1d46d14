// The CPU backend: OpenBLAS for GEMM, OpenMP (through parallel_for) for every other loop.
// The methods are defined across core/cpu/*.cpp, one file per kind of kernel:
//   cpu_copy.cpp (copy, fill, arange), cpu_random.cpp (uniform, normal, dropout),
//   cpu_elementwise.cpp (unary, binary, where), cpu_reduce.cpp, cpu_gemm.cpp,
//   cpu_softmax.cpp (softmax, cross entropy), cpu_attention.cpp and cpu_attention_backward.cpp
//   (fused attention; tile arithmetic in cpu_attention_tiles.cpp), cpu_conv.cpp, cpu_pool.cpp,
//   cpu_layer_norm.cpp, cpu_rms_norm.cpp, cpu_rotary.cpp (rotary_embedding),
//   cpu_embedding.cpp (embedding, index_select, index_add), cpu_optimizer.cpp (adam_update,
//   sgd_update, with their vector paths in cpu_optimizer_avx2.cpp and cpu_optimizer_avx512.cpp;
//   sum_of_squares is in cpu_reduce.cpp), cpu_stream.cpp (synchronize and events: no-ops, the
//   CPU's kernels have finished when they return).
#pragma once

#include "core/allocator.h"
#include "core/backend.h"

namespace zt::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }
  Allocator& allocator(Device) override { return cpu_allocator(); }
  int device_count() const override { return 1; }

  // The kernels of core/backend_kernels.def.
#define ZT_BACKEND_KERNEL(return_type, name, parameters) return_type name parameters override;
#include "core/backend_kernels.def"
};

CpuBackend& cpu_backend();

}  // namespace zt::cpu
