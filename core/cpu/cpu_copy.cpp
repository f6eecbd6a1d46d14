// CPU copy (with casts among all 7 dtypes and i8), fill and arange. An i4x2 tensor copies
// only to another (its packed bytes); its fill packs the value into both nibbles.
// Cast rules: float -> integer truncates toward zero, saturating at the integer's range (NaN
// gives 0) so that no conversion is undefined behaviour; integer -> integer wraps modulo 2^bits;
// anything -> f16/bf16 rounds once to nearest even (doubles go through a round-to-odd float,
// which makes the two-step rounding exact).
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/cpu/strided_loop.h"

namespace zt::cpu {

namespace {

template <typename T>
constexpr bool is_half_type = std::is_same_v<T, f16> || std::is_same_v<T, bf16>;

// Rounds a double to float with round-to-odd: an inexact result gets its lowest mantissa bit
// set. Rounding that float again to a type with fewer than 23 mantissa bits then gives the
// correctly rounded result of the original double.
inline float double_to_float_round_to_odd(double value) {
  float rounded = static_cast<float>(value);
  if (std::isnan(value) || static_cast<double>(rounded) == value) return rounded;
  uint32_t bits = float_bits(rounded);
  if ((bits & 1u) != 0) return rounded;
  // rounded is the even neighbour; the odd one lies on the other side of value.
  float toward_value = (static_cast<double>(rounded) > value)
                           ? std::nextafter(rounded, -std::numeric_limits<float>::infinity())
                           : std::nextafter(rounded, std::numeric_limits<float>::infinity());
  return toward_value;
}

template <typename Dst, typename Src>
inline Dst convert(Src value) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return value;
  } else if constexpr (is_half_type<Src>) {
    return convert<Dst>(static_cast<float>(value));
  } else if constexpr (is_half_type<Dst>) {
    if constexpr (std::is_same_v<Src, float>) {
      return Dst(value);
    } else if constexpr (std::is_same_v<Src, uint8_t> || std::is_same_v<Src, int32_t>) {
      return Dst(double_to_float_round_to_odd(double(value)));
    } else {  // double, int64
      return Dst(double_to_float_round_to_odd(static_cast<double>(value)));
    }
  } else if constexpr (std::is_integral_v<Dst> && std::is_floating_point_v<Src>) {
    if (std::isnan(value)) return Dst(0);
    // 2^digits is the first value past the top of Dst's range, exact in float and double.
    constexpr double past_max = double(uint64_t(1) << std::numeric_limits<Dst>::digits);
    if (double(value) >= past_max) return std::numeric_limits<Dst>::max();
    if (double(value) <= double(std::numeric_limits<Dst>::min()) - 1.0) {
      return std::numeric_limits<Dst>::min();
    }
    return static_cast<Dst>(value);
  } else {
    return static_cast<Dst>(value);
  }
}

template <typename Dst, typename Src>
void copy_run(char* dst, int64_t dst_stride, const char* src, int64_t src_stride, int64_t count) {
  if (dst_stride == int64_t(sizeof(Dst)) && src_stride == int64_t(sizeof(Src))) {
    Dst* out = reinterpret_cast<Dst*>(dst);
    const Src* in = reinterpret_cast<const Src*>(src);
    if constexpr (std::is_same_v<Dst, Src>) {
      std::memcpy(out, in, size_t(count) * sizeof(Dst));
    } else {
      for (int64_t i = 0; i < count; ++i) out[i] = convert<Dst>(in[i]);
    }
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    Src value;
    std::memcpy(&value, src + i * src_stride, sizeof(Src));
    Dst converted = convert<Dst>(value);
    std::memcpy(dst + i * dst_stride, &converted, sizeof(Dst));
  }
}

// The copy kernels' types: every arithmetic dtype, i8, and i4x2 as its bytes.
template <typename Fn>
void dispatch_copyable(DType dtype, const char* op, Fn&& fn) {
  if (dtype == DType::i8) return fn.template operator()<int8_t>();
  if (dtype == DType::i4x2) return fn.template operator()<uint8_t>();
  dispatch_all(dtype, op, fn);
}

// The byte an i4x2 fill writes: `value` (an integer in [-8, 7]) in both nibbles.
uint8_t packed_int4_filler(double value) {
  if (!(value >= -8 && value <= 7) || value != std::floor(value)) {
    throw std::invalid_argument("fill: an i4x2 tensor holds integers in [-8, 7], got " +
                                std::to_string(value));
  }
  uint8_t nibble = uint8_t(int(value) & 0xF);
  return uint8_t(nibble | (nibble << 4));
}

}  // namespace

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  // Same dtype, both contiguous: one parallel memcpy.
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const char* from = static_cast<const char*>(src.raw_data());
    char* to = static_cast<char*>(dst.raw_data());
    int64_t bytes = int64_t(dst.nbytes());
    parallel_for(0, bytes, kElementwiseGrain * 8, [&](int64_t begin, int64_t end) {
      std::memcpy(to + begin, from + begin, size_t(end - begin));
    });
    return;
  }
  if ((src.dtype() == DType::i4x2) != (dst.dtype() == DType::i4x2)) {
    throw std::invalid_argument(std::string("copy: i4x2 packs two values a byte and copies only "
                                            "to i4x2 (quant/ converts it), got ") +
                                std::string(dtype_name(src.dtype())) + " -> " +
                                std::string(dtype_name(dst.dtype())));
  }
  dispatch_copyable(dst.dtype(), "copy", [&]<typename Dst>() {
    dispatch_copyable(src.dtype(), "copy", [&]<typename Src>() {
      strided_for_each<2>(
          {&dst, &src}, kElementwiseGrain,
          [](std::array<char*, 2> pointers, std::array<int64_t, 2> strides, int64_t count) {
            copy_run<Dst, Src>(pointers[0], strides[0], pointers[1], strides[1], count);
          });
    });
  });
}

void CpuBackend::fill(const Tensor& dst, double value) {
  dispatch_copyable(dst.dtype(), "fill", [&]<typename T>() {
    const T filler = dst.dtype() == DType::i4x2 ? T(packed_int4_filler(value)) : convert<T>(value);
    strided_for_each<1>(
        {&dst}, kElementwiseGrain,
        [filler](std::array<char*, 1> pointers, std::array<int64_t, 1> strides, int64_t count) {
          if (strides[0] == int64_t(sizeof(T))) {
            T* out = reinterpret_cast<T*>(pointers[0]);
            for (int64_t i = 0; i < count; ++i) out[i] = filler;
            return;
          }
          for (int64_t i = 0; i < count; ++i) {
            std::memcpy(pointers[0] + i * strides[0], &filler, sizeof(T));
          }
        });
  });
}

void CpuBackend::arange(const Tensor& dst, double start, double step) {
  dispatch_all(dst.dtype(), "arange", [&]<typename T>() {
    T* out = static_cast<T*>(dst.raw_data());
    parallel_for(0, dst.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = convert<T>(start + double(i) * step);
    });
  });
}

}  // namespace zt::cpu
