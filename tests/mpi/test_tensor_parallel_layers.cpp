// The tensor-parallel layers against the unsplit ones on a tensor group of every rank of the
// world (2 and 4 ranks; one rank has nothing to split and 8 is covered by the same code), in
// f64: outputs and the gradients of inputs and of every shard within 1e-12 of the whole layer's
// (the shards' gradients compared against the matching block of the whole gradient).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "autograd/functions.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "models/gpt.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/parallel_linear.h"
#include "tensor_parallel/sharded_state.h"
#include "tensor_parallel/tp_region.h"
#include "tensor_parallel/vocab_parallel.h"
#include "tests/mpi/gpt_test_models.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::tensor_parallel {
namespace {

using testing::test_world;

constexpr double kTolerance = 1e-12;
const TensorOptions kF64{.dtype = DType::f64};

// The same values on every rank: drawn from a generator of a fixed seed.
Tensor drawn(const Shape& shape, uint64_t seed) {
  Generator generator(seed);
  return randn(shape, kF64, &generator);
}

double max_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return amax(abs(a.detach().to(DType::f64) - b.detach().to(DType::f64))).item();
}

bool splits_world() {
  return test_world().size() == 2 || test_world().size() == 4;
}

TEST_CASE("column_then_row_parallel_linear_equal_the_unsplit_pair_in_values_and_gradients") {
  if (!splits_world()) return;
  comm::Communicator& group = test_world();
  const int rank = group.rank(), ranks = group.size();
  const int64_t in = 6, hidden = 24, out = 5;
  Tensor w1 = drawn({in, hidden}, 1), b1 = drawn({hidden}, 2), w2 = drawn({hidden, out}, 3),
         b2 = drawn({out}, 4), x_values = drawn({3, 2, in}, 5),
         weights_of_y = drawn({3, 2, out}, 6);
  // The unsplit pair: y = gelu(x W1 + b1) W2 + b2 as leaves.
  Tensor x = x_values.clone().set_requires_grad(true);
  Tensor whole_w1 = w1.clone().set_requires_grad(true),
         whole_b1 = b1.clone().set_requires_grad(true);
  Tensor whole_w2 = w2.clone().set_requires_grad(true),
         whole_b2 = b2.clone().set_requires_grad(true);
  Tensor y = linear(gelu(linear(x, whole_w1.t(), whole_b1), true), whole_w2.t(), whole_b2);
  sum(y * weights_of_y).backward();

  ColumnParallelLinear column(in, hidden, group, {.bias = true});
  RowParallelLinear row(hidden, out, group, {.bias = true});
  column.to(DType::f64);
  row.to(DType::f64);
  ops::copy_(column.weight.detach(), column_shard(w1, 1, rank, ranks));
  ops::copy_(column.bias.detach(), column_shard(b1, 1, rank, ranks));
  ops::copy_(row.weight.detach(), row_shard(w2, rank, ranks));
  ops::copy_(row.bias.detach(), b2);
  Tensor x_split = x_values.clone().set_requires_grad(true);
  Tensor y_split = row(gelu(column(x_split), true));
  sum(y_split * weights_of_y).backward();

  CHECK(max_difference(y_split, y) < kTolerance);
  CHECK(max_difference(x_split.grad(), x.grad()) < kTolerance);
  CHECK(max_difference(column.weight.grad(), column_shard(whole_w1.grad(), 1, rank, ranks)) <
        kTolerance);
  CHECK(max_difference(column.bias.grad(), column_shard(whole_b1.grad(), 1, rank, ranks)) <
        kTolerance);
  CHECK(max_difference(row.weight.grad(), row_shard(whole_w2.grad(), rank, ranks)) < kTolerance);
  CHECK(max_difference(row.bias.grad(), whole_b2.grad()) < kTolerance);
}

TEST_CASE("gather_output_and_scattered_input_equal_the_unsplit_layers") {
  if (!splits_world()) return;
  comm::Communicator& group = test_world();
  const int rank = group.rank(), ranks = group.size();
  const int64_t in = 8, out = 12;
  Tensor w = drawn({in, out}, 11), x_values = drawn({4, in}, 12),
         weights_of_y = drawn({4, out}, 13);
  Tensor x = x_values.clone().set_requires_grad(true);
  Tensor whole_w = w.clone().set_requires_grad(true);
  Tensor y = linear(x, whole_w.t());
  sum(y * weights_of_y).backward();

  ColumnParallelLinear column(in, out, group, {.bias = false, .gather_output = true});
  column.to(DType::f64);
  ops::copy_(column.weight.detach(), column_shard(w, 1, rank, ranks));
  Tensor x_column = x_values.clone().set_requires_grad(true);
  Tensor y_column = column(x_column);
  sum(y_column * weights_of_y).backward();
  CHECK(max_difference(y_column, y) < kTolerance);
  CHECK(max_difference(x_column.grad(), x.grad()) < kTolerance);
  CHECK(max_difference(column.weight.grad(), column_shard(whole_w.grad(), 1, rank, ranks)) <
        kTolerance);

  RowParallelLinear row(in, out, group, {.bias = false, .input_is_parallel = false});
  row.to(DType::f64);
  ops::copy_(row.weight.detach(), row_shard(w, rank, ranks));
  Tensor x_row = x_values.clone().set_requires_grad(true);
  Tensor y_row = row(x_row);
  sum(y_row * weights_of_y).backward();
  CHECK(max_difference(y_row, y) < kTolerance);
  CHECK(max_difference(x_row.grad(), x.grad()) < kTolerance);
  CHECK(max_difference(row.weight.grad(), row_shard(whole_w.grad(), rank, ranks)) < kTolerance);
}

TEST_CASE("vocab_parallel_embedding_and_cross_entropy_equal_the_unsplit_ones") {
  if (!splits_world()) return;
  comm::Communicator& group = test_world();
  const int rank = group.rank(), ranks = group.size();
  const int64_t vocab = 16, dim = 3, rows = 10;
  Tensor table = drawn({vocab, dim}, 21);
  std::vector<int64_t> ids_values;
  for (int64_t i = 0; i < rows; ++i) ids_values.push_back((i * 7 + 3) % vocab);
  Tensor ids = from_int64(ids_values, {rows});

  Tensor whole_table = table.clone().set_requires_grad(true);
  Tensor looked_up = embedding(whole_table, ids);
  Tensor weights_of_rows = drawn({rows, dim}, 22);
  sum(looked_up * weights_of_rows).backward();
  VocabParallelEmbedding split_embedding(vocab, dim, group);
  split_embedding.to(DType::f64);
  ops::copy_(split_embedding.weight.detach(), row_shard(table, rank, ranks));
  Tensor split_rows = split_embedding(ids);
  sum(split_rows * weights_of_rows).backward();
  CHECK(max_difference(split_rows, looked_up) < kTolerance);
  CHECK(max_difference(split_embedding.weight.grad(), row_shard(whole_table.grad(), rank, ranks)) <
        kTolerance);

  // Logits of a wide range, so that the shift by the row max matters.
  Tensor logits_values = drawn({rows, vocab}, 23) * 30.0;
  Tensor logits = logits_values.clone().set_requires_grad(true);
  Tensor loss = cross_entropy(logits, ids);
  loss.backward();
  Tensor split_logits = column_shard(logits_values, 1, rank, ranks).clone().set_requires_grad(true);
  Tensor split_loss = vocab_parallel_cross_entropy(split_logits, ids, group);
  split_loss.backward();
  CHECK(std::abs(split_loss.item() - loss.item()) < kTolerance);
  CHECK(max_difference(split_logits.grad(), column_shard(logits.grad(), 1, rank, ranks)) <
        kTolerance);
}

TEST_CASE("tensor_parallel_gpt2_and_llama_sliced_from_a_full_gpt_give_its_loss_and_gradients") {
  if (!splits_world()) return;
  comm::Communicator& group = test_world();
  for (const models::GPTConfig& config :
       {testing::tiny_gpt2_config(), testing::tiny_llama_config()}) {
    CAPTURE(models::architecture_name(config.architecture));
    manual_seed(7);
    auto full_owner = std::make_shared<models::GPT>(config);
    auto split_owner = std::make_shared<TensorParallelGPT>(config, group);
    models::GPT& full = *full_owner;
    TensorParallelGPT& split = *split_owner;
    full.to(DType::f64);
    split.to(DType::f64);
    load_full_state(split, full.named_parameters(), group.rank(), group.size());

    std::vector<int64_t> tokens, next;
    for (int64_t i = 0; i < 2 * 8; ++i) {
      tokens.push_back((i * 5 + 1) % config.vocab_size);
      next.push_back((i * 11 + 2) % config.vocab_size);
    }
    Tensor idx = from_int64(tokens, {2, 8}), targets = from_int64(next, {16});
    Tensor full_logits = full(idx);
    Tensor loss = cross_entropy(full_logits.reshape({16, config.vocab_size}), targets);
    loss.backward();
    Tensor split_logits = split(idx);
    Tensor split_loss = vocab_parallel_cross_entropy(
        split_logits.reshape({16, config.vocab_size / group.size()}), targets, group);
    split_loss.backward();

    CHECK(std::abs(split_loss.item() - loss.item()) < kTolerance);
    CHECK(max_difference(all_gathered_last_dim(split_logits.detach(), group), full_logits) <
          kTolerance);
    std::map<std::string, Tensor> full_grads;
    for (const auto& [name, param] : full.named_parameters()) full_grads[name] = param.grad();
    NamedTensors gathered = gather_full_gradients(split, group);
    CHECK(gathered.size() == full_grads.size());
    for (const auto& [name, grad] : gathered) {
      CAPTURE(name);
      CHECK(max_difference(grad, full_grads.at(name)) < kTolerance);
    }
    // The weights gathered back are the full model's, bitwise.
    std::map<std::string, Tensor> full_weights;
    for (const auto& [name, param] : full.named_parameters()) full_weights[name] = param;
    for (const auto& [name, weight] : gather_full_state(split, group)) {
      CAPTURE(name);
      CHECK(max_difference(weight, full_weights.at(name)) == 0.0);
    }
  }
}

TEST_CASE("tensor_parallel_gpt_initialises_each_shard_from_the_whole_draw") {
  if (!splits_world()) return;
  comm::Communicator& group = test_world();
  manual_seed(3);
  auto split_owner = std::make_shared<TensorParallelGPT>(testing::tiny_gpt2_config(), group);
  TensorParallelGPT& split = *split_owner;
  // Every rank drew the same whole matrices and kept its block of them.
  NamedTensors whole = gather_full_state(split, group);
  const std::set<std::string> sharded = sharded_parameter_names(split);
  CHECK(sharded.count("wte.weight") == 1);
  CHECK(sharded.count("h.0.attn.c_attn.weight") == 1);
  CHECK(sharded.count("h.0.attn.c_attn.bias") == 1);
  CHECK(sharded.count("h.0.attn.c_proj.weight") == 1);
  CHECK(sharded.count("h.0.attn.c_proj.bias") == 0);
  CHECK(sharded.count("h.0.ln_1.weight") == 0);
  CHECK(sharded.count("wpe.weight") == 0);
  CHECK(sharded.count("lm_head.weight") == 1);  // wte's shard under the head's name
  // wte (twice), and per layer: c_attn weight and bias, c_proj weight, c_fc weight and bias,
  // c_proj weight.
  CHECK(sharded.size() == 2 + 2 * 6);
  for (const auto& [name, weight] : whole) {
    if (name == "wte.weight") {
      CHECK(max_difference(row_shard(weight, group.rank(), group.size()),
                           split.named_parameters()[0].second) == 0.0);
    }
  }
}

TEST_CASE("a_tensor_parallel_size_that_does_not_divide_the_model_is_one_line_naming_the_sizes") {
  auto error_of = [](const models::GPTConfig& config, int tp) -> std::string {
    try {
      check_tensor_parallel_config(config, tp);
    } catch (const std::invalid_argument& error) {
      return error.what();
    }
    return "(no error)";
  };
  models::GPTConfig config = testing::tiny_gpt2_config();
  CHECK(error_of(config, 4) == "(no error)");
  CHECK(error_of(config, 3) ==
        "tensor parallelism: n_head 4 is not divisible by the tensor-parallel size 3");
  config.n_head = 8;
  config.vocab_size = 36;
  CHECK(error_of(config, 8) ==
        "tensor parallelism: vocab_size 36 is not divisible by the tensor-parallel size 8");
  models::GPTConfig llama = testing::tiny_llama_config();
  CHECK(error_of(llama, 4) == "(no error)");
  CHECK(error_of(llama, 8) ==
        "tensor parallelism: n_kv_head 4 is not divisible by the tensor-parallel size 8");
}

}  // namespace
}  // namespace zt::tensor_parallel
