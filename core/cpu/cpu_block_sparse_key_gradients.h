// Where the CPU block-sparse backward (cpu_block_sparse_attention_backward.cpp) sums one entry's
// key and value gradients: a ring of kRingBlocks key blocks in cache (RingSlots), written out past
// the cache (write_scaled_rows) when another block needs the slot or the entry ends. A sliding
// window's block takes all its rows' contributions in the ring; summed in place in the gradients
// instead, its rows were read from memory before the first write (the lines were not in cache) and
// written back after: a third of the causal window modes' memory traffic at T = 8192, where they
// are bound by it. A block whose slot a block of the same chunk holds, or that was written out
// before, is summed in place. Each block's contributions are added in the same order wherever its
// sum lies, so the results are the same bits as summing in place.
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
  // For entries of `blocks` key blocks, summed in `ring` (ring_size(..) values).
  KeyGradientRing(int64_t blocks, int64_t block, int64_t E, int64_t Ev, C* ring)
      : blocks_(blocks), block_(block), E_(E), Ev_(Ev), ring_(ring) {}

  // The next entry's gradients: grad_k [blocks * block, E] and grad_v [.., Ev].
  void start(C* grad_k, C* grad_v) {
    grad_k_ = grad_k;
    grad_v_ = grad_v;
    state_.assign(size_t(blocks_), State::untouched);
    slots_.reset();
  }

  // Where block `column`'s gradients are summed, and whether they hold a sum to add to.
  struct Target {
    C *grad_k, *grad_v;
    bool accumulate;
  };

  // Starts a chunk: the slots its blocks take stay theirs until the next call.
  void begin_chunk() { slots_.begin_chunk(); }

  Target target(int64_t column) {
    State& state = state_[size_t(column)];
    if (state == State::in_place) return {in_place_keys(column), in_place_values(column), true};
    const RingSlots::Claim claim = slots_.claim(column);
    if (claim.kind == RingSlots::Kind::held) {
      return {slot_keys(claim.slot), slot_values(claim.slot), true};
    }
    if (claim.kind == RingSlots::Kind::busy) {
      state = State::in_place;
      return {in_place_keys(column), in_place_values(column), false};
    }
    if (claim.evicted >= 0) write_out(claim.slot, claim.evicted);
    state = State::in_ring;
    return {slot_keys(claim.slot), slot_values(claim.slot), false};
  }

  // Writes out the blocks still in the ring and zeroes those no query visited.
  void finish() {
    slots_.for_each_held([&](size_t slot, int64_t column) { write_out(slot, column); });
    slots_.reset();
    for (int64_t column = 0; column < blocks_; ++column) {
      if (state_[size_t(column)] != State::untouched) continue;
      std::fill(in_place_keys(column), in_place_keys(column) + block_ * E_, C(0));
      std::fill(in_place_values(column), in_place_values(column) + block_ * Ev_, C(0));
    }
  }

 private:
  enum class State : uint8_t { untouched, in_ring, in_place };

  C* slot_keys(size_t slot) const { return ring_ + int64_t(slot) * block_ * (E_ + Ev_); }
  C* slot_values(size_t slot) const { return slot_keys(slot) + block_ * E_; }
  C* in_place_keys(int64_t column) const { return grad_k_ + column * block_ * E_; }
  C* in_place_values(int64_t column) const { return grad_v_ + column * block_ * Ev_; }

  // Block `column`'s sums, in `slot`, to its rows of the gradients.
  void write_out(size_t slot, int64_t column) {
    write_scaled_rows(block_, E_, slot_keys(slot), E_, static_cast<const C*>(nullptr),
                      in_place_keys(column), E_);
    write_scaled_rows(block_, Ev_, slot_values(slot), Ev_, static_cast<const C*>(nullptr),
                      in_place_values(column), Ev_);
    state_[size_t(column)] = State::in_place;
  }

  int64_t blocks_, block_, E_, Ev_;
  C *ring_, *grad_k_ = nullptr, *grad_v_ = nullptr;
  std::vector<State> state_;  // per key block of the entry
  RingSlots slots_;
};

}  // namespace zt::cpu::block_sparse_tiles
