// PipelineModule: partitioning, building a stage's layers, running a chunk with activation
// checkpoints, and mapping its parameters to a whole model's names.
#include "pipeline/pipeline_module.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "autograd/checkpoint.h"
#include "autograd/grad_mode.h"
#include "core/ops/view.h"
#include "pipeline/partition.h"
#include "tensor_parallel/sharded_state.h"

namespace zt::pipeline {

std::vector<int> partition_specs(const LayerSpecs& specs, const PipelineModuleOptions& options) {
  std::vector<int64_t> parameter_counts;
  std::vector<std::string> type_names;
  for (const LayerSpec& spec : specs) {
    type_names.push_back(spec.type_name);
    parameter_counts.push_back(
        options.partition_method == "parameters" ? spec.build()->num_parameters() : 0);
  }
  if (options.chunks < 1)
    throw std::invalid_argument(
        fmt::format("pipeline: {} model chunks per stage: expected >= 1", options.chunks));
  return partition_layers(options.partition_method, parameter_counts, type_names,
                          options.stages * options.chunks);
}

PipelineModule::PipelineModule(const LayerSpecs& specs, const PipelineModuleOptions& options,
                               int stage)
    : specs_(specs), options_(options), stage_(stage) {
  if (stage < 0 || stage >= options.stages)
    throw std::invalid_argument(
        fmt::format("pipeline: stage {} is outside [0, {})", stage, options.stages));
  bounds_ = partition_specs(specs, options);
  for (int chunk = 0; chunk < options.chunks; ++chunk) {
    for (int index : chunk_layers(chunk)) {
      std::shared_ptr<nn::Module> built = specs[size_t(index)].build();
      if (!built)
        throw std::invalid_argument(
            fmt::format("pipeline: layer {} ({}): its factory built nothing", index,
                        specs[size_t(index)].type_name));
      layers_[index] = register_module(std::to_string(index), built);
    }
  }
}

std::string PipelineModule::extra_repr() const {
  std::vector<int> held;
  for (const auto& [index, layer] : layers_) held.push_back(index);
  return fmt::format("stage {} of {}, {} chunk(s), layers {}", stage_, options_.stages,
                     options_.chunks, fmt::join(held, ","));
}

std::vector<int> PipelineModule::chunk_layers(int chunk) const {
  const int virtual_stage = chunk * options_.stages + stage_;
  std::vector<int> indices;
  for (int index = bounds_[size_t(virtual_stage)]; index < bounds_[size_t(virtual_stage) + 1];
       ++index)
    indices.push_back(index);
  return indices;
}

std::shared_ptr<nn::Module> PipelineModule::layer(int index) const {
  auto found = layers_.find(index);
  if (found == layers_.end())
    throw std::out_of_range(fmt::format("pipeline: layer {} is not on stage {}", index, stage_));
  return found->second;
}

Tensor PipelineModule::forward_chunk(int chunk, const Tensor& input) {
  std::vector<int> indices = chunk_layers(chunk);
  const size_t interval = options_.activation_checkpoint_interval > 0
                              ? size_t(options_.activation_checkpoint_interval)
                              : indices.size();
  const bool checkpointing =
      options_.activation_checkpoint_interval > 0 && is_training() && is_grad_enabled();
  Tensor x = input;
  for (size_t start = 0; start < indices.size(); start += interval) {
    const size_t end = std::min(indices.size(), start + interval);
    // By value: a checkpoint runs it again in backward, after this call has returned.
    std::vector<std::shared_ptr<nn::Module>> segment;
    for (size_t i = start; i < end; ++i) segment.push_back(layers_.at(indices[i]));
    auto run = [segment](const Tensor& in) {
      Tensor h = in;
      for (const auto& layer : segment) h = (*layer)(h);
      return h;
    };
    x = checkpointing ? checkpoint(run, x) : run(x);
  }
  return x;
}

Tensor PipelineModule::forward(const Tensor&) {
  throw std::logic_error(
      "PipelineModule: a stage is run chunk by chunk by the pipeline engine (train_batch, "
      "eval_batch), not called as a module");
}

std::map<std::string, std::vector<Tensor>> PipelineModule::tied_parameters() const {
  std::map<std::string, std::vector<Tensor>> tied;
  for (const auto& [index, layer] : layers_) {
    const LayerSpec& spec = specs_[size_t(index)];
    if (spec.tied_key.empty()) continue;
    bool found = false;
    for (const auto& [name, parameter] : layer->named_parameters()) {
      if (name != spec.tied_parameter) continue;
      tied[spec.tied_key].push_back(parameter);
      found = true;
    }
    if (!found)
      throw std::invalid_argument(
          fmt::format("pipeline: layer {} ({}): no parameter named \"{}\" "
                      "to tie under key \"{}\"",
                      index, spec.type_name, spec.tied_parameter, spec.tied_key));
  }
  return tied;
}

NamedTensors PipelineModule::whole_model_names() const {
  NamedTensors named;
  for (const auto& [index, layer] : layers_) {
    const LayerSpec& spec = specs_[size_t(index)];
    for (const auto& [name, parameter] : layer->named_parameters())
      named.emplace_back(spec.state_prefix + name, parameter);
  }
  return named;
}

void PipelineModule::load_from_whole_model(const NamedTensors& whole, int tensor_rank,
                                           int tensor_ranks) {
  auto find = [&whole](const std::string& name) -> const Tensor* {
    for (const auto& [whole_name, tensor] : whole)
      if (whole_name == name) return &tensor;
    return nullptr;
  };
  for (const auto& [index, layer] : layers_) {
    const LayerSpec& spec = specs_[size_t(index)];
    const std::map<std::string, tensor_parallel::ShardLayout> layouts =
        tensor_parallel::shard_layouts(*layer);
    for (const auto& [name, parameter] : layer->named_parameters()) {
      const Tensor* source = find(spec.state_prefix + name);
      if (source == nullptr && !spec.tied_key.empty() && name == spec.tied_parameter) {
        for (const LayerSpec& owner : specs_)
          if (owner.tied_key == spec.tied_key && source == nullptr)
            source = find(owner.state_prefix + owner.tied_parameter);
      }
      if (source == nullptr)
        throw std::invalid_argument(
            fmt::format("pipeline: layer {} ({}): the whole model has no tensor {}", index,
                        spec.type_name, spec.state_prefix + name));
      const tensor_parallel::ShardLayout& layout = layouts.at(name);
      const bool replicated = layout.kind == tensor_parallel::ShardKind::replicated;
      Tensor piece;
      try {
        piece = tensor_parallel::cut_shard(*source, layout, tensor_rank, tensor_ranks);
      } catch (const std::exception&) {
        // A whole tensor that does not cut into tensor_ranks pieces: reported below.
      }
      if (!piece.defined() || piece.sizes() != parameter.sizes())
        throw std::invalid_argument(
            fmt::format("pipeline: layer {} ({}): {} is {} in the whole model{}, {} here", index,
                        spec.type_name, spec.state_prefix + name, shape_str(source->sizes()),
                        replicated ? "" : fmt::format(" (cut over {} tensor ranks)", tensor_ranks),
                        shape_str(parameter.sizes())));
      NoGradGuard no_grad;
      ops::copy_(parameter, piece);
    }
  }
}

NamedTensors PipelineModule::gather_whole_model(const NamedTensors& tensors,
                                                comm::Communicator& tensor_group) {
  NamedTensors whole;
  for (auto& [name, tensor] : tensor_parallel::gather_full(*this, tensors, tensor_group)) {
    // "7.attn.c_attn.weight": layer 7's attn.c_attn.weight, under its spec's prefix.
    const size_t dot = name.find('.');
    const int index = std::stoi(name.substr(0, dot));
    whole.emplace_back(specs_[size_t(index)].state_prefix + name.substr(dot + 1), tensor);
  }
  return whole;
}

}  // namespace zt::pipeline
