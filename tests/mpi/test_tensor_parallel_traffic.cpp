// The tensor axis's traffic per training step of the tensor-parallel GPT-2, counted by the
// tensor group's communicator, against the formula: per layer two all-reduces of the
// [b, s, h] activations forward (after the attention's and the MLP's row-parallel layer) and
// two backward (into their column-parallel layers); outside the layers, one of [b, s, h] each
// way for the vocabulary-parallel embedding (forward) and the tied head (backward), and three of
// [b, s] forward for the cross entropy (row max, sum of exponentials, target logit).
#include <doctest/doctest.h>

#include <vector>

#include "autograd/functions.h"
#include "comm/communicator.h"
#include "core/factory.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/vocab_parallel.h"
#include "tests/mpi/gpt_test_models.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::tensor_parallel {
namespace {

using testing::test_world;

TEST_CASE("tensor_axis_bytes_per_step_equal_two_all_reduces_of_bsh_per_layer_each_way") {
  comm::Communicator& world = test_world();
  if (world.size() != 2 && world.size() != 4) return;
  const models::GPTConfig config = testing::small_gpt2_config();
  const int64_t b = 2, s = 16, h = config.n_embd, L = config.n_layer;
  TensorParallelGPT model(config, world);
  std::vector<int64_t> tokens, next;
  for (int64_t i = 0; i < b * s; ++i) {
    tokens.push_back((i * 3 + 1) % config.vocab_size);
    next.push_back((i * 5 + 2) % config.vocab_size);
  }
  world.reset_stats();
  Tensor logits = model(from_int64(tokens, {b, s}));
  Tensor loss =
      vocab_parallel_cross_entropy(logits.reshape({b * s, -1}), from_int64(next, {b * s}), world);
  const comm::CommStats forward = world.stats();
  loss.backward();
  const comm::CommStats backward = comm::CommStats::difference(world.stats(), forward);

  const int n = world.size();
  const int64_t activation_bytes = b * s * h * 4, row_bytes = b * s * 4;  // f32
  auto ring = [&](int64_t bytes) {
    return comm::ring_payload_bytes(comm::CollectiveKind::all_reduce, bytes, n);
  };
  const comm::CollectiveCounter& forward_reduce = forward[comm::CollectiveKind::all_reduce];
  CHECK(forward_reduce.calls == 2 * L + 1 + 3);
  CHECK(forward_reduce.payload_bytes == (2 * L + 1) * ring(activation_bytes) + 3 * ring(row_bytes));
  const comm::CollectiveCounter& backward_reduce = backward[comm::CollectiveKind::all_reduce];
  CHECK(backward_reduce.calls == 2 * L + 1);
  CHECK(backward_reduce.payload_bytes == (2 * L + 1) * ring(activation_bytes));
  // Nothing else travels on the tensor axis.
  CHECK(forward.total_payload_bytes() == forward_reduce.payload_bytes);
  CHECK(backward.total_payload_bytes() == backward_reduce.payload_bytes);
}

}  // namespace
}  // namespace zt::tensor_parallel
