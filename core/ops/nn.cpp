// The neural-network ops of core/ops/nn.h: validate shapes, dtypes and devices, make inputs
// contiguous, allocate outputs and call one backend kernel. Every error names the op, the
// argument and the shapes. Nothing here records autograd.
#include "core/ops/nn.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::ops {

namespace {

Backend& backend_of(const Tensor& tensor) {
  return backend_for(tensor.device());
}

TensorOptions output_options(const Tensor& like, DType dtype) {
  return TensorOptions{.dtype = dtype, .device = like.device()};
}
TensorOptions output_options(const Tensor& like) {
  return output_options(like, like.dtype());
}

void require_defined(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) {
    throw std::invalid_argument(fmt::format("{}: {} is an undefined tensor", op, name));
  }
}

void require_floating(const char* op, const char* name, const Tensor& tensor) {
  require_defined(op, name, tensor);
  if (!is_floating(tensor.dtype())) {
    throw std::invalid_argument(fmt::format("{}: {} has dtype {}, expected a floating dtype", op,
                                            name, dtype_name(tensor.dtype())));
  }
}

void require_dtype(const char* op, const char* name, const Tensor& tensor, DType dtype) {
  require_defined(op, name, tensor);
  if (tensor.dtype() != dtype) {
    throw std::invalid_argument(fmt::format("{}: {} has dtype {}, expected {}", op, name,
                                            dtype_name(tensor.dtype()), dtype_name(dtype)));
  }
}

// `other` must share `reference`'s dtype and device.
void require_like(const char* op, const char* name, const Tensor& other, const char* ref_name,
                  const Tensor& reference) {
  require_dtype(op, name, other, reference.dtype());
  if (other.device() != reference.device()) {
    throw std::invalid_argument(fmt::format("{}: {} is on {} but {} is on {}", op, name,
                                            other.device().str(), ref_name,
                                            reference.device().str()));
  }
}

void require_shape(const char* op, const char* name, const Tensor& tensor, const Shape& shape) {
  if (tensor.sizes() != shape) {
    throw std::invalid_argument(fmt::format("{}: {} has shape {}, expected {}", op, name,
                                            shape_str(tensor.sizes()), shape_str(shape)));
  }
}

// Applies a last-dim kernel along `dim` by moving `dim` last and back.
template <typename Kernel>
Tensor along_last_dim(const Tensor& x, int64_t dim, const Kernel& kernel) {
  int64_t rank = std::max<int64_t>(1, x.dim());
  int64_t last = rank - 1;
  int64_t wrapped = wrap_dim(dim, rank, "dim");
  Tensor moved = x.dim() == 0 ? x : transpose(x, wrapped, last);
  Tensor result = kernel(contiguous(moved));
  if (x.dim() == 0 || wrapped == last) return result;
  return contiguous(transpose(result, wrapped, last));
}

}  // namespace

// ---- softmax ------------------------------------------------------------------------------

static Tensor softmax_impl(const char* op, const Tensor& x, int64_t dim, bool log) {
  require_floating(op, "input", x);
  return along_last_dim(x, dim, [&](const Tensor& rows) {
    Tensor out = empty(rows.sizes(), output_options(rows));
    if (out.numel() > 0) backend_of(rows).softmax_forward(rows, out, log);
    return out;
  });
}

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("softmax", x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}

Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim, bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  require_floating(op, "out", out);
  require_like(op, "grad_out", grad_out, "out", out);
  require_shape(op, "grad_out", grad_out, out.sizes());
  int64_t rank = std::max<int64_t>(1, out.dim());
  int64_t wrapped = wrap_dim(dim, rank, "dim");
  int64_t last = rank - 1;
  auto moved = [&](const Tensor& t) {
    return contiguous(t.dim() == 0 ? t : transpose(t, wrapped, last));
  };
  Tensor grad_rows = moved(grad_out), out_rows = moved(out);
  Tensor grad_in = empty(out_rows.sizes(), output_options(out));
  if (grad_in.numel() > 0) backend_of(out).softmax_backward(grad_rows, out_rows, grad_in, log);
  if (out.dim() == 0 || wrapped == last) return grad_in;
  return contiguous(transpose(grad_in, wrapped, last));
}

// ---- cross entropy ------------------------------------------------------------------------

static void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& target,
                                double label_smoothing) {
  require_floating(op, "logits", logits);
  require_dtype(op, "target", target, DType::i64);
  if (logits.dim() != 2 || target.dim() != 1 || target.size(0) != logits.size(0)) {
    throw std::invalid_argument(
        fmt::format("{}: expected logits [N, C] and target [N], got logits {} and target {}", op,
                    shape_str(logits.sizes()), shape_str(target.sizes())));
  }
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    throw std::invalid_argument(
        fmt::format("{}: label_smoothing must be in [0, 1], got {}", op, label_smoothing));
  }
}

CrossEntropyForward cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                          int64_t ignore_index, double label_smoothing) {
  check_cross_entropy("cross_entropy", logits, target, label_smoothing);
  Tensor logits_rows = contiguous(logits), targets = contiguous(target);
  CrossEntropyForward result;
  result.losses = empty({logits.size(0)}, output_options(logits));
  result.log_probs = empty(logits.sizes(), output_options(logits));
  backend_of(logits).cross_entropy_forward(logits_rows, targets, ignore_index, label_smoothing,
                                           result.losses, result.log_probs);
  return result;
}

Tensor cross_entropy_backward(const Tensor& grad_losses, const CrossEntropyForward& saved,
                              const Tensor& target, int64_t ignore_index, double label_smoothing) {
  const char* op = "cross_entropy_backward";
  check_cross_entropy(op, saved.log_probs, target, label_smoothing);
  require_like(op, "grad_losses", grad_losses, "log_probs", saved.log_probs);
  require_shape(op, "grad_losses", grad_losses, {saved.log_probs.size(0)});
  Tensor grad_logits = empty(saved.log_probs.sizes(), output_options(saved.log_probs));
  backend_of(grad_logits)
      .cross_entropy_backward(contiguous(grad_losses), contiguous(saved.log_probs),
                              contiguous(target), ignore_index, label_smoothing, grad_logits);
  return grad_logits;
}

// ---- conv2d -------------------------------------------------------------------------------

static void check_conv_params(const char* op, const Conv2dParams& params) {
  if (params.stride_h < 1 || params.stride_w < 1 || params.dilation_h < 1 ||
      params.dilation_w < 1 || params.padding_h < 0 || params.padding_w < 0 || params.groups < 1) {
    throw std::invalid_argument(fmt::format(
        "{}: stride ({}, {}) and dilation ({}, {}) must be >= 1, padding ({}, {}) >= 0 and "
        "groups ({}) >= 1",
        op, params.stride_h, params.stride_w, params.dilation_h, params.dilation_w,
        params.padding_h, params.padding_w, params.groups));
  }
}

static int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                             int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// Checks input [N, C_in, H, W] against weight [C_out, C_in/groups, KH, KW] and returns the
// output shape [N, C_out, OH, OW].
static Shape conv_output_shape(const char* op, const Shape& input, const Shape& weight,
                               const Conv2dParams& params) {
  check_conv_params(op, params);
  if (input.size() != 4 || weight.size() != 4) {
    throw std::invalid_argument(fmt::format(
        "{}: expected a 4-d input [N, C, H, W] and 4-d weight [C_out, C_in/groups, KH, KW], got "
        "input {} and weight {}",
        op, shape_str(input), shape_str(weight)));
  }
  int64_t channels = input[1], groups = params.groups;
  if (channels % groups != 0 || weight[0] % groups != 0) {
    throw std::invalid_argument(
        fmt::format("{}: input channels ({}) and output channels ({}) must be divisible by "
                    "groups={}",
                    op, channels, weight[0], groups));
  }
  if (weight[1] * groups != channels) {
    throw std::invalid_argument(fmt::format(
        "{}: weight has {} input channels per group, input has {} channels and groups={}", op,
        weight[1], channels, groups));
  }
  int64_t out_h =
      conv_out_size(input[2], weight[2], params.stride_h, params.padding_h, params.dilation_h);
  int64_t out_w =
      conv_out_size(input[3], weight[3], params.stride_w, params.padding_w, params.dilation_w);
  if (out_h < 1 || out_w < 1) {
    throw std::invalid_argument(fmt::format(
        "{}: input {} is smaller than the dilated kernel {} with padding ({}, {}) and dilation "
        "({}, {})",
        op, shape_str(input), shape_str(weight), params.padding_h, params.padding_w,
        params.dilation_h, params.dilation_w));
  }
  return {input[0], weight[0], out_h, out_w};
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params) {
  const char* op = "conv2d";
  require_floating(op, "input", input);
  require_like(op, "weight", weight, "input", input);
  Shape out_shape = conv_output_shape(op, input.sizes(), weight.sizes(), params);
  if (bias.defined()) {
    require_like(op, "bias", bias, "input", input);
    require_shape(op, "bias", bias, {weight.size(0)});
  }
  Tensor out = empty(out_shape, output_options(input));
  backend_of(input).conv2d_forward(contiguous(input), contiguous(weight),
                                   bias.defined() ? contiguous(bias) : Tensor(), out, params);
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dParams& params) {
  const char* op = "conv2d_backward_input";
  require_floating(op, "grad_out", grad_out);
  require_like(op, "weight", weight, "grad_out", grad_out);
  require_shape(op, "grad_out", grad_out,
                conv_output_shape(op, input_shape, weight.sizes(), params));
  Tensor grad_input = empty(input_shape, output_options(grad_out));
  backend_of(grad_out).conv2d_backward_input(contiguous(grad_out), contiguous(weight), grad_input,
                                             params);
  return grad_input;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const Conv2dParams& params) {
  const char* op = "conv2d_backward_weight";
  require_floating(op, "grad_out", grad_out);
  require_like(op, "input", input, "grad_out", grad_out);
  require_shape(op, "grad_out", grad_out,
                conv_output_shape(op, input.sizes(), weight_shape, params));
  Tensor grad_weight = empty(weight_shape, output_options(grad_out));
  backend_of(grad_out).conv2d_backward_weight(contiguous(grad_out), contiguous(input), grad_weight,
                                              params);
  return grad_weight;
}

// ---- pooling ------------------------------------------------------------------------------

// Checks a 3-d [C, H, W] or 4-d [N, C, H, W] input and returns the output shape in PyTorch's
// floor mode.
static Shape pool_output_shape(const char* op, const Shape& input, const Pool2dParams& params,
                               bool dilated) {
  if (input.size() != 3 && input.size() != 4) {
    throw std::invalid_argument(fmt::format(
        "{}: expected a 3-d [C, H, W] or 4-d [N, C, H, W] input, got {}", op, shape_str(input)));
  }
  if (params.kernel_h < 1 || params.kernel_w < 1 || params.stride_h < 1 || params.stride_w < 1 ||
      params.padding_h < 0 || params.padding_w < 0 || params.dilation_h < 1 ||
      params.dilation_w < 1) {
    throw std::invalid_argument(fmt::format(
        "{}: kernel ({}, {}), stride ({}, {}) and dilation ({}, {}) must be >= 1 and padding "
        "({}, {}) >= 0",
        op, params.kernel_h, params.kernel_w, params.stride_h, params.stride_w, params.dilation_h,
        params.dilation_w, params.padding_h, params.padding_w));
  }
  if (params.padding_h > params.kernel_h / 2 || params.padding_w > params.kernel_w / 2) {
    throw std::invalid_argument(
        fmt::format("{}: padding ({}, {}) should be at most half of the kernel ({}, {})", op,
                    params.padding_h, params.padding_w, params.kernel_h, params.kernel_w));
  }
  int64_t dilation_h = dilated ? params.dilation_h : 1,
          dilation_w = dilated ? params.dilation_w : 1;
  size_t rank = input.size();
  int64_t out_h = conv_out_size(input[rank - 2], params.kernel_h, params.stride_h, params.padding_h,
                                dilation_h);
  int64_t out_w = conv_out_size(input[rank - 1], params.kernel_w, params.stride_w, params.padding_w,
                                dilation_w);
  if (out_h < 1 || out_w < 1) {
    throw std::invalid_argument(fmt::format(
        "{}: input {} is too small for kernel ({}, {}) with padding ({}, {}): output would be "
        "{}x{}",
        op, shape_str(input), params.kernel_h, params.kernel_w, params.padding_h, params.padding_w,
        out_h, out_w));
  }
  Shape out(input.begin(), input.end() - 2);
  out.push_back(out_h);
  out.push_back(out_w);
  return out;
}

MaxPoolForward max_pool2d(const Tensor& input, const Pool2dParams& params) {
  require_floating("max_pool2d", "input", input);
  Shape out_shape = pool_output_shape("max_pool2d", input.sizes(), params, true);
  MaxPoolForward result;
  result.out = empty(out_shape, output_options(input));
  result.indices = empty(out_shape, output_options(input, DType::i64));
  backend_of(input).max_pool2d_forward(contiguous(input), result.out, result.indices, params);
  return result;
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                           const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  require_floating(op, "grad_out", grad_out);
  require_dtype(op, "indices", indices, DType::i64);
  require_shape(op, "indices", indices, grad_out.sizes());
  if (input_shape.size() != size_t(grad_out.dim()) || input_shape.size() < 3 ||
      !std::equal(input_shape.begin(), input_shape.end() - 2, grad_out.sizes().begin())) {
    throw std::invalid_argument(fmt::format("{}: grad_out {} does not match input shape {}", op,
                                            shape_str(grad_out.sizes()), shape_str(input_shape)));
  }
  Tensor grad_input = empty(input_shape, output_options(grad_out));
  backend_of(grad_out).max_pool2d_backward(contiguous(grad_out), contiguous(indices), grad_input);
  return grad_input;
}

Tensor avg_pool2d(const Tensor& input, const Pool2dParams& params) {
  require_floating("avg_pool2d", "input", input);
  Shape out_shape = pool_output_shape("avg_pool2d", input.sizes(), params, false);
  Tensor out = empty(out_shape, output_options(input));
  backend_of(input).avg_pool2d_forward(contiguous(input), out, params);
  return out;
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape,
                           const Pool2dParams& params) {
  const char* op = "avg_pool2d_backward";
  require_floating(op, "grad_out", grad_out);
  require_shape(op, "grad_out", grad_out, pool_output_shape(op, input_shape, params, false));
  Tensor grad_input = empty(input_shape, output_options(grad_out));
  backend_of(grad_out).avg_pool2d_backward(contiguous(grad_out), grad_input, params);
  return grad_input;
}

// ---- layer norm ---------------------------------------------------------------------------

// The number of elements normalised together, after checking the trailing dims.
static int64_t layer_norm_cols(const char* op, const Tensor& input, const Shape& normalized_shape) {
  size_t count = normalized_shape.size();
  bool matches = count >= 1 && count <= size_t(input.dim()) &&
                 std::equal(normalized_shape.begin(), normalized_shape.end(),
                            input.sizes().end() - int64_t(count));
  if (!matches) {
    throw std::invalid_argument(
        fmt::format("{}: normalized_shape {} must be non-empty and match the last dims of input {}",
                    op, shape_str(normalized_shape), shape_str(input.sizes())));
  }
  return shape_numel(normalized_shape);
}

static DType stat_dtype(DType dtype) {
  return is_half(dtype) ? DType::f32 : dtype;
}

LayerNormForward layer_norm(const Tensor& input, const Shape& normalized_shape,
                            const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  require_floating(op, "input", input);
  int64_t cols = layer_norm_cols(op, input, normalized_shape);
  int64_t rows = cols > 0 ? input.numel() / cols : 0;
  if (weight.defined()) {
    require_like(op, "weight", weight, "input", input);
    require_shape(op, "weight", weight, normalized_shape);
  }
  if (bias.defined()) {
    require_like(op, "bias", bias, "input", input);
    require_shape(op, "bias", bias, normalized_shape);
  }
  Tensor rows_view = reshape(contiguous(input), {rows, cols});
  LayerNormForward result;
  result.out = empty(input.sizes(), output_options(input));
  result.mean = empty({rows}, output_options(input, stat_dtype(input.dtype())));
  result.rstd = empty({rows}, output_options(input, stat_dtype(input.dtype())));
  if (input.numel() == 0) return result;
  backend_of(input).layer_norm_forward(
      rows_view, weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor(),
      bias.defined() ? reshape(contiguous(bias), {cols}) : Tensor(), eps,
      view(result.out, {rows, cols}), result.mean, result.rstd);
  return result;
}

LayerNormGrads layer_norm_backward(const Tensor& grad_out, const Tensor& input,
                                   const Shape& normalized_shape, const LayerNormForward& saved,
                                   const Tensor& weight, bool need_weight_grad,
                                   bool need_bias_grad) {
  const char* op = "layer_norm_backward";
  require_floating(op, "input", input);
  require_like(op, "grad_out", grad_out, "input", input);
  require_shape(op, "grad_out", grad_out, input.sizes());
  int64_t cols = layer_norm_cols(op, input, normalized_shape);
  int64_t rows = cols > 0 ? input.numel() / cols : 0;
  require_shape(op, "mean", saved.mean, {rows});
  require_shape(op, "rstd", saved.rstd, {rows});
  require_dtype(op, "mean", saved.mean, stat_dtype(input.dtype()));
  require_dtype(op, "rstd", saved.rstd, stat_dtype(input.dtype()));
  if (weight.defined()) {
    require_like(op, "weight", weight, "input", input);
    require_shape(op, "weight", weight, normalized_shape);
  }
  if (need_weight_grad && !weight.defined()) {
    throw std::invalid_argument(
        fmt::format("{}: a weight gradient was requested but weight is undefined", op));
  }
  LayerNormGrads grads;
  grads.input = empty(input.sizes(), output_options(input));
  if (need_weight_grad) grads.weight = zeros(normalized_shape, output_options(input));
  if (need_bias_grad) grads.bias = zeros(normalized_shape, output_options(input));
  if (input.numel() == 0) return grads;
  backend_of(input).layer_norm_backward(
      reshape(contiguous(grad_out), {rows, cols}), reshape(contiguous(input), {rows, cols}),
      contiguous(saved.mean), contiguous(saved.rstd),
      weight.defined() ? reshape(contiguous(weight), {cols}) : Tensor(),
      view(grads.input, {rows, cols}), need_weight_grad ? view(grads.weight, {cols}) : Tensor(),
      need_bias_grad ? view(grads.bias, {cols}) : Tensor());
  return grads;
}

// ---- embedding ----------------------------------------------------------------------------

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  const char* op = "embedding";
  require_defined(op, "weight", weight);
  require_dtype(op, "indices", indices, DType::i64);
  if (weight.dim() != 2) {
    throw std::invalid_argument(
        fmt::format("{}: weight should be 2-d [V, D], got {}", op, shape_str(weight.sizes())));
  }
  Shape out_shape = indices.sizes();
  out_shape.push_back(weight.size(1));
  Tensor out = empty(out_shape, output_options(weight));
  backend_of(weight).embedding_forward(contiguous(weight), contiguous(indices), out);
  return out;
}

Tensor embedding_backward(const Tensor& grad_out, const Tensor& indices, int64_t num_weights,
                          int64_t padding_idx) {
  const char* op = "embedding_backward";
  require_floating(op, "grad_out", grad_out);
  require_dtype(op, "indices", indices, DType::i64);
  Shape expected = indices.sizes();
  expected.push_back(grad_out.dim() > 0 ? grad_out.size(-1) : 0);
  require_shape(op, "grad_out", grad_out, expected);
  int64_t width = grad_out.size(-1);
  Tensor grad_weight = zeros({num_weights, width}, output_options(grad_out));
  backend_of(grad_out).embedding_backward(reshape(contiguous(grad_out), {indices.numel(), width}),
                                          contiguous(indices), grad_weight, padding_idx);
  return grad_weight;
}

// ---- dropout ------------------------------------------------------------------------------

DropoutForward dropout(const Tensor& input, double p, Generator* generator) {
  require_floating("dropout", "input", input);
  if (!(p >= 0.0 && p < 1.0)) {
    throw std::invalid_argument(fmt::format("dropout: p must be in [0, 1), got {}", p));
  }
  Generator& source = generator != nullptr ? *generator : default_generator();
  uint64_t offset = source.reserve(uint64_t(input.numel()));
  DropoutForward result;
  result.out = empty(input.sizes(), output_options(input));
  result.mask = empty(input.sizes(), output_options(input, DType::u8));
  backend_of(input).dropout_forward(contiguous(input), result.out, result.mask, p, source.seed(),
                                    offset);
  return result;
}

Tensor dropout_backward(const Tensor& grad_out, const Tensor& mask, double p) {
  require_floating("dropout_backward", "grad_out", grad_out);
  require_dtype("dropout_backward", "mask", mask, DType::u8);
  require_shape("dropout_backward", "mask", mask, grad_out.sizes());
  Tensor grad_input = empty(grad_out.sizes(), output_options(grad_out));
  backend_of(grad_out).dropout_backward(contiguous(grad_out), contiguous(mask), p, grad_input);
  return grad_input;
}

}  // namespace zt::ops
