// Element types a Tensor can hold, with their sizes and names.
// Invariant: DType values index the tables in dtype.cpp; add a type at the end of the enum
// and to every table, never in the middle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zt {

// i8 and i4x2 hold quantized values (quant/): the tensor library stores, copies and moves
// them, and casts i8 to and from the other types, but has no arithmetic on them. An i4x2
// element is one byte packing two signed 4-bit values in [-8, 7], the first in the low nibble;
// a tensor of them has half as many elements in its last dim as it has values.
enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8, i8, i4x2 };

// The dtypes with arithmetic (every op table supports them).
inline constexpr DType kAllDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16,
                                       DType::i32, DType::i64, DType::u8};
// The storage-only dtypes of quantized values.
inline constexpr DType kQuantizedDTypes[] = {DType::i8, DType::i4x2};

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
bool is_floating(DType dtype);   // f32, f64, f16, bf16
bool is_half(DType dtype);       // f16, bf16: stored in 16 bits, computed in f32 on the CPU
bool is_quantized(DType dtype);  // i8, i4x2: storage only, no arithmetic
// The gap between 1 and the next value of a floating dtype (PyTorch's finfo(dtype).eps).
double dtype_epsilon(DType dtype);

}  // namespace zt
