// Sequence parallelism on the tensor group (tensor_parallel/sequence_parallel.h): the two
// sequence operators and the dropout against their whole-tensor definitions, the bytes on the
// tensor axis against the formula (the same activation bytes as the all-reduce form, plus the
// all-reduce of the gradients of the parameters applied per token), the activation memory of a
// norm and a dropout 1/tp of the plain form's, and the run with dropout equal to the plain
// tensor-parallel run's. Training against one process: test_tensor_parallel_engine.cpp.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/communicator.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/layer_norm.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sequence_parallel.h"
#include "tensor_parallel/sequence_parallel_layers.h"
#include "tensor_parallel/vocab_parallel.h"
#include "tests/mpi/gpt_test_models.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::tensor_parallel {
namespace {

using testing::test_world;

bool sized_for_sequence_parallel() {
  return test_world().size() == 2 || test_world().size() == 4;
}

double max_difference(const Tensor& a, const Tensor& b) {
  return amax(abs(a.detach().to(DType::f64) - b.detach().to(DType::f64))).item();
}

Tensor own_tokens(const Tensor& whole, comm::Communicator& group) {
  const SequenceChunk own = sequence_chunk(whole.size(1), group);
  return whole.narrow(1, own.begin, own.length).contiguous();
}

models::GPTConfig tiny_gpt2(double dropout = 0.0) {
  models::GPTConfig config = testing::small_gpt2_config();
  config.dropout = dropout;
  return config;
}

struct Batch {
  Tensor tokens, targets;
};
Batch batch_of(int64_t b, int64_t s, int64_t vocab) {
  std::vector<int64_t> tokens, next;
  for (int64_t i = 0; i < b * s; ++i) {
    tokens.push_back((i * 3 + 1) % vocab);
    next.push_back((i * 5 + 2) % vocab);
  }
  return {from_int64(tokens, {b, s}), from_int64(next, {b * s})};
}

TEST_CASE("sequence_operators_gather_and_reduce_scatter_along_the_sequence_with_conjugate_grads") {
  comm::Communicator& world = test_world();
  if (!sized_for_sequence_parallel()) return;
  const int n = world.size(), rank = world.rank();
  manual_seed(3);
  Tensor whole = randn({2, 8, 3});  // the same on every rank
  // all-gather: each rank's chunk is its rows of `whole`; the gathered tensor is `whole`.
  Tensor chunk = own_tokens(whole, world).set_requires_grad(true);
  Tensor gathered = gather_from_sequence_parallel_region(chunk, world);
  CHECK(max_difference(gathered, whole) == 0.0);
  // Backward reduce-scatters: the gradient (rank + 1) * ones sums to n(n+1)/2 on every token.
  gathered.backward(full(gathered.sizes(), double(rank + 1)));
  CHECK(max_difference(chunk.grad(), full(chunk.sizes(), double(n * (n + 1) / 2))) == 0.0);

  // reduce-scatter: rank r contributes (r + 1) * whole; rank r keeps its tokens of the sum.
  Tensor partial = (whole * double(rank + 1)).set_requires_grad(true);
  Tensor summed = reduce_scatter_to_sequence_parallel_region(partial, world);
  CHECK(max_difference(summed, own_tokens(whole, world) * double(n * (n + 1) / 2)) < 1e-5);
  // Backward all-gathers: rank r's gradient on its tokens is r + 1.
  summed.backward(full(summed.sizes(), double(rank + 1)));
  std::vector<double> per_token;
  for (int r = 0; r < n; ++r)
    for (int64_t t = 0; t < 8 / n; ++t) per_token.push_back(double(r + 1));
  Tensor expected = from_values(per_token, {1, 8, 1}).expand({2, 8, 3});
  CHECK(max_difference(partial.grad(), expected) == 0.0);
}

TEST_CASE("sequence_parallel_dropout_drops_what_dropout_of_the_whole_tensor_drops") {
  comm::Communicator& world = test_world();
  if (!sized_for_sequence_parallel()) return;
  manual_seed(11);
  Tensor whole = randn({3, 8, 16});
  manual_seed(5);
  Tensor dropped = dropout(whole, 0.3, true);
  Tensor after_whole = rand({4});  // where the generator stands afterwards
  manual_seed(5);
  Tensor own = sequence_parallel_dropout(own_tokens(whole, world), 0.3, true, world);
  Tensor after_own = rand({4});
  CHECK(max_difference(own, own_tokens(dropped, world)) == 0.0);
  CHECK(max_difference(after_own, after_whole) == 0.0);
}

TEST_CASE("a_sequence_that_the_tensor_size_does_not_divide_is_one_line") {
  comm::Communicator& world = test_world();
  if (!sized_for_sequence_parallel()) return;
  TensorParallelGPT model(tiny_gpt2(), world, 1234, /*sequence_parallel=*/true);
  const int64_t odd = world.size() + 1;
  try {
    model(batch_of(2, odd, 64).tokens);
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()) ==
          fmt::format("sequence parallelism: the sequence length {} is not divisible by the "
                      "tensor-parallel size {}",
                      odd, world.size()));
  }
}

// One forward and backward of the split GPT-2: the communication counted on the tensor group.
struct StepTraffic {
  comm::CommStats forward, backward;
};
StepTraffic traffic_of_one_step(bool sequence_parallel) {
  comm::Communicator& world = test_world();
  const models::GPTConfig config = tiny_gpt2();
  TensorParallelGPT model(config, world, 1234, sequence_parallel);
  Batch batch = batch_of(2, config.block_size, config.vocab_size);
  world.reset_stats();
  Tensor logits = model(batch.tokens);
  Tensor loss =
      vocab_parallel_cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.targets, world);
  const comm::CommStats forward = world.stats();
  loss.backward();
  return {forward, comm::CommStats::difference(world.stats(), forward)};
}

TEST_CASE("tensor_axis_bytes_with_sequence_parallelism_equal_the_formula_and_the_all_reduce_form") {
  comm::Communicator& world = test_world();
  if (!sized_for_sequence_parallel()) return;
  const models::GPTConfig config = tiny_gpt2();
  const int n = world.size();
  const int64_t b = 2, s = config.block_size, h = config.n_embd, L = config.n_layer;
  const int64_t activation = b * s * h * 4, row = b * s * 4;  // f32
  using Kind = comm::CollectiveKind;
  auto ring = [&](Kind kind, int64_t bytes) { return comm::ring_payload_bytes(kind, bytes, n); };
  const StepTraffic split = traffic_of_one_step(true);
  // Forward: per layer two all-gathers (into c_attn, c_fc) and two reduce-scatters (out of the
  // c_proj's); the embedding's reduce-scatter and the head's all-gather; the loss's three
  // all-reduces of [b, s].
  CHECK(split.forward[Kind::all_gather].calls == 2 * L + 1);
  CHECK(split.forward[Kind::all_gather].payload_bytes ==
        (2 * L + 1) * ring(Kind::all_gather, activation));
  CHECK(split.forward[Kind::reduce_scatter].calls == 2 * L + 1);
  CHECK(split.forward[Kind::reduce_scatter].payload_bytes ==
        (2 * L + 1) * ring(Kind::reduce_scatter, activation));
  CHECK(split.forward[Kind::all_reduce].payload_bytes == 3 * ring(Kind::all_reduce, row));
  // Backward: the conjugates, and the all-reduce of the gradients of what runs on a rank's
  // tokens only: per layer ln_1 and ln_2 (weight, bias) and the two row-parallel biases, ln_f's
  // weight and bias (h each), and wpe (block_size x h).
  CHECK(split.backward[Kind::all_gather].payload_bytes ==
        (2 * L + 1) * ring(Kind::all_gather, activation));
  CHECK(split.backward[Kind::reduce_scatter].payload_bytes ==
        (2 * L + 1) * ring(Kind::reduce_scatter, activation));
  CHECK(split.backward[Kind::all_reduce].calls == 6 * L + 2 + 1);
  CHECK(split.backward[Kind::all_reduce].payload_bytes ==
        (6 * L + 2) * ring(Kind::all_reduce, h * 4) +
            ring(Kind::all_reduce, config.block_size * h * 4));
  // The activations move the same bytes as the all-reduce form, each way.
  const StepTraffic plain = traffic_of_one_step(false);
  const int64_t plain_forward = plain.forward[Kind::all_reduce].payload_bytes;
  CHECK(plain_forward ==
        (2 * L + 1) * ring(Kind::all_reduce, activation) + 3 * ring(Kind::all_reduce, row));
  CHECK(split.forward.total_payload_bytes() == plain_forward);
  CHECK(split.backward.total_payload_bytes() - split.backward[Kind::all_reduce].payload_bytes ==
        plain.backward.total_payload_bytes());
}

// Live bytes that `run` leaves allocated (its output and what its graph saves).
template <typename Run>
int64_t bytes_kept_by(Run run) {
  MemoryAccounting& accounting = cpu_allocator().accounting();
  const int64_t before = accounting.stats().total_live_bytes;
  Tensor kept = run();
  return accounting.stats().total_live_bytes - before;
}

TEST_CASE("a_norm_and_a_dropout_on_a_ranks_tokens_keep_1_over_tp_of_the_plain_forms_bytes") {
  comm::Communicator& world = test_world();
  if (!sized_for_sequence_parallel()) return;
  manual_seed(2);
  // 16 tokens per rank at tp 4: every saved tensor a multiple of the allocation alignment.
  Tensor whole = randn({4, 16, 32}).set_requires_grad(true);
  Tensor chunk = own_tokens(whole.detach(), world).set_requires_grad(true);
  nn::LayerNorm plain_norm(Shape{32});
  SequenceParallelLayerNorm split_norm(32, 1e-5, world);
  const int64_t plain_ln = bytes_kept_by([&] { return plain_norm(whole); });
  const int64_t split_ln = bytes_kept_by([&] { return split_norm(chunk); });
  const int64_t plain_dropout = bytes_kept_by([&] { return dropout(whole, 0.1, true); });
  const int64_t split_dropout =
      bytes_kept_by([&] { return sequence_parallel_dropout(chunk, 0.1, true, world); });
  MESSAGE("LayerNorm keeps ", plain_ln, " bytes whole, ", split_ln, " on 1/", world.size(),
          " of the tokens; dropout ", plain_dropout, " and ", split_dropout);
  CHECK(plain_ln > 0);
  CHECK(split_ln * world.size() == plain_ln);
  CHECK(plain_dropout > 0);
  CHECK(split_dropout * world.size() == plain_dropout);
}

// The peak bytes of one training forward and backward of the split GPT-2.
int64_t peak_of_one_step(bool sequence_parallel, double dropout_p) {
  comm::Communicator& world = test_world();
  models::GPTConfig config = tiny_gpt2(dropout_p);
  TensorParallelGPT model(config, world, 1234, sequence_parallel);
  Batch batch = batch_of(4, config.block_size, config.vocab_size);
  MemoryAccounting& accounting = cpu_allocator().accounting();
  accounting.reset_peak();
  const int64_t before = accounting.stats().total_live_bytes;
  Tensor logits = model(batch.tokens);
  vocab_parallel_cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.targets, world)
      .backward();
  return accounting.stats().total_peak_bytes - before;
}

TEST_CASE("a_training_step_with_sequence_parallelism_peaks_lower_than_the_plain_tensor_form") {
  if (!sized_for_sequence_parallel()) return;
  const int64_t plain = peak_of_one_step(false, 0.1), split = peak_of_one_step(true, 0.1);
  MESSAGE("peak bytes of a step at tp ", test_world().size(), ": ", plain, " plain, ", split,
          " sequence-parallel");
  CHECK(split < plain);
}

// Two training-mode forwards (the generator advancing between them) of the split GPT-2.
std::vector<double> losses_with_dropout(bool sequence_parallel) {
  comm::Communicator& world = test_world();
  const models::GPTConfig config = tiny_gpt2(0.2);
  manual_seed(17);
  TensorParallelGPT model(config, world, 1234, sequence_parallel);
  Batch batch = batch_of(2, config.block_size, config.vocab_size);
  std::vector<double> losses;
  for (int step = 0; step < 2; ++step) {
    Tensor logits = model(batch.tokens);
    losses.push_back(
        vocab_parallel_cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.targets, world)
            .item());
  }
  return losses;
}

TEST_CASE("with_dropout_the_sequence_parallel_run_equals_the_plain_tensor_parallel_run") {
  if (!sized_for_sequence_parallel()) return;
  const std::vector<double> plain = losses_with_dropout(false);
  const std::vector<double> split = losses_with_dropout(true);
  CHECK(plain[0] != plain[1]);  // the masks differ between the steps
  for (size_t step = 0; step < plain.size(); ++step) {
    CAPTURE(step);
    CHECK(std::abs(split[step] - plain[step]) < 1e-6);
  }
}

}  // namespace
}  // namespace zt::tensor_parallel
