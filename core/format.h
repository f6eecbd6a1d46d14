// fmt support: `fmt::print("{}\n", tensor)`.
#pragma once

#include <fmt/format.h>

#include "core/tensor.h"

template <>
struct fmt::formatter<zt::Tensor> : fmt::formatter<std::string> {
  template <typename FormatContext>
  auto format(const zt::Tensor& tensor, FormatContext& context) const {
    return fmt::formatter<std::string>::format(tensor.str(), context);
  }
};
