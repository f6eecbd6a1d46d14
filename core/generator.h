// Random numbers from a counter-based generator (Philox 4x32-10).
// A Generator is a (seed, offset) pair. Drawing n numbers reserves the counter range
// [offset, offset + n) and advances the offset; element i of that draw is a pure function of
// (seed, offset + i), so results do not depend on thread count, chunking or device.
#pragma once

#include <cstdint>

namespace zt {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Returns the first counter of a fresh range of `count` and moves past it.
  uint64_t reserve(uint64_t count) {
    uint64_t start = offset_;
    offset_ += count;
    return start;
  }

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

// The process-wide generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);  // resets the default generator to (seed, 0)

}  // namespace zt
