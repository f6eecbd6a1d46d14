// Where the CPU block-sparse backward (cpu_block_sparse_attention_backward.cpp) sums one entry's
// key and value gradients: a ring of kRingBlocks key blocks in cache, one slot per block
// (slot = block % kRingBlocks), written out past the cache (write_scaled_rows) when another
// block needs the slot or the entry ends. A sliding window's block takes all its rows'
// contributions in the ring; summed in place in the gradients instead, its rows were read
// from memory before the first write (the lines were not in cache) and written back after: a
// third of the causal window modes' memory traffic at T = 8192, where they are bound by it.
// A block whose slot a block of the same chunk holds, or that was written out before, is
// summed in place. Each block's contributions are added in the same order wherever its sum
// lies, so the results are the same bits as summing in place.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cpu/cpu_block_sparse_tiles.h"

namespace zt::cpu::block_sparse_tiles {

template <typename C>
class KeyGradientRing {
 public:
  // Values the ring needs for blocks of `block` keys with key and value widths E and Ev.
  static int64_t ring_size(int64_t block, int64_t E, int64_t Ev) {
    return kRingBlocks * block * (E + Ev);
  }
  // grad_k [blocks * block, E] and grad_v [.., Ev]: one entry's gradients.
  KeyGradientRing(int64_t blocks, int64_t block, int64_t E, int64_t Ev, C* ring, C* grad_k,
                  C* grad_v)
      : block_(block),
        E_(E),
        Ev_(Ev),
        ring_(ring),
        grad_k_(grad_k),
        grad_v_(grad_v),
        state_(size_t(blocks), State::untouched),
        holder_(size_t(kRingBlocks), -1),
        claimed_(size_t(kRingBlocks), 0) {}

  // Where block `column`'s gradients are summed, and whether they hold a sum to add to.
  struct Target {
    C *grad_k, *grad_v;
    bool accumulate;
  };

  // Starts a chunk: the slots its blocks take stay theirs until the next call.
  void begin_chunk() { ++epoch_; }

  Target target(int64_t column) {
    const size_t slot = size_t(column % kRingBlocks);
    State& state = state_[size_t(column)];
    if (state == State::in_ring) {
      claimed_[slot] = epoch_;
      return {slot_keys(slot), slot_values(slot), true};
    }
    if (state == State::in_place) return {in_place_keys(column), in_place_values(column), true};
    if (holder_[slot] >= 0 && claimed_[slot] == epoch_) {
      state = State::in_place;
      return {in_place_keys(column), in_place_values(column), false};
    }
    if (holder_[slot] >= 0) write_out(slot);
    holder_[slot] = column;
    claimed_[slot] = epoch_;
    state = State::in_ring;
    return {slot_keys(slot), slot_values(slot), false};
  }

  // Writes out the blocks still in the ring and zeroes those no query visited.
  void finish() {
    for (size_t slot = 0; slot < holder_.size(); ++slot) {
      if (holder_[slot] >= 0) write_out(slot);
    }
    for (size_t column = 0; column < state_.size(); ++column) {
      if (state_[column] != State::untouched) continue;
      std::fill(in_place_keys(int64_t(column)), in_place_keys(int64_t(column)) + block_ * E_, C(0));
      std::fill(in_place_values(int64_t(column)), in_place_values(int64_t(column)) + block_ * Ev_,
                C(0));
    }
  }

 private:
  enum class State : uint8_t { untouched, in_ring, in_place };

  C* slot_keys(size_t slot) const { return ring_ + int64_t(slot) * block_ * (E_ + Ev_); }
  C* slot_values(size_t slot) const { return slot_keys(slot) + block_ * E_; }
  C* in_place_keys(int64_t column) const { return grad_k_ + column * block_ * E_; }
  C* in_place_values(int64_t column) const { return grad_v_ + column * block_ * Ev_; }

  void write_out(size_t slot) {
    const int64_t column = holder_[slot];
    write_scaled_rows(block_, E_, slot_keys(slot), E_, static_cast<const C*>(nullptr),
                      in_place_keys(column), E_);
    write_scaled_rows(block_, Ev_, slot_values(slot), Ev_, static_cast<const C*>(nullptr),
                      in_place_values(column), Ev_);
    state_[size_t(column)] = State::in_place;
    holder_[slot] = -1;
  }

  int64_t block_, E_, Ev_;
  C *ring_, *grad_k_, *grad_v_;
  std::vector<State> state_;       // per key block of the entry
  std::vector<int64_t> holder_;    // per slot: the block it holds, -1 for none
  std::vector<uint64_t> claimed_;  // per slot: the last chunk whose blocks use it
  uint64_t epoch_ = 0;
};

}  // namespace zt::cpu::block_sparse_tiles
