// The checks and counting every communicator shares (see communicator_checks.h).
#include "comm/communicator_checks.h"

#include <fmt/format.h>

#include <stdexcept>

namespace zt::comm::detail {

std::string describe(const Tensor& tensor) {
  if (!tensor.defined()) return "undefined tensor";
  return fmt::format("{} {}", dtype_name(tensor.dtype()), shape_str(tensor.sizes()));
}

void check_tensor(std::string_view op, std::string_view role, const Tensor& tensor, Device device,
                  std::string_view device_rule) {
  if (!tensor.defined()) throw std::invalid_argument(fmt::format("{}: {} is undefined", op, role));
  if (tensor.device() != device)
    throw std::invalid_argument(fmt::format("{}: {} ({}) is on {}; {}", op, role, describe(tensor),
                                            tensor.device().str(), device_rule));
  if (!tensor.is_contiguous())
    throw std::invalid_argument(fmt::format("{}: {} ({}, strides {}) must be contiguous", op, role,
                                            describe(tensor), shape_str(tensor.strides())));
}

Device call_device(std::string_view op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor& first = *tensors.begin();
  if (!first.tensor.defined())
    throw std::invalid_argument(fmt::format("{}: {} is undefined", op, first.role));
  Device device = first.tensor.device();
  for (const NamedTensor& argument : tensors) {
    if (argument.tensor.defined() && argument.tensor.device() != device)
      throw std::invalid_argument(fmt::format(
          "{}: {} ({}) is on {} but {} is on {}; the tensors of one call must be on one device", op,
          argument.role, describe(argument.tensor), argument.tensor.device().str(), first.role,
          device.str()));
    check_tensor(op, argument.role, argument.tensor, device, "");
  }
  return device;
}

void check_same_dtype(std::string_view op, const Tensor& input, const Tensor& output) {
  if (input.dtype() != output.dtype())
    throw std::invalid_argument(
        fmt::format("{}: input ({}) and output ({}) must have the same dtype", op, describe(input),
                    describe(output)));
}

void check_rank(std::string_view op, std::string_view role, int rank, int group_size) {
  if (rank < 0 || rank >= group_size)
    throw std::invalid_argument(
        fmt::format("{}: {} {} is outside the group of {} ranks", op, role, rank, group_size));
}

void check_peer(std::string_view op, std::string_view role, int peer, int rank, int group_size,
                int tag) {
  check_rank(op, role, peer, group_size);
  if (peer == rank) {
    throw std::invalid_argument(fmt::format("{}: rank {} {} itself would block", op, rank,
                                            op == "send" ? "sending to" : "receiving from"));
  }
  if (tag < 0) throw std::invalid_argument(fmt::format("{}: tag {} must be >= 0", op, tag));
}

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage() || a.nbytes() == 0 || b.nbytes() == 0) return false;
  int64_t a_begin = a.storage_offset() * int64_t(a.element_size());
  int64_t b_begin = b.storage_offset() * int64_t(b.element_size());
  return a_begin < b_begin + int64_t(b.nbytes()) && b_begin < a_begin + int64_t(a.nbytes());
}

CollectiveCounter& count_call(CommStats& stats, CollectiveKind kind, int64_t buffer_bytes,
                              int64_t full_bytes, int group_size) {
  CollectiveCounter& counter = stats[kind];
  counter.calls += 1;
  counter.buffer_bytes += buffer_bytes;
  counter.payload_bytes += ring_payload_bytes(kind, full_bytes, group_size);
  return counter;
}

}  // namespace zt::comm::detail
