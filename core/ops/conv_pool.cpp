// conv2d and pooling of core/ops/nn.h: check the geometry and dtypes, make inputs contiguous,
// allocate outputs and call one backend kernel. Every error names the op, the argument and the
// shapes. Nothing here records autograd.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/nn.h"
#include "core/ops/nn_op_checks.h"
#include "core/ops/view.h"

namespace zt::ops {

using namespace nn_op_checks;

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

}  // namespace zt::ops
