// The index geometry of 2-d pooling over NCHW planes, shared by the CPU (core/cpu/cpu_pool.cpp)
// and CUDA (cuda/pool.cu) kernels so that both pick the same windows and divisors: the planes
// and their sizes, and average pooling's window along one axis (PyTorch's rule). Integer
// arithmetic only; the functions are host+device.
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/tensor.h"

namespace zt {

struct PoolGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
  ZT_HOST_DEVICE int64_t in_plane() const { return in_h * in_w; }
  ZT_HOST_DEVICE int64_t out_plane() const { return out_h * out_w; }
};

// The planes of an input-shaped and an output-shaped tensor (either may be the gradient):
// counted from the input, or from the output when the input planes are empty.
inline PoolGeometry pool_geometry(const Tensor& input_like, const Tensor& out_like) {
  int64_t rank = input_like.dim();
  int64_t in_h = input_like.size(rank - 2), in_w = input_like.size(rank - 1);
  int64_t out_h = out_like.size(rank - 2), out_w = out_like.size(rank - 1);
  int64_t planes = in_h * in_w > 0 ? input_like.numel() / (in_h * in_w) : 0;
  if (planes == 0 && out_h * out_w > 0) planes = out_like.numel() / (out_h * out_w);
  return {planes, in_h, in_w, out_h, out_w};
}

// The window of output position `out_pos` along one axis for average pooling, PyTorch's rule:
// [start, end) clipped to the input, and padded_count, the window clipped to
// [-padding, size + padding) (the divisor when padding counts).
struct AvgWindow {
  int64_t start, end, padded_count;
};

ZT_HOST_DEVICE inline AvgWindow avg_window(int64_t out_pos, int64_t stride, int64_t padding,
                                           int64_t kernel, int64_t size) {
  int64_t start = out_pos * stride - padding;
  int64_t end = start + kernel < size + padding ? start + kernel : size + padding;
  int64_t padded_count = end - start;
  return {start > 0 ? start : 0, end < size ? end : size, padded_count};
}

ZT_HOST_DEVICE inline int64_t avg_divisor(const AvgWindow& rows, const AvgWindow& cols,
                                          bool count_include_pad) {
  if (count_include_pad) return rows.padded_count * cols.padded_count;
  return (rows.end - rows.start) * (cols.end - cols.start);
}

}  // namespace zt
