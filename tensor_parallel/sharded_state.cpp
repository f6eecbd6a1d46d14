// Slicing whole tensors into shards and gathering shards into whole tensors, by layout.
#include "tensor_parallel/sharded_state.h"

#include <fmt/format.h>

#include <map>
#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/parallel_linear.h"
#include "tensor_parallel/tp_region.h"
#include "tensor_parallel/vocab_parallel.h"

namespace zt::tensor_parallel {

namespace {

// The ranks' column shards side by side [..., ranks * w] back into the whole matrix: rank r's
// piece of fused block b goes to block b's position r.
Tensor unshard_columns(const Tensor& by_rank, int64_t fused_blocks, int ranks) {
  const int64_t width = by_rank.size(-1) / ranks, piece = width / fused_blocks;
  std::vector<Tensor> pieces;
  for (int64_t b = 0; b < fused_blocks; ++b)
    for (int r = 0; r < ranks; ++r)
      pieces.push_back(by_rank.narrow(by_rank.dim() - 1, r * width + b * piece, piece));
  return cat(pieces, by_rank.dim() - 1).contiguous();
}

Tensor gathered_rows(const Tensor& shard, comm::Communicator& group) {
  Shape whole = shard.sizes();
  whole[0] *= group.size();
  Tensor out = empty(whole, options_of(shard));
  group.all_gather(shard.contiguous(), out);
  return out;
}

}  // namespace

Tensor cut_shard(const Tensor& full, const ShardLayout& layout, int rank, int ranks) {
  switch (layout.kind) {
    case ShardKind::columns:
      return column_shard(full, layout.fused_blocks, rank, ranks);
    case ShardKind::rows:
      return row_shard(full, rank, ranks);
    case ShardKind::replicated:
      break;
  }
  return full;
}

Tensor join_shards(const std::map<int, Tensor>& pieces, const ShardLayout& layout, int ranks) {
  const Tensor& any = pieces.begin()->second;
  if (layout.kind == ShardKind::replicated) return any;
  const int64_t dim = layout.kind == ShardKind::rows ? 0 : any.dim() - 1;
  Shape shape = any.sizes();
  shape[size_t(dim)] *= ranks;
  Tensor whole = zeros(shape, options_of(any));
  // Rows: one block; columns: rank r's piece b is the r-th piece of block b.
  const int64_t blocks = layout.kind == ShardKind::rows ? 1 : layout.fused_blocks;
  const int64_t piece = any.size(dim) / blocks;
  autograd::NoGradGuard no_grad;
  for (const auto& [rank, shard] : pieces)
    for (int64_t block = 0; block < blocks; ++block)
      ops::copy_(ops::narrow(whole, dim, (block * ranks + rank) * piece, piece),
                 ops::narrow(shard, dim, block * piece, piece));
  return whole;
}

ShardLayout layout_in(nn::Module& module) {
  // In the [out, in] layout the output features are rows and the input features columns.
  if (auto* column = dynamic_cast<ColumnParallelLinear*>(&module)) {
    return column->weight_out_in() ? ShardLayout{ShardKind::rows, 1}
                                   : ShardLayout{ShardKind::columns, column->fused_blocks()};
  }
  if (auto* row = dynamic_cast<RowParallelLinear*>(&module)) {
    return row->weight_out_in() ? ShardLayout{ShardKind::columns, 1}
                                : ShardLayout{ShardKind::rows, 1};
  }
  if (dynamic_cast<VocabParallelEmbedding*>(&module) != nullptr ||
      dynamic_cast<VocabParallelHead*>(&module) != nullptr)
    return {ShardKind::rows, 1};
  return {};
}

std::map<std::string, ShardLayout> shard_layouts(nn::Module& model) {
  // Every name a parameter has (a tied one under each module that registered it), as the
  // engine's consolidated state lists them. A row-parallel layer's bias is replicated.
  std::map<std::string, ShardLayout> layouts;
  for (const auto& [prefix, module] : model.named_modules()) {
    const std::string at = prefix.empty() ? "" : prefix + ".";
    const ShardLayout layout = layout_in(*module);
    const bool row_parallel = dynamic_cast<RowParallelLinear*>(module.get()) != nullptr;
    auto* column = dynamic_cast<ColumnParallelLinear*>(module.get());
    for (const auto& [name, param] : module->named_parameters(/*recurse=*/false)) {
      ShardLayout own = layout;
      if (row_parallel && name == "bias") own = ShardLayout{};
      // A column-parallel bias is cut like the output features: the last (only) dim.
      if (column != nullptr && name == "bias") own = {ShardKind::columns, column->fused_blocks()};
      layouts[at + name] = own;
    }
  }
  return layouts;
}

std::set<std::string> sharded_parameter_names(nn::Module& model) {
  std::set<std::string> names;
  for (const auto& [name, layout] : shard_layouts(model))
    if (layout.kind != ShardKind::replicated) names.insert(name);
  return names;
}

void load_full_state(nn::Module& model, const NamedTensors& full, int rank, int ranks) {
  std::map<std::string, Tensor> by_name(full.begin(), full.end());
  const std::map<std::string, ShardLayout> layouts = shard_layouts(model);
  autograd::NoGradGuard no_grad;
  for (const auto& [name, param] : model.named_parameters()) {
    auto found = by_name.find(name);
    if (found == by_name.end()) {
      throw std::invalid_argument(
          fmt::format("load_full_state: the whole state has no tensor '{}'", name));
    }
    Tensor piece = cut_shard(found->second, layouts.at(name), rank, ranks);
    if (piece.sizes() != param.sizes()) {
      throw std::invalid_argument(fmt::format(
          "load_full_state: '{}' of shape {} cuts into {} for tensor rank {} of {}, the "
          "parameter is {}",
          name, shape_str(found->second.sizes()), shape_str(piece.sizes()), rank, ranks,
          shape_str(param.sizes())));
    }
    ops::copy_(param, piece.to(param.dtype()).to(param.device()));
  }
}

NamedTensors gather_full(nn::Module& model, const NamedTensors& shards, comm::Communicator& group) {
  const std::map<std::string, ShardLayout> layouts = shard_layouts(model);
  autograd::NoGradGuard no_grad;
  NamedTensors whole;
  for (const auto& [name, shard] : shards) {
    auto layout = layouts.find(name);
    if (layout == layouts.end()) {
      throw std::invalid_argument(
          fmt::format("gather_full: '{}' is not a parameter of the model", name));
    }
    Tensor host = shard.detach().to(Device::cpu()).contiguous();
    switch (layout->second.kind) {
      case ShardKind::replicated:
        whole.emplace_back(name, host.clone());
        break;
      case ShardKind::rows:
        whole.emplace_back(name, gathered_rows(host, group));
        break;
      case ShardKind::columns:
        whole.emplace_back(name, unshard_columns(all_gathered_last_dim(host, group),
                                                 layout->second.fused_blocks, group.size()));
        break;
    }
  }
  return whole;
}

NamedTensors gather_full_state(nn::Module& model, comm::Communicator& group) {
  return gather_full(model, model.named_parameters(), group);
}

NamedTensors gather_full_gradients(nn::Module& model, comm::Communicator& group) {
  NamedTensors grads;
  for (const auto& [name, param] : model.named_parameters())
    grads.emplace_back(name, param.grad().defined() ? param.grad() : zeros_like(param.detach()));
  return gather_full(model, grads, group);
}

}  // namespace zt::tensor_parallel
