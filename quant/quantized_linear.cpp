// QuantizedLinear: the weight-only and W8A8 products (quant/quantized_linear.h).
#include "quant/quantized_linear.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/cpu/cpu_gelu_tanh.h"
#include "core/cpu/cpu_int8_gemm.h"
#include "core/factory.h"
#include "core/parallel.h"
#include "quant/activation_quantization.h"
#include "quant/quantized_gemv.h"

namespace zt::quant {

namespace {

constexpr int64_t kDequantizedPanelRows = 64;  // rows of W turned into f32 at a time
// Below this many tokens a W8A8 call splits the weight's columns over the threads, not the
// tokens (a decode step has one token per sequence).
constexpr int64_t kFewTokens = 16;

const char* type_name_of(QuantizationType type) {
  return type == QuantizationType::symmetric ? "symmetric" : "asymmetric";
}

}  // namespace

QuantizedLinear::QuantizedLinear(const Tensor& weight, const Tensor& bias, int bits, int64_t groups,
                                 QuantizationType weight_type,
                                 std::optional<QuantizationType> activation_type)
    : activation_type_(activation_type) {
  if (activation_type && bits != 8) {
    throw std::invalid_argument(fmt::format(
        "QuantizedLinear: activation quantization (W8A8) needs 8-bit weights, got {}", bits));
  }
  weight_ = quantize_weight(weight, bits, groups, weight_type);
  if (weight_.cols > cpu::kInt8GemmMaxK) {
    throw std::invalid_argument(fmt::format("QuantizedLinear: in_features {} exceeds {}",
                                            weight_.cols, cpu::kInt8GemmMaxK));
  }
  if (activation_type_) {
    // The panels become the only copy of the codes; the row-major ones go with this scope.
    packed_codes_ = empty({cpu::int8_gemm_packed_b_bytes(weight_.rows, weight_.cols)},
                          TensorOptions().with_dtype(DType::i8).with_tag(MemoryTag::param));
    cpu::int8_gemm_pack_b(weight_.codes.data_ptr<int8_t>(), weight_.cols, weight_.rows,
                          weight_.cols, packed_codes_.data_ptr<int8_t>());
    weight_.codes = Tensor();
  }
  register_state(bias);
  if (activation_type_) derive_w8a8_tables();
}

QuantizedLinear::QuantizedLinear(const QuantizedWeight& shared, const Tensor& bias)
    : weight_(shared) {
  register_state(bias);
}

void QuantizedLinear::register_state(const Tensor& bias) {
  if (activation_type_) {
    packed_codes_ = register_buffer("weight_codes_packed", packed_codes_);
  } else {
    weight_.codes = register_buffer("weight_codes", weight_.codes);
  }
  weight_.scales = register_buffer("weight_scales", weight_.scales);
  if (weight_.zero_points.defined())
    weight_.zero_points = register_buffer("weight_zero_points", weight_.zero_points);
  if (bias.defined()) {
    MemoryTagGuard as_param(MemoryTag::param);
    bias_ = register_buffer("bias", bias.detach().to(DType::f32).contiguous().clone());
  }
}

void QuantizedLinear::derive_w8a8_tables() {
  const int8_t* packed = packed_codes_.data_ptr<int8_t>();
  const int64_t rows = weight_.rows, cols = weight_.cols;
  weight_code_sums_.assign(size_t(rows), 0);
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t col = 0; col < cols; ++col)
      weight_code_sums_[size_t(row)] += cpu::int8_gemm_packed_b_at(packed, cols, row, col);
  // The epilogue reads a scale (and zero point) per output row: the group's. One group's scale
  // is folded into the tokens' scales instead; a group per row has its scales read in place.
  const float* scales = weight_.scales.data_ptr<float>();
  const int32_t* zeros =
      weight_.zero_points.defined() ? weight_.zero_points.data_ptr<int32_t>() : nullptr;
  row_scales_.clear();
  row_zero_points_.clear();
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t group = row / weight_.rows_per_group();
    if (weight_.groups > 1 && weight_.rows_per_group() > 1) row_scales_.push_back(scales[group]);
    if (zeros) row_zero_points_.push_back(float(zeros[group]));
  }
}

QuantizedWeight QuantizedLinear::quantized_weight() const {
  QuantizedWeight weight = weight_;
  if (activation_type_) {
    weight.codes = empty({weight_.rows, weight_.cols}, TensorOptions().with_dtype(DType::i8));
    cpu::int8_gemm_unpack_b(packed_codes_.data_ptr<int8_t>(), weight_.rows, weight_.cols,
                            weight.codes.data_ptr<int8_t>(), weight_.cols);
  }
  return weight;
}

NamedTensors QuantizedLinear::saved_buffers() const {
  NamedTensors saved = nn::Module::saved_buffers();
  if (!activation_type_) return saved;
  for (auto& [name, tensor] : saved) {
    if (name != "weight_codes_packed") continue;
    name = "weight_codes";
    tensor = quantized_weight().codes;
  }
  return saved;
}

void QuantizedLinear::load_saved_buffers(const NamedTensors& values) {
  if (!activation_type_) return nn::Module::load_saved_buffers(values);
  NamedTensors held;
  for (const auto& [name, value] : values) {
    if (name != "weight_codes") {
      held.emplace_back(name, value);
      continue;
    }
    Tensor codes = value.to(DType::i8).contiguous();  // shape checked by load_state_dict
    cpu::int8_gemm_pack_b(codes.data_ptr<int8_t>(), weight_.cols, weight_.rows, weight_.cols,
                          packed_codes_.data_ptr<int8_t>());
  }
  nn::Module::load_saved_buffers(held);
  derive_w8a8_tables();  // new codes, scales or zero points change every row's tables
}

std::string QuantizedLinear::extra_repr() const {
  std::string activations =
      activation_type_ ? fmt::format("int8 {}", type_name_of(*activation_type_)) : "f32";
  return fmt::format(
      "in_features={}, out_features={}, bias={}, weight=int{} {} q_groups={}, "
      "activations={}",
      weight_.cols, weight_.rows, bias_.defined(), weight_.bits, type_name_of(weight_.type),
      weight_.groups, activations);
}

size_t QuantizedLinear::matrix_bytes() const {
  size_t bytes = held_codes().nbytes() + weight_.scales.nbytes();
  if (weight_.zero_points.defined()) bytes += weight_.zero_points.nbytes();
  return bytes;
}

size_t QuantizedLinear::weight_bytes() const {
  size_t bytes = matrix_bytes() + weight_code_sums_.size() * sizeof(int32_t) +
                 (row_scales_.size() + row_zero_points_.size()) * sizeof(float);
  if (bias_.defined()) bytes += bias_.nbytes();
  return bytes;
}

Tensor QuantizedLinear::forward(const Tensor& input) {
  return forward_with(input, false);
}

Tensor QuantizedLinear::forward_gelu_tanh(const Tensor& input) {
  return forward_with(input, true);
}

Tensor QuantizedLinear::forward_with(const Tensor& input, bool gelu) {
  if (input.dim() < 1 || input.size(-1) != weight_.cols) {
    throw std::invalid_argument(
        fmt::format("QuantizedLinear: input of shape {} needs a last dim of {}",
                    shape_str(input.sizes()), weight_.cols));
  }
  if (!held_codes().device().is_cpu()) {
    throw std::invalid_argument(
        "QuantizedLinear: its codes, scales and bias stay on the CPU, but were moved to " +
        held_codes().device().str() + " (a W8A8 layer given a CUDA input multiplies there itself)");
  }
  if (input.device().is_cuda() && activation_type_) return forward_w8a8_device(input, gelu);
  if (!input.device().is_cpu()) {
    throw std::invalid_argument(
        "QuantizedLinear: a weight-only layer runs on the CPU (W8A8 on the CPU or CUDA); the "
        "input is on " +
        input.device().str());
  }
  autograd::NoGradGuard inference;
  Tensor x = input.detach().to(DType::f32).contiguous();
  int64_t tokens = x.numel() / weight_.cols;
  Shape out_shape = input.sizes();
  out_shape.back() = weight_.rows;
  Tensor y = empty(out_shape, TensorOptions().with_tag(MemoryTag::activation));
  if (activation_type_) {
    forward_w8a8(x.data_ptr<float>(), tokens, y.data_ptr<float>(), gelu);
  } else {
    forward_weight_only(x.data_ptr<float>(), tokens, y.data_ptr<float>());
    if (gelu) {
      float* out = y.data_ptr<float>();
      parallel_for(0, y.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
        cpu::gelu_tanh_forward_f32(out + begin, out + begin, end - begin);
      });
    }
  }
  return input.dtype() == DType::f32 ? y : y.to(input.dtype());
}

void QuantizedLinear::forward_weight_only(const float* x, int64_t tokens, float* y) const {
  int64_t rows = weight_.rows, cols = weight_.cols;
  const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
  // One token (a batch-1 decode step): the codes read in place; an f32 panel would be written
  // and read again for a single row of x.
  if (tokens == 1) return quantized_gemv(weight_, x, bias, y);
  int64_t panels = (rows + kDequantizedPanelRows - 1) / kDequantizedPanelRows;
  parallel_for(0, panels, 1, [&](int64_t panel_begin, int64_t panel_end) {
    thread_local std::vector<float> panel;  // reused: no fresh pages every call
    panel.resize(size_t(kDequantizedPanelRows * cols));
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      int64_t row_begin = p * kDequantizedPanelRows;
      int64_t panel_rows = std::min(kDequantizedPanelRows, rows - row_begin);
      dequantize_rows(weight_, row_begin, row_begin + panel_rows, panel.data());
      // y[:, panel] = x @ panel^T; sgemm runs on this thread (OpenBLAS inside a parallel region).
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(tokens), int(panel_rows), int(cols),
                  1.0f, x, int(cols), panel.data(), int(cols), 0.0f, y + row_begin, int(rows));
      if (bias) {
        for (int64_t t = 0; t < tokens; ++t)
          for (int64_t n = row_begin; n < row_begin + panel_rows; ++n) y[t * rows + n] += bias[n];
      }
    }
  });
}

// One parallel loop over blocks of tokens, each quantizing its rows, multiplying them with the
// whole weight and rescaling on one thread: a single fork and join per call, which matters on
// a loaded machine where every join waits for the slowest thread to be scheduled again. The
// rescaling (and GELU) run in the GEMM's epilogue on sums still in registers:
//   y = sa * sw * sum_k (a - za)(q - zq) + b
//     = sa * sw * ([sum a q - za sum q] - zq [sum a - k za]) + b.
// The first bracket, sum (a - za) q, lies within 255 * 128 * k < 2^31, so it is exact in int32
// even when its two terms are not (the epilogue takes them modulo 2^32); the second is per
// token (its centred code sum) times the row's zero point.
cpu::Int8GemmRescale QuantizedLinear::rescale_for(QuantizedTokens& activations, int64_t tokens,
                                                  std::vector<float>& centred_sums, float* y,
                                                  bool gelu) const {
  const float* group_scales = weight_.scales.data_ptr<float>();
  if (weight_.groups == 1) {
    for (int64_t t = 0; t < tokens; ++t) activations.scales[size_t(t)] *= group_scales[0];
  }
  if (!row_zero_points_.empty()) {
    centred_sums.resize(size_t(tokens));
    for (int64_t t = 0; t < tokens; ++t) {
      centred_sums[size_t(t)] = float(activations.code_sums[size_t(t)] -
                                      weight_.cols * int64_t(activations.zero_points[size_t(t)]));
    }
  }
  return {.y = y,
          .ldy = weight_.rows,
          .row_scales = activations.scales.data(),
          .row_zeros = activations.zero_points.data(),
          .row_sums = centred_sums.data(),
          .col_scales = weight_.groups == 1             ? nullptr
                        : weight_.rows_per_group() == 1 ? group_scales
                                                        : row_scales_.data(),
          .col_sums = weight_code_sums_.data(),
          .col_zeros = row_zero_points_.empty() ? nullptr : row_zero_points_.data(),
          .bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr,
          .gelu_tanh = gelu};
}

void QuantizedLinear::forward_w8a8(const float* x, int64_t tokens, float* y, bool gelu) const {
  const int64_t rows = weight_.rows, cols = weight_.cols;
  auto run = [&](int64_t begin, int64_t end, bool parallel_gemm) {
    thread_local QuantizedTokens activations;  // reused: no fresh pages every call
    thread_local std::vector<float> centred_sums;
    quantize_tokens_into(x + begin * cols, end - begin, cols, *activation_type_, activations);
    const cpu::Int8GemmRescale rescale =
        rescale_for(activations, end - begin, centred_sums, y + begin * rows, gelu);
    const cpu::Int8GemmArgs args{.a = activations.codes.data(),
                                 .lda = cols,
                                 .b = nullptr,  // held packed only
                                 .ldb = cols,
                                 .b_packed = packed_codes_.data_ptr<int8_t>(),
                                 .c = nullptr,
                                 .ldc = rows,
                                 .rescale = &rescale,
                                 .m = end - begin,
                                 .n = rows,
                                 .k = cols};
    if (parallel_gemm) {
      cpu::int8_gemm(args);
    } else {
      cpu::int8_gemm_serial(args);
    }
  };
  const int64_t threads = num_threads();
  if (tokens < kFewTokens && threads > 1) {
    // Decoding: too few tokens to share out, so the threads split the weight's columns.
    run(0, tokens, true);
    return;
  }
  const int64_t block = std::max<int64_t>(1, (tokens + threads - 1) / threads);
  parallel_for(0, tokens, block, [&](int64_t begin, int64_t end) { run(begin, end, false); });
}

}  // namespace zt::quant
