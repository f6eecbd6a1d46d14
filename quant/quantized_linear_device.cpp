// QuantizedLinear's W8A8 forward on a CUDA input: the int8 x int8 -> int32 product runs in
// cuBLASLt (quant/device_int8_gemm.h). The per-token quantization and the rescaling epilogue
// run on the host, with the CPU path's code, so the two paths give the same outputs from the
// same exact int32 sums; what moves is the tokens' codes up and the int32 sums down.
#include <fmt/format.h>

#include <stdexcept>
#include <vector>

#include "autograd/grad_mode.h"
#include "core/device_int8_gemm.h"
#include "core/factory.h"
#include "quant/quantized_linear.h"

namespace zt::quant {

namespace {

int64_t whole_quads(int64_t count) {
  return (count + 3) / 4 * 4;
}

}  // namespace

Tensor QuantizedLinear::forward_w8a8_device(const Tensor& input, bool gelu) {
  const DeviceInt8Gemm gemm = registered_device_int8_gemm();
  if (!gemm) {
    throw std::invalid_argument(fmt::format(
        "QuantizedLinear: the input is on {}, but this program has no CUDA int8 GEMM (it is not "
        "linked with the CUDA archive)",
        input.device().str()));
  }
  autograd::NoGradGuard inference;
  const Device device = input.device();
  const int64_t rows = weight_.rows, cols = weight_.cols, padded = whole_quads(cols);
  if (!device_codes_.defined() || device_codes_.device() != device) {
    Tensor codes = zeros({rows, padded}, TensorOptions().with_dtype(DType::i8));
    cpu::int8_gemm_unpack_b(packed_codes_.data_ptr<int8_t>(), rows, cols, codes.data_ptr<int8_t>(),
                            padded);
    device_codes_ = codes.to(device);
  }
  const Tensor x = input.detach().to(Device::cpu()).to(DType::f32).contiguous();
  const int64_t tokens = x.numel() / cols;
  QuantizedTokens activations;
  quantize_tokens_into(x.data_ptr<float>(), tokens, cols, *activation_type_, activations);
  Shape out_shape = input.sizes();
  out_shape.back() = rows;
  Tensor y = empty(out_shape, TensorOptions().with_tag(MemoryTag::activation));
  std::vector<float> centred_sums;
  const cpu::Int8GemmRescale rescale =
      rescale_for(activations, tokens, centred_sums, y.data_ptr<float>(), gelu);
  // cuBLASLt multiplies signed bytes: code a with zero za is a - 128 with zero za - 128, the
  // same centred values (the centred sums above were taken before the shift).
  Tensor signed_codes = zeros({tokens, padded}, TensorOptions().with_dtype(DType::i8));
  int8_t* shifted = signed_codes.data_ptr<int8_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t p = 0; p < cols; ++p)
      shifted[t * padded + p] = int8_t(int(activations.codes[size_t(t * cols + p)]) - 128);
    activations.zero_points[size_t(t)] -= 128;
  }
  const Tensor a = signed_codes.to(device);
  Tensor sums = empty({tokens, rows}, TensorOptions().with_dtype(DType::i32).with_device(device));
  gemm({.a = a.data_ptr<int8_t>(),
        .lda = padded,
        .b = device_codes_.data_ptr<int8_t>(),
        .ldb = padded,
        .c = sums.data_ptr<int32_t>(),
        .ldc = rows,
        .m = tokens,
        .n = rows,
        .k = padded,
        .device_index = device.index});
  const Tensor host_sums = sums.to(Device::cpu());
  const int32_t* sum_rows = host_sums.data_ptr<int32_t>();
  for (int64_t t = 0; t < tokens; ++t)
    cpu::int8_gemm_rescale_row(rescale, t, 0, rows, sum_rows + t * rows);
  const Tensor out = y.to(device);
  return input.dtype() == DType::f32 ? out : out.to(input.dtype());
}

}  // namespace zt::quant
