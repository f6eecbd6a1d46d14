// The compressed all-reduce (comm/compressed_allreduce.h): sign compression with error
// feedback on both sides, the signs packed 8 to a byte (most significant bit first).
#include "comm/compressed_allreduce.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::comm {

namespace {

// scale = ||values|| / sqrt(n); each value becomes scale * sign(value) (sign(0) = +1), the error
// the rest, and the signs are packed into `packed` (n / 8 bytes). Returns the scale.
float compress_with_feedback(float* values, float* error, int64_t count, uint8_t* packed) {
  double square_sum = 0.0;
  for (int64_t i = 0; i < count; ++i) square_sum += double(values[i]) * double(values[i]);
  const float scale = float(std::sqrt(square_sum) / std::sqrt(double(count)));
  for (int64_t byte = 0; byte < count / 8; ++byte) {
    uint8_t bits = 0;
    for (int64_t bit = 0; bit < 8; ++bit) {
      const int64_t i = byte * 8 + bit;
      const bool positive = values[i] >= 0.0f;
      bits = uint8_t(bits | (positive ? 0x80u >> bit : 0u));
      error[i] = values[i] - (positive ? scale : -scale);
    }
    packed[byte] = bits;
  }
  return scale;
}

inline float sign_of_bit(const uint8_t* packed, int64_t i) {
  return (packed[i / 8] & (0x80u >> (i % 8))) != 0 ? 1.0f : -1.0f;
}

Tensor host_buffer(int64_t numel, DType dtype) {
  return zeros({numel}, {.dtype = dtype, .tag = MemoryTag::comm});
}

}  // namespace

CompressedAllReduce::CompressedAllReduce(Communicator& communicator, int64_t numel)
    : communicator_(communicator), numel_(numel) {
  if (numel < 1)
    throw std::invalid_argument(
        fmt::format("compressed all-reduce: expected a buffer of >= 1 element, got {}", numel));
  const int64_t unit = 8 * int64_t(communicator.size());
  const int64_t padded = (numel + unit - 1) / unit * unit;
  worker_error_ = zeros({padded}, {.dtype = DType::f32, .tag = MemoryTag::optim_state});
  server_error_ =
      zeros({padded / communicator.size()}, {.dtype = DType::f32, .tag = MemoryTag::optim_state});
}

void CompressedAllReduce::reset_errors() {
  worker_error_ = zeros_like(worker_error_);
  server_error_ = zeros_like(server_error_);
}

void CompressedAllReduce::average(const Tensor& buffer) {
  if (buffer.numel() != numel_ || buffer.dtype() != DType::f32 || !buffer.is_contiguous())
    throw std::invalid_argument(fmt::format(
        "compressed all-reduce: expected a contiguous f32 buffer of {} elements, got {} {} on {}",
        numel_, dtype_name(buffer.dtype()), shape_str(buffer.sizes()), buffer.device().str()));
  // The arithmetic runs on the host; what is sent lives where the buffer does, so that a
  // communicator of device tensors (NCCL) moves it: packed signs and scales, never the buffer.
  const Device exchange = buffer.device();
  auto to_exchange = [&](const Tensor& host) { return ops::to_device(host, exchange); };
  auto to_host = [](const Tensor& tensor) { return ops::to_device(tensor, Device::cpu()); };
  const Tensor host_buffer_values = to_host(buffer);
  const int ranks = communicator_.size();
  const int64_t padded = padded_numel(), chunk = padded / ranks;
  // The worker side: the buffer plus its error, compressed.
  std::vector<float> values(size_t(padded), 0.0f);
  const float* input = host_buffer_values.data_ptr<float>();
  float* worker_error = worker_error_.data_ptr<float>();
  for (int64_t i = 0; i < padded; ++i)
    values[size_t(i)] = (i < numel_ ? input[i] : 0.0f) + worker_error[i];
  Tensor signs = host_buffer(padded / 8, DType::u8), scale = host_buffer(1, DType::f32);
  scale.data_ptr<float>()[0] =
      compress_with_feedback(values.data(), worker_error, padded, signs.data_ptr<uint8_t>());
  // Chunk r of every rank's signs goes to rank r; every rank's scale to every rank.
  const Tensor sent_signs = to_exchange(signs), received = empty_like(sent_signs),
               scales = to_exchange(host_buffer(ranks, DType::f32));
  communicator_.all_to_all(sent_signs, received);
  communicator_.all_gather(to_exchange(scale), scales);
  const Tensor server = server_average(to_host(received), to_host(scales));
  // Every server's signs and scale to every rank: chunk r is rank r's.
  Tensor server_signs = host_buffer(chunk / 8, DType::u8);
  scale.data_ptr<float>()[0] =
      compress_with_feedback(server.data_ptr<float>(), server_error_.data_ptr<float>(), chunk,
                             server_signs.data_ptr<uint8_t>());
  const Tensor all_signs = to_exchange(host_buffer(padded / 8, DType::u8));
  communicator_.all_gather(to_exchange(server_signs), all_signs);
  communicator_.all_gather(to_exchange(scale), scales);
  const Tensor gathered_signs = to_host(all_signs), server_scales = to_host(scales);
  Tensor result = host_buffer(numel_, DType::f32);
  float* output = result.data_ptr<float>();
  const uint8_t* gathered = gathered_signs.data_ptr<uint8_t>();
  for (int64_t i = 0; i < numel_; ++i)
    output[i] = sign_of_bit(gathered, i) * server_scales.data_ptr<float>()[i / chunk];
  ops::copy_(ops::reshape(buffer, {numel_}), result);
}

Tensor CompressedAllReduce::server_average(const Tensor& chunk_signs, const Tensor& scales) {
  // The average of the N ranks' chunks, plus the server error (compressed by the caller).
  const int ranks = communicator_.size();
  const int64_t chunk = padded_numel() / ranks;
  Tensor server = host_buffer(chunk, DType::f32);
  float* sum = server.data_ptr<float>();
  const uint8_t* signs = chunk_signs.data_ptr<uint8_t>();
  const float* worker_scales = scales.data_ptr<float>();
  for (int r = 0; r < ranks; ++r) {
    const float weight = worker_scales[r] * (1.0f / float(ranks));
    const uint8_t* from_rank = signs + r * (chunk / 8);
    for (int64_t j = 0; j < chunk; ++j) sum[j] += sign_of_bit(from_rank, j) * weight;
  }
  const float* server_error = server_error_.data_ptr<float>();
  for (int64_t j = 0; j < chunk; ++j) sum[j] += server_error[j];
  return server;
}

}  // namespace zt::comm
