// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// mapping from its output words to the uniform and normal values of ZeroTrain's random kernels.
// Every backend must produce bit-identical draws, so this is the whole contract (CUDA includes
// this header; the functions are ZT_HOST_DEVICE):
//
// - Element i of a draw with (seed, offset) uses one Philox block: counter = offset + i as a
//   64-bit value split into words {low, high, 0, 0}; key = seed split into words {low, high}.
// - Uniform, 32-bit float and 16-bit dtypes: u = (word0 >> 8) * 2^-24 in [0, 1) (24 bits), then
//   value = low + (high - low) * u computed in double, then rounded to the dtype (16-bit
//   dtypes through float).
// - Uniform, f64: u = ((word0 << 21) ^ (word1 >> 11) as a 53-bit integer) * 2^-53 in [0, 1).
// - Normal (Box-Muller on the same element's block), computed in double:
//   f32/16-bit: u1 = ((word0 >> 8) + 1) * 2^-24 in (0, 1], u2 = (word1 >> 8) * 2^-24;
//   f64: u1 = (53 bits of words 0,1 + 1) * 2^-53, u2 = 53 bits of words 2,3 * 2^-53;
//   z = sqrt(-2 ln u1) * cos(2 pi u2), value = mean + stddev * z rounded to the dtype as above.
// - Dropout keeps element i when its uniform u (the f64 draw for f64 tensors, else the 24-bit
//   draw) is >= p.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define ZT_HOST_DEVICE __host__ __device__
#else
#define ZT_HOST_DEVICE
#endif

namespace zt::philox {

struct Block {
  uint32_t word[4];
};

inline constexpr uint32_t kMultiplier0 = 0xD2511F53u;
inline constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
inline constexpr uint32_t kKeyBump0 = 0x9E3779B9u;  // golden ratio
inline constexpr uint32_t kKeyBump1 = 0xBB67AE85u;  // sqrt(3) - 1
inline constexpr int kRounds = 10;

// Philox 4x32 with 10 rounds on counter `counter` and key `key`.
ZT_HOST_DEVICE inline Block philox4x32_10(Block counter, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < kRounds; ++round) {
    if (round > 0) {
      key0 += kKeyBump0;
      key1 += kKeyBump1;
    }
    uint64_t product0 = uint64_t(kMultiplier0) * counter.word[0];
    uint64_t product1 = uint64_t(kMultiplier1) * counter.word[2];
    uint32_t high0 = uint32_t(product0 >> 32), low0 = uint32_t(product0);
    uint32_t high1 = uint32_t(product1 >> 32), low1 = uint32_t(product1);
    counter = Block{{high1 ^ counter.word[1] ^ key0, low1, high0 ^ counter.word[3] ^ key1, low0}};
  }
  return counter;
}

// The block of element `index` of a draw made at (seed, offset).
ZT_HOST_DEVICE inline Block block_for(uint64_t seed, uint64_t offset, uint64_t index) {
  uint64_t counter = offset + index;
  Block input{{uint32_t(counter), uint32_t(counter >> 32), 0u, 0u}};
  return philox4x32_10(input, uint32_t(seed), uint32_t(seed >> 32));
}

// [0, 1) with 24 random bits: exact in float.
ZT_HOST_DEVICE inline float uniform_24bit(uint32_t word) {
  return float(word >> 8) * (1.0f / 16777216.0f);
}

// [0, 1) with 53 random bits: exact in double.
ZT_HOST_DEVICE inline double uniform_53bit(uint32_t high_word, uint32_t low_word) {
  uint64_t bits = (uint64_t(high_word) << 21) ^ uint64_t(low_word >> 11);
  return double(bits) * (1.0 / 9007199254740992.0);
}

// Standard normal for f32 and 16-bit dtypes: Box-Muller on words 0 and 1.
ZT_HOST_DEVICE inline double normal_from_24bit(const Block& block) {
  double u1 = double((block.word[0] >> 8) + 1u) * (1.0 / 16777216.0);  // (0, 1]: log finite
  double u2 = double(block.word[1] >> 8) * (1.0 / 16777216.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Standard normal for f64: Box-Muller on words 0,1 (u1) and 2,3 (u2).
ZT_HOST_DEVICE inline double normal_from_53bit(const Block& block) {
  uint64_t bits1 = (uint64_t(block.word[0]) << 21) ^ uint64_t(block.word[1] >> 11);
  double u1 = double(bits1 + 1u) * (1.0 / 9007199254740992.0);  // (0, 1]
  double u2 = uniform_53bit(block.word[2], block.word[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace zt::philox
