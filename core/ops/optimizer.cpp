// Argument checks of the fused optimizer updates; the arithmetic is the backend's.
#include "core/ops/optimizer.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace zt::ops {

namespace {

std::string describe(const Tensor& tensor) {
  if (!tensor.defined()) return "undefined";
  return fmt::format("{} {} on {}{}", dtype_name(tensor.dtype()), shape_str(tensor.sizes()),
                     tensor.device().str(), tensor.is_contiguous() ? "" : " (not contiguous)");
}

// Checks operand `name` of tensors[index]: contiguous f32 on `device`, with `numel` elements
// (any count when numel < 0: the param itself, which sets it for the others).
void check_operand(const char* op, size_t index, const char* name, const Tensor& operand,
                   Device device, int64_t numel) {
  bool ok = operand.defined() && operand.dtype() == DType::f32 && operand.is_contiguous() &&
            operand.device() == device && (numel < 0 || operand.numel() == numel);
  if (!ok) {
    std::string elements = numel < 0 ? "" : fmt::format(" with {} elements", numel);
    throw std::invalid_argument(
        fmt::format("{}: tensors[{}].{}: expected a contiguous f32 tensor on {}{}, got {}", op,
                    index, name, device.str(), elements, describe(operand)));
  }
}

// The operands of one list entry that must match its param, by name.
using NamedOperands = std::vector<std::pair<const char*, const Tensor*>>;

// Checks every entry of a non-empty list (its param, then named_operands(entry)) and returns
// the list's device: tensors[0].param's.
template <typename Operands, typename Named>
Device checked_device(const char* op, std::span<const Operands> tensors,
                      const Named& named_operands) {
  if (!tensors[0].param.defined()) {
    throw std::invalid_argument(
        fmt::format("{}: tensors[0].param: expected a contiguous f32 tensor, got undefined", op));
  }
  const Device device = tensors[0].param.device();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& param = tensors[i].param;
    check_operand(op, i, "param", param, device, -1);
    for (const auto& [name, operand] : named_operands(tensors[i])) {
      check_operand(op, i, name, *operand, device, param.numel());
    }
  }
  return device;
}

}  // namespace

void adam_update(std::span<const AdamOperands> tensors, const AdamStepConstants& constants) {
  if (tensors.empty()) return;
  Device device = checked_device("adam_update", tensors, [](const AdamOperands& t) {
    return NamedOperands{{"grad", &t.grad}, {"exp_avg", &t.exp_avg}, {"exp_avg_sq", &t.exp_avg_sq}};
  });
  backend_for(device).adam_update(tensors, constants);
}

namespace {

// The device of an Adam-shaped operand list (LAMB has the same operands), checked.
Device checked_adam_operands(const char* op, std::span<const AdamOperands> tensors) {
  return checked_device(op, tensors, [](const AdamOperands& t) {
    return NamedOperands{{"grad", &t.grad}, {"exp_avg", &t.exp_avg}, {"exp_avg_sq", &t.exp_avg_sq}};
  });
}

}  // namespace

std::vector<double> lamb_moments(std::span<const AdamOperands> tensors,
                                 const LambStepConstants& constants) {
  std::vector<double> square_sums(2 * tensors.size(), 0.0);
  if (tensors.empty()) return square_sums;
  Device device = checked_adam_operands("lamb_moments", tensors);
  backend_for(device).lamb_moments(tensors, constants, square_sums);
  return square_sums;
}

void lamb_apply(std::span<const AdamOperands> tensors, const LambStepConstants& constants,
                std::span<const float> scales) {
  if (tensors.empty()) return;
  if (scales.size() != tensors.size()) {
    throw std::invalid_argument(
        fmt::format("lamb_apply: {} scales for {} tensors; expected one "
                    "per tensor",
                    scales.size(), tensors.size()));
  }
  Device device = checked_adam_operands("lamb_apply", tensors);
  backend_for(device).lamb_apply(tensors, constants, scales);
}

void sgd_update(std::span<const SgdOperands> tensors, const SgdStepConstants& constants) {
  if (tensors.empty()) return;
  Device device = checked_device("sgd_update", tensors, [&](const SgdOperands& t) {
    NamedOperands named{{"grad", &t.grad}};
    if (constants.use_momentum) named.emplace_back("momentum_buffer", &t.momentum_buffer);
    return named;
  });
  backend_for(device).sgd_update(tensors, constants);
}

}  // namespace zt::ops
