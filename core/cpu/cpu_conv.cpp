// CPU conv2d forward / backward-input / backward-weight (NCHW, any stride, padding, dilation,
// groups) as im2col / col2im around one GEMM per group and chunk of images.
// A chunk lays the column matrices of several images side by side, so each GEMM is wide enough
// for OpenBLAS to thread; im2col, col2im and the scatter run in parallel over the images of a
// chunk, each image writing only its own columns or planes. Chunk sizes depend only on the
// shapes, and the weight gradient sums chunks in order, so no result depends on thread count.
// f16/bf16 are widened to f32, computed, and rounded once at the end.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

// Upper bound on the elements of one chunk's column matrix (16 MiB of f32); a single image
// that is larger still forms a chunk of one.
constexpr int64_t kColumnElemsPerChunk = int64_t(1) << 22;

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
  int64_t images_per_chunk() const {
    int64_t per_image = std::max<int64_t>(1, column_rows() * out_plane());
    return std::clamp<int64_t>(kColumnElemsPerChunk / per_image, 1, std::max<int64_t>(1, batch));
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

// Writes the column block of one image and group: column[r, column_offset + p] for
// r = (c, kh, kw) and output position p, zero where the receptive field falls in the padding.
template <typename S>
void im2col(const S* image_group, const ConvGeometry& g, S* column, int64_t column_ld,
            int64_t column_offset) {
  const Conv2dParams& p = g.params;
  for (int64_t c = 0; c < g.in_channels_per_group(); ++c) {
    const S* plane = image_group + c * g.in_plane();
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        int64_t row = (c * g.kernel_h + kh) * g.kernel_w + kw;
        S* out = column + row * column_ld + column_offset;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          int64_t ih = oh * p.stride_h - p.padding_h + kh * p.dilation_h;
          S* out_row = out + oh * g.out_w;
          if (ih < 0 || ih >= g.in_h) {
            std::fill(out_row, out_row + g.out_w, S(0));
            continue;
          }
          const S* in_row = plane + ih * g.in_w;
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
void col2im(const S* column, int64_t column_ld, int64_t column_offset, const ConvGeometry& g,
            S* image_group) {
  const Conv2dParams& p = g.params;
  for (int64_t c = 0; c < g.in_channels_per_group(); ++c) {
    S* plane = image_group + c * g.in_plane();
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        int64_t row = (c * g.kernel_h + kh) * g.kernel_w + kw;
        const S* in = column + row * column_ld + column_offset;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          int64_t ih = oh * p.stride_h - p.padding_h + kh * p.dilation_h;
          if (ih < 0 || ih >= g.in_h) continue;
          S* plane_row = plane + ih * g.in_w;
          const S* in_row = in + oh * g.out_w;
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

// dense[a, b] with leading dimension ld, through the backend's GEMM.
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

// Calls body(first_image, image_count) for each chunk of images, in order.
template <typename Body>
void for_each_chunk(const ConvGeometry& g, const Body& body) {
  int64_t chunk = g.images_per_chunk();
  for (int64_t first = 0; first < g.batch; first += chunk) {
    body(first, std::min(chunk, g.batch - first));
  }
}

template <typename S>
void conv_forward(const S* input, const S* weight, const S* bias, S* out, const ConvGeometry& g) {
  int64_t rows = g.column_rows(), plane = g.out_plane(), cout = g.out_channels_per_group();
  std::vector<S> column, product;
  for_each_chunk(g, [&](int64_t first, int64_t count) {
    int64_t width = count * plane;
    column.resize(size_t(rows * width));
    product.resize(size_t(cout * width));
    for (int64_t group = 0; group < g.groups(); ++group) {
      parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const S* image_group =
              input +
              ((first + j) * g.in_channels + group * g.in_channels_per_group()) * g.in_plane();
          im2col(image_group, g, column.data(), width, j * plane);
        }
      });
      gemm_into<S>(false, false, cout, width, rows, weight + group * cout * rows, rows,
                   column.data(), width, 0.0, product.data(), width);
      parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          for (int64_t co = 0; co < cout; ++co) {
            int64_t channel = group * cout + co;
            S shift = bias != nullptr ? bias[channel] : S(0);
            S* out_plane = out + ((first + j) * g.out_channels + channel) * plane;
            const S* source = product.data() + co * width + j * plane;
            for (int64_t p = 0; p < plane; ++p) out_plane[p] = source[p] + shift;
          }
        }
      });
    }
  });
}

template <typename S>
void conv_backward_input(const S* grad_out, const S* weight, S* grad_input, const ConvGeometry& g) {
  int64_t rows = g.column_rows(), plane = g.out_plane(), cout = g.out_channels_per_group();
  std::fill(grad_input, grad_input + g.batch * g.in_channels * g.in_plane(), S(0));
  std::vector<S> column, gathered;
  for_each_chunk(g, [&](int64_t first, int64_t count) {
    int64_t width = count * plane;
    column.resize(size_t(rows * width));
    gathered.resize(size_t(cout * width));
    for (int64_t group = 0; group < g.groups(); ++group) {
      parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          for (int64_t co = 0; co < cout; ++co) {
            const S* source = grad_out + ((first + j) * g.out_channels + group * cout + co) * plane;
            std::copy(source, source + plane, gathered.data() + co * width + j * plane);
          }
        }
      });
      // column [rows, width] = weight_g^T [rows, cout] @ grad_out_g [cout, width]
      gemm_into<S>(true, false, rows, width, cout, weight + group * cout * rows, rows,
                   gathered.data(), width, 0.0, column.data(), width);
      parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          S* image_group =
              grad_input +
              ((first + j) * g.in_channels + group * g.in_channels_per_group()) * g.in_plane();
          col2im(column.data(), width, j * plane, g, image_group);
        }
      });
    }
  });
}

template <typename S>
void conv_backward_weight(const S* grad_out, const S* input, S* grad_weight,
                          const ConvGeometry& g) {
  int64_t rows = g.column_rows(), plane = g.out_plane(), cout = g.out_channels_per_group();
  std::fill(grad_weight, grad_weight + g.out_channels * rows, S(0));
  std::vector<S> column, gathered;
  for_each_chunk(g, [&](int64_t first, int64_t count) {
    int64_t width = count * plane;
    column.resize(size_t(rows * width));
    gathered.resize(size_t(cout * width));
    for (int64_t group = 0; group < g.groups(); ++group) {
      parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const S* image_group =
              input +
              ((first + j) * g.in_channels + group * g.in_channels_per_group()) * g.in_plane();
          im2col(image_group, g, column.data(), width, j * plane);
          for (int64_t co = 0; co < cout; ++co) {
            const S* source = grad_out + ((first + j) * g.out_channels + group * cout + co) * plane;
            std::copy(source, source + plane, gathered.data() + co * width + j * plane);
          }
        }
      });
      // grad_weight_g [cout, rows] += grad_out_g [cout, width] @ column^T [width, rows]; chunks
      // are added in order, so the sum's order is fixed by the shapes alone.
      gemm_into<S>(false, true, cout, rows, width, gathered.data(), width, column.data(), width,
                   1.0, grad_weight + group * cout * rows, rows);
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
