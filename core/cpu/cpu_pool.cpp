// CPU max and average pooling over NCHW planes (output sizes in PyTorch's floor mode, chosen by
// the ops layer). Max pool records the flat h*W+w index of each maximum (the first on ties; a
// NaN counts as the maximum, as in PyTorch). Every plane is independent, so work is split over
// planes and each backward writes only its own plane: no races, no thread-count dependence.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"
#include "core/pool_geometry.h"

namespace zt::cpu {

namespace {

int64_t planes_per_chunk(const PoolGeometry& g) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.in_plane()));
}

// Whether `value` replaces `best` as a window's maximum: larger, or the first NaN.
template <typename C>
inline bool replaces_max(C value, C best) {
  return value > best || (std::isnan(value) && !std::isnan(best));
}

// Whether `candidate` replaces `best` (at `best_index`) in a 2x2 window: written without
// branches, which random activations would mispredict half the time, so that the row loop
// vectorises.
template <typename C>
[[gnu::always_inline]] inline void take_if_larger(C candidate, int64_t candidate_index, C& best,
                                                  int64_t& best_index) {
  bool take = candidate > best || (candidate != candidate && best == best);
  best = take ? candidate : best;
  best_index = take ? candidate_index : best_index;
}

// One plane of the common 2x2, stride 2, unpadded window: no bounds to check, and the four
// candidates are read in the generic loop's order (row by row), so ties and NaNs pick alike.
// Always inlined, so that each instruction-set clone below compiles its own copy.
template <typename T>
[[gnu::always_inline]] inline void max_pool_plane_2x2(const T* in_plane, int64_t in_w,
                                                      int64_t out_h, int64_t out_w, T* out_plane,
                                                      int64_t* index_plane) {
  using C = compute_type<T>;
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const T* top = in_plane + 2 * oh * in_w;
    const T* bottom = top + in_w;
    T* out_row = out_plane + oh * out_w;
    int64_t* index_row = index_plane + oh * out_w;
    int64_t top_index = 2 * oh * in_w;
#pragma omp simd
    for (int64_t ow = 0; ow < out_w; ++ow) {
      int64_t index = top_index + 2 * ow;
      C best = C(top[2 * ow]);
      int64_t best_index = index;
      take_if_larger(C(top[2 * ow + 1]), index + 1, best, best_index);
      take_if_larger(C(bottom[2 * ow]), index + in_w, best, best_index);
      take_if_larger(C(bottom[2 * ow + 1]), index + in_w + 1, best, best_index);
      out_row[ow] = T(best);
      index_row[ow] = best_index;
    }
  }
}

// The f32 instance, cloned per instruction set: our build targets baseline x86-64, whose
// vectors are too narrow for the 64-bit index selects to pay.
__attribute__((target_clones("avx512f", "avx2", "default"))) void max_pool_plane_2x2_f32(
    const float* in_plane, int64_t in_w, int64_t out_h, int64_t out_w, float* out_plane,
    int64_t* index_plane) {
  max_pool_plane_2x2(in_plane, in_w, out_h, out_w, out_plane, index_plane);
}

template <typename T>
void max_pool_plane(const T* in_plane, const PoolGeometry& g, const Pool2dParams& params,
                    T* out_plane, int64_t* index_plane) {
  using C = compute_type<T>;
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
          if (best_index < 0 || replaces_max(value, best)) {
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

// 2x2 windows at stride 2 without padding that all lie inside the input (the ops layer's size
// rule can give a 1-row input one output row, whose window would hang over the edge).
bool is_plain_2x2(const Pool2dParams& params, const PoolGeometry& g) {
  return params.kernel_h == 2 && params.kernel_w == 2 && params.stride_h == 2 &&
         params.stride_w == 2 && params.padding_h == 0 && params.padding_w == 0 &&
         params.dilation_h == 1 && params.dilation_w == 1 && 2 * g.out_h <= g.in_h &&
         2 * g.out_w <= g.in_w;
}

}  // namespace

void CpuBackend::max_pool2d_forward(const Tensor& input, const Tensor& out, const Tensor& indices,
                                    const Pool2dParams& params) {
  PoolGeometry g = pool_geometry(input, out);
  int64_t* index_data = indices.data_ptr<int64_t>();
  bool plain_2x2 = is_plain_2x2(params, g);
  dispatch_floating(input.dtype(), "max_pool2d", [&]<typename T>() {
    const T* in = input.data_ptr<T>();
    T* result = out.data_ptr<T>();
    parallel_for(0, g.planes, planes_per_chunk(g), [&](int64_t first, int64_t last) {
      for (int64_t plane = first; plane < last; ++plane) {
        const T* in_plane = in + plane * g.in_plane();
        T* out_plane = result + plane * g.out_plane();
        int64_t* index_plane = index_data + plane * g.out_plane();
        if (plain_2x2) {
          if constexpr (std::is_same_v<T, float>) {
            max_pool_plane_2x2_f32(in_plane, g.in_w, g.out_h, g.out_w, out_plane, index_plane);
          } else {
            max_pool_plane_2x2(in_plane, g.in_w, g.out_h, g.out_w, out_plane, index_plane);
          }
        } else {
          max_pool_plane(in_plane, g, params, out_plane, index_plane);
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
      // f32/f64 accumulate in place; 16-bit types through a wider plane, rounded once.
      std::vector<C> wide_plane(std::is_same_v<T, C> ? 0 : size_t(g.in_plane()));
      for (int64_t plane = first; plane < last; ++plane) {
        T* grad_in_plane = grad_in + plane * g.in_plane();
        C* accumulated =
            std::is_same_v<T, C> ? reinterpret_cast<C*>(grad_in_plane) : wide_plane.data();
        std::fill(accumulated, accumulated + g.in_plane(), C(0));
        const T* grad_plane = grad + plane * g.out_plane();
        const int64_t* index_plane = index_data + plane * g.out_plane();
        for (int64_t p = 0; p < g.out_plane(); ++p) {
          if (index_plane[p] >= 0) accumulated[index_plane[p]] += C(grad_plane[p]);
        }
        if constexpr (!std::is_same_v<T, C>) {
          for (int64_t p = 0; p < g.in_plane(); ++p) grad_in_plane[p] = T(accumulated[p]);
        }
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
