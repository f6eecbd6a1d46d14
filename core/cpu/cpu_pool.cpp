// CPU max and average pooling over NCHW planes (output sizes in PyTorch's floor mode, chosen by
// the ops layer). Max pool records the flat h*W+w index of each maximum (the first on ties; a
// NaN counts as the maximum, as in PyTorch). Every plane is independent, so work is split over
// planes and each backward writes only its own plane: no races, no thread-count dependence.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

struct PoolGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
};

PoolGeometry pool_geometry(const Tensor& input_like, const Tensor& out_like) {
  int64_t rank = input_like.dim();
  int64_t in_h = input_like.size(rank - 2), in_w = input_like.size(rank - 1);
  int64_t out_h = out_like.size(rank - 2), out_w = out_like.size(rank - 1);
  int64_t planes = in_h * in_w > 0 ? input_like.numel() / (in_h * in_w) : 0;
  if (planes == 0 && out_h * out_w > 0) planes = out_like.numel() / (out_h * out_w);
  return {planes, in_h, in_w, out_h, out_w};
}

int64_t planes_per_chunk(const PoolGeometry& g) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.in_plane()));
}

// The window of output position `out_pos` along one axis for average pooling, PyTorch's rule:
// the divisor with padding counts the window clipped to [-pad, size + pad).
struct AvgWindow {
  int64_t start, end, padded_count;
};

AvgWindow avg_window(int64_t out_pos, int64_t stride, int64_t padding, int64_t kernel,
                     int64_t size) {
  int64_t start = out_pos * stride - padding;
  int64_t end = std::min(start + kernel, size + padding);
  int64_t padded_count = end - start;
  return {std::max<int64_t>(start, 0), std::min(end, size), padded_count};
}

int64_t avg_divisor(const AvgWindow& rows, const AvgWindow& cols, bool count_include_pad) {
  if (count_include_pad) return rows.padded_count * cols.padded_count;
  return (rows.end - rows.start) * (cols.end - cols.start);
}

}  // namespace

void CpuBackend::max_pool2d_forward(const Tensor& input, const Tensor& out, const Tensor& indices,
                                    const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(input, out);
  int64_t* index_data = indices.data_ptr<int64_t>();
  dispatch_floating(input.dtype(), "max_pool2d", [&]<typename T>() {
    using C = compute_type<T>;
    const T* in = input.data_ptr<T>();
    T* result = out.data_ptr<T>();
    parallel_for(0, g.planes, planes_per_chunk(g), [&](int64_t first, int64_t last) {
      for (int64_t plane = first; plane < last; ++plane) {
        const T* in_plane = in + plane * g.in_plane();
        T* out_plane = result + plane * g.out_plane();
        int64_t* index_plane = index_data + plane * g.out_plane();
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            C best = -std::numeric_limits<C>::infinity();
            int64_t best_index = -1;
            for (int64_t kh = 0; kh < params.kernel_h; ++kh) {
              int64_t ih = oh * params.stride_h - params.padding_h + kh * params.dilation_h;
              if (ih < 0 || ih >= g.in_h) continue;
              for (int64_t kw = 0; kw < params.kernel_w; ++kw) {
                int64_t iw = ow * params.stride_w - params.padding_w + kw * params.dilation_w;
                if (iw < 0 || iw >= g.in_w) continue;
                C value = C(in_plane[ih * g.in_w + iw]);
                if (best_index < 0 || value > best || (std::isnan(value) && !std::isnan(best))) {
                  best = value;
                  best_index = ih * g.in_w + iw;
                }
              }
            }
            out_plane[oh * g.out_w + ow] = T(best);
            index_plane[oh * g.out_w + ow] = best_index;
          }
        }
      }
    });
  });
}

void CpuBackend::max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                                     const Tensor& grad_input) {
  PoolGeometry g = pool_geometry(grad_input, grad_out);
  const int64_t* index_data = indices.data_ptr<int64_t>();
  dispatch_floating(grad_out.dtype(), "max_pool2d_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const T* grad = grad_out.data_ptr<T>();
    T* grad_in = grad_input.data_ptr<T>();
    parallel_for(0, g.planes, planes_per_chunk(g), [&](int64_t first, int64_t last) {
      std::vector<C> accumulated(size_t(g.in_plane()));
      for (int64_t plane = first; plane < last; ++plane) {
        std::fill(accumulated.begin(), accumulated.end(), C(0));
        const T* grad_plane = grad + plane * g.out_plane();
        const int64_t* index_plane = index_data + plane * g.out_plane();
        for (int64_t p = 0; p < g.out_plane(); ++p) {
          if (index_plane[p] >= 0) accumulated[size_t(index_plane[p])] += C(grad_plane[p]);
        }
        T* grad_in_plane = grad_in + plane * g.in_plane();
        for (int64_t p = 0; p < g.in_plane(); ++p) grad_in_plane[p] = T(accumulated[size_t(p)]);
      }
    });
  });
}

void CpuBackend::avg_pool2d_forward(const Tensor& input, const Tensor& out,
                                    const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(input, out);
  dispatch_floating(input.dtype(), "avg_pool2d", [&]<typename T>() {
    using C = compute_type<T>;
    const T* in = input.data_ptr<T>();
    T* result = out.data_ptr<T>();
    parallel_for(0, g.planes, planes_per_chunk(g), [&](int64_t first, int64_t last) {
      for (int64_t plane = first; plane < last; ++plane) {
        const T* in_plane = in + plane * g.in_plane();
        T* out_plane = result + plane * g.out_plane();
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          AvgWindow rows =
              avg_window(oh, params.stride_h, params.padding_h, params.kernel_h, g.in_h);
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            AvgWindow cols =
                avg_window(ow, params.stride_w, params.padding_w, params.kernel_w, g.in_w);
            C sum = 0;
            for (int64_t ih = rows.start; ih < rows.end; ++ih) {
              for (int64_t iw = cols.start; iw < cols.end; ++iw)
                sum += C(in_plane[ih * g.in_w + iw]);
            }
            int64_t divisor = avg_divisor(rows, cols, params.count_include_pad);
            out_plane[oh * g.out_w + ow] = T(divisor > 0 ? sum / C(divisor) : C(0));
          }
        }
      }
    });
  });
}

void CpuBackend::avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_input,
                                     const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(grad_input, grad_out);
  dispatch_floating(grad_out.dtype(), "avg_pool2d_backward", [&]<typename T>() {
    using C = compute_type<T>;
    const T* grad = grad_out.data_ptr<T>();
    T* grad_in = grad_input.data_ptr<T>();
    parallel_for(0, g.planes, planes_per_chunk(g), [&](int64_t first, int64_t last) {
      std::vector<C> accumulated(size_t(g.in_plane()));
      for (int64_t plane = first; plane < last; ++plane) {
        std::fill(accumulated.begin(), accumulated.end(), C(0));
        const T* grad_plane = grad + plane * g.out_plane();
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          AvgWindow rows =
              avg_window(oh, params.stride_h, params.padding_h, params.kernel_h, g.in_h);
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            AvgWindow cols =
                avg_window(ow, params.stride_w, params.padding_w, params.kernel_w, g.in_w);
            int64_t divisor = avg_divisor(rows, cols, params.count_include_pad);
            if (divisor <= 0) continue;
            C share = C(grad_plane[oh * g.out_w + ow]) / C(divisor);
            for (int64_t ih = rows.start; ih < rows.end; ++ih) {
              for (int64_t iw = cols.start; iw < cols.end; ++iw) {
                accumulated[size_t(ih * g.in_w + iw)] += share;
              }
            }
          }
        }
        T* grad_in_plane = grad_in + plane * g.in_plane();
        for (int64_t p = 0; p < g.in_plane(); ++p) grad_in_plane[p] = T(accumulated[size_t(p)]);
      }
    });
  });
}

}  // namespace zt::cpu
