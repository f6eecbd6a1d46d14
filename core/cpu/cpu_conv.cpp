// CPU conv2d forward / backward-input / backward-weight (NCHW, any stride, padding, dilation,
// groups) as im2col / col2im around one GEMM per image and group.
// Images run in parallel, each on one thread with a single-threaded GEMM (OpenBLAS computes on
// the calling thread inside a parallel region) into scratch that stays in cache, and each image
// writes only its own output or input-gradient planes. The weight gradient sums fixed chunks of
// images into partial products and adds the partials in chunk order, so no result depends on
// the thread count. f16/bf16 are widened to f32, computed, and rounded once at the end.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

// Images whose weight-gradient products accumulate into one partial sum. Fixed, so the order of
// the sum depends only on the batch size; small enough that a batch still splits across cores.
constexpr int64_t kImagesPerWeightPartial = 4;

struct ConvGeometry {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w, out_h, out_w;
  Conv2dParams params;

  int64_t groups() const { return params.groups; }
  int64_t in_channels_per_group() const { return in_channels / params.groups; }
  int64_t out_channels_per_group() const { return out_channels / params.groups; }
  int64_t column_rows() const { return in_channels_per_group() * kernel_h * kernel_w; }
  int64_t out_plane() const { return out_h * out_w; }
  int64_t in_plane() const { return in_h * in_w; }
  // A 1x1 kernel with unit stride and no padding reads the image itself as its column matrix.
  bool column_is_image() const {
    return kernel_h == 1 && kernel_w == 1 && params.stride_h == 1 && params.stride_w == 1 &&
           params.padding_h == 0 && params.padding_w == 0;
  }
};

ConvGeometry geometry(const Tensor& input_like, const Tensor& weight_like, const Tensor& out_like,
                      const Conv2dParams& params) {
  return {input_like.size(0),  input_like.size(1),
          input_like.size(2),  input_like.size(3),
          weight_like.size(0), weight_like.size(2),
          weight_like.size(3), out_like.size(2),
          out_like.size(3),    params};
}

// The output columns [begin, end) of kernel column kw whose input column falls inside the image
// (unit stride): ow in range <=> 0 <= ow - padding_w + kw * dilation_w < in_w.
struct ColumnRange {
  int64_t begin, end, shift;  // input column = ow + shift
};

ColumnRange valid_columns(const ConvGeometry& g, int64_t kw) {
  int64_t shift = kw * g.params.dilation_w - g.params.padding_w;
  int64_t begin = std::clamp<int64_t>(-shift, 0, g.out_w);
  int64_t end = std::clamp<int64_t>(g.in_w - shift, begin, g.out_w);
  return {begin, end, shift};
}

// dst[0, count) = src[0, count) for the short runs of im2col (an output row, often a few dozen
// elements): fixed 32-byte pieces compile to inline moves, where a memcpy call per run would
// cost more than the copy.
template <typename S>
inline void copy_run(S* dst, const S* src, int64_t count) {
  constexpr int64_t kPieceElems = int64_t(32 / sizeof(S));
  int64_t i = 0;
  for (; i + kPieceElems <= count; i += kPieceElems) std::memcpy(dst + i, src + i, 32);
  for (; i < count; ++i) dst[i] = src[i];
}

// Writes the column matrix of one image and group: column[r, p] (leading dimension out_plane)
// for r = (c, kh, kw) and output position p, zero where the receptive field is in the padding.
template <typename S>
void im2col(const S* image_group, const ConvGeometry& g, S* column) {
  const Conv2dParams& p = g.params;
  for (int64_t c = 0; c < g.in_channels_per_group(); ++c) {
    const S* plane = image_group + c * g.in_plane();
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        int64_t row = (c * g.kernel_h + kh) * g.kernel_w + kw;
        S* out = column + row * g.out_plane();
        ColumnRange valid = valid_columns(g, kw);
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          int64_t ih = oh * p.stride_h - p.padding_h + kh * p.dilation_h;
          S* out_row = out + oh * g.out_w;
          if (ih < 0 || ih >= g.in_h) {
            std::fill(out_row, out_row + g.out_w, S(0));
            continue;
          }
          const S* in_row = plane + ih * g.in_w;
          if (p.stride_w == 1) {  // one contiguous run between the padded edges
            std::fill(out_row, out_row + valid.begin, S(0));
            copy_run(out_row + valid.begin, in_row + (valid.begin + valid.shift),
                     valid.end - valid.begin);
            std::fill(out_row + valid.end, out_row + g.out_w, S(0));
            continue;
          }
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            int64_t iw = ow * p.stride_w - p.padding_w + kw * p.dilation_w;
            out_row[ow] = (iw >= 0 && iw < g.in_w) ? in_row[iw] : S(0);
          }
        }
      }
    }
  }
}

// The adjoint of im2col: adds each column entry back into the input position it came from.
template <typename S>
void col2im(const S* column, const ConvGeometry& g, S* image_group) {
  const Conv2dParams& p = g.params;
  for (int64_t c = 0; c < g.in_channels_per_group(); ++c) {
    S* plane = image_group + c * g.in_plane();
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        int64_t row = (c * g.kernel_h + kh) * g.kernel_w + kw;
        const S* in = column + row * g.out_plane();
        ColumnRange valid = valid_columns(g, kw);
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          int64_t ih = oh * p.stride_h - p.padding_h + kh * p.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          S* plane_row = plane + ih * g.in_w;
          const S* in_row = in + oh * g.out_w;
          if (p.stride_w == 1) {
#pragma omp simd
            for (int64_t ow = valid.begin; ow < valid.end; ++ow) {
              plane_row[ow + valid.shift] += in_row[ow];
            }
            continue;
          }
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            int64_t iw = ow * p.stride_w - p.padding_w + kw * p.dilation_w;
            if (iw >= 0 && iw < g.in_w) plane_row[iw] += in_row[ow];
          }
        }
      }
    }
  }
}

template <typename S>
constexpr DType dtype_of() {
  return std::is_same_v<S, float> ? DType::f32 : DType::f64;
}

// dense[a, b] with leading dimension ld, through the backend's GEMM. Inside a parallel region
// OpenBLAS runs it on the calling thread.
template <typename S>
void gemm_into(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const S* a,
               int64_t lda, const S* b, int64_t ldb, double beta, S* c, int64_t ldc) {
  GemmArgs args;
  args.transpose_a = transpose_a;
  args.transpose_b = transpose_b;
  args.m = m;
  args.n = n;
  args.k = k;
  args.beta = beta;
  args.a = a;
  args.lda = lda;
  args.b = b;
  args.ldb = ldb;
  args.c = c;
  args.ldc = ldc;
  args.dtype = dtype_of<S>();
  cpu_backend().gemm(args);
}

// Per-thread column scratch, reused across calls so that each image's im2col lands in memory
// that is already mapped and cached.
template <typename S>
S* column_scratch(int64_t elems) {
  thread_local std::vector<S> scratch;
  if (scratch.size() < size_t(elems)) scratch.resize(size_t(elems));
  return scratch.data();
}

// The column matrix of one image and group: the image itself for a 1x1 kernel, else im2col
// into this thread's scratch.
template <typename S>
const S* columns_of(const S* image_group, const ConvGeometry& g) {
  if (g.column_is_image()) return image_group;
  S* column = column_scratch<S>(g.column_rows() * g.out_plane());
  im2col(image_group, g, column);
  return column;
}

template <typename S>
const S* image_group_of(const S* images, const ConvGeometry& g, int64_t image, int64_t group) {
  return images + (image * g.in_channels + group * g.in_channels_per_group()) * g.in_plane();
}

template <typename S>
void conv_forward(const S* input, const S* weight, const S* bias, S* out, const ConvGeometry& g) {
  int64_t rows = g.column_rows(), plane = g.out_plane(), cout = g.out_channels_per_group();
  parallel_for(0, g.batch, 1, [&](int64_t first, int64_t last) {
    for (int64_t image = first; image < last; ++image) {
      for (int64_t group = 0; group < g.groups(); ++group) {
        const S* column = columns_of(image_group_of(input, g, image, group), g);
        // out_g [cout, plane] = weight_g [cout, rows] @ column [rows, plane], written in place.
        S* out_group = out + (image * g.out_channels + group * cout) * plane;
        gemm_into<S>(false, false, cout, plane, rows, weight + group * cout * rows, rows, column,
                     plane, 0.0, out_group, plane);
        if (bias == nullptr) continue;
        for (int64_t co = 0; co < cout; ++co) {
          S shift = bias[group * cout + co];
          S* out_plane = out_group + co * plane;
#pragma omp simd
          for (int64_t p = 0; p < plane; ++p) out_plane[p] += shift;
        }
      }
    }
  });
}

template <typename S>
void conv_backward_input(const S* grad_out, const S* weight, S* grad_input, const ConvGeometry& g) {
  int64_t rows = g.column_rows(), plane = g.out_plane(), cout = g.out_channels_per_group();
  int64_t image_elems = g.in_channels * g.in_plane();
  parallel_for(0, g.batch, 1, [&](int64_t first, int64_t last) {
    for (int64_t image = first; image < last; ++image) {
      std::fill(grad_input + image * image_elems, grad_input + (image + 1) * image_elems, S(0));
      for (int64_t group = 0; group < g.groups(); ++group) {
        const S* grad_group = grad_out + (image * g.out_channels + group * cout) * plane;
        S* grad_input_group =
            grad_input + (image * g.in_channels + group * g.in_channels_per_group()) * g.in_plane();
        // column [rows, plane] = weight_g^T [rows, cout] @ grad_out_g [cout, plane]; a 1x1
        // kernel's column matrix is the input gradient itself.
        S* column = g.column_is_image() ? grad_input_group : column_scratch<S>(rows * plane);
        gemm_into<S>(true, false, rows, plane, cout, weight + group * cout * rows, rows, grad_group,
                     plane, 0.0, column, plane);
        if (!g.column_is_image()) col2im(column, g, grad_input_group);
      }
    }
  });
}

template <typename S>
void conv_backward_weight(const S* grad_out, const S* input, S* grad_weight,
                          const ConvGeometry& g) {
  int64_t rows = g.column_rows(), plane = g.out_plane(), cout = g.out_channels_per_group();
  int64_t weight_elems = g.out_channels * rows;
  if (g.batch == 0) {  // no images, no products: the gradient is zero
    std::fill(grad_weight, grad_weight + weight_elems, S(0));
    return;
  }
  int64_t partial_count = (g.batch + kImagesPerWeightPartial - 1) / kImagesPerWeightPartial;
  // One partial sum per chunk of images; a single chunk accumulates straight into grad_weight.
  std::vector<S> partials(partial_count > 1 ? size_t(partial_count * weight_elems) : 0);
  parallel_for(0, partial_count, 1, [&](int64_t first_chunk, int64_t last_chunk) {
    for (int64_t chunk = first_chunk; chunk < last_chunk; ++chunk) {
      S* partial = partial_count > 1 ? partials.data() + chunk * weight_elems : grad_weight;
      int64_t first_image = chunk * kImagesPerWeightPartial;
      int64_t last_image = std::min(g.batch, first_image + kImagesPerWeightPartial);
      for (int64_t image = first_image; image < last_image; ++image) {
        for (int64_t group = 0; group < g.groups(); ++group) {
          const S* column = columns_of(image_group_of(input, g, image, group), g);
          const S* grad_group = grad_out + (image * g.out_channels + group * cout) * plane;
          // partial_g [cout, rows] (+)= grad_out_g [cout, plane] @ column^T [plane, rows]
          gemm_into<S>(false, true, cout, rows, plane, grad_group, plane, column, plane,
                       image == first_image ? 0.0 : 1.0, partial + group * cout * rows, rows);
        }
      }
    }
  });
  if (partial_count == 1) return;
  // Partials are added in chunk order for every element, whatever thread owns the element.
  parallel_for(0, weight_elems, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      S total = partials[size_t(i)];
      for (int64_t chunk = 1; chunk < partial_count; ++chunk) {
        total += partials[size_t(chunk * weight_elems + i)];
      }
      grad_weight[i] = total;
    }
  });
}

std::vector<float> widen(const Tensor& tensor) {
  std::vector<float> values(size_t(tensor.numel()));
  dispatch_floating(tensor.dtype(), "conv2d", [&]<typename T>() {
    const T* data = tensor.data_ptr<T>();
    for (size_t i = 0; i < values.size(); ++i) values[i] = float(data[i]);
  });
  return values;
}

void narrow_into(const std::vector<float>& values, const Tensor& tensor) {
  dispatch_floating(tensor.dtype(), "conv2d", [&]<typename T>() {
    T* data = tensor.data_ptr<T>();
    for (size_t i = 0; i < values.size(); ++i) data[i] = T(values[i]);
  });
}

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const Tensor& out, const Conv2dParams& params) {
  ConvGeometry g = geometry(input, weight, out, params);
  if (out.numel() == 0) return;
  dispatch_floating(input.dtype(), "conv2d", [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      conv_forward<T>(input.data_ptr<T>(), weight.data_ptr<T>(),
                      bias.defined() ? bias.data_ptr<T>() : nullptr, out.data_ptr<T>(), g);
    } else {
      std::vector<float> wide_input = widen(input), wide_weight = widen(weight);
      std::vector<float> wide_bias = bias.defined() ? widen(bias) : std::vector<float>();
      std::vector<float> wide_out(size_t(out.numel()));
      conv_forward<float>(wide_input.data(), wide_weight.data(),
                          bias.defined() ? wide_bias.data() : nullptr, wide_out.data(), g);
      narrow_into(wide_out, out);
    }
  });
}

void CpuBackend::conv2d_backward_input(const Tensor& grad_out, const Tensor& weight,
                                       const Tensor& grad_input, const Conv2dParams& params) {
  ConvGeometry g = geometry(grad_input, weight, grad_out, params);
  if (grad_input.numel() == 0) return;
  dispatch_floating(grad_out.dtype(), "conv2d_backward_input", [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      conv_backward_input<T>(grad_out.data_ptr<T>(), weight.data_ptr<T>(), grad_input.data_ptr<T>(),
                             g);
    } else {
      std::vector<float> wide_grad_out = widen(grad_out), wide_weight = widen(weight);
      std::vector<float> wide_grad_input(size_t(grad_input.numel()));
      conv_backward_input<float>(wide_grad_out.data(), wide_weight.data(), wide_grad_input.data(),
                                 g);
      narrow_into(wide_grad_input, grad_input);
    }
  });
}

void CpuBackend::conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                                        const Tensor& grad_weight, const Conv2dParams& params) {
  ConvGeometry g = geometry(input, grad_weight, grad_out, params);
  if (grad_weight.numel() == 0) return;
  dispatch_floating(grad_out.dtype(), "conv2d_backward_weight", [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      conv_backward_weight<T>(grad_out.data_ptr<T>(), input.data_ptr<T>(),
                              grad_weight.data_ptr<T>(), g);
    } else {
      std::vector<float> wide_grad_out = widen(grad_out), wide_input = widen(input);
      std::vector<float> wide_grad_weight(size_t(grad_weight.numel()));
      conv_backward_weight<float>(wide_grad_out.data(), wide_input.data(), wide_grad_weight.data(),
                                  g);
      narrow_into(wide_grad_weight, grad_weight);
    }
  });
}

}  // namespace zt::cpu
