// PipelineEngine: building a stage (partition, probe, tied copies, ZeRO engine) and executing
// its instruction lists.
#include "pipeline/pipeline_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>
#include <stdexcept>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "pipeline/instruction_trace.h"
#include "pipeline/layer_checkpoint.h"
#include "pipeline/partitioned_transfer.h"
#include "pipeline/stage_transfer.h"

namespace zt::pipeline {

namespace {

using Kind = InstructionKind;
using Clock = std::chrono::steady_clock;
using PassKey = std::pair<int, int>;  // micro-batch, chunk

// Tags name the receiving chunk (a chunk of one stage feeds another chunk of the next stage).
int activation_tag(int chunk) {
  return chunk;
}
int gradient_tag(int chunk) {
  return 1024 + chunk;
}

}  // namespace

struct PipelineEngine::Buffers {
  std::map<int, MicroBatch> loaded;  // by micro-batch
  std::map<PassKey, Tensor> inputs, outputs, received_grads;
  PendingSends pending;  // sends in flight
  // Receives posted ahead of their instruction: activations from the batch's start (the
  // header, then the payload once the header is in), gradients once the forward has made the
  // output they belong to. RecvActivation and RecvGrad wait for them.
  std::map<PassKey, PostedTensorReceive> posted_activations;
  std::map<PassKey, std::unique_ptr<comm::Work>> posted_grad_works;
  std::map<PassKey, Tensor> posted_grads;
  double loss_sum = 0.0;
};

PipelineEngine::PipelineEngine(const dist::Config& config, const LayerSpecs& specs,
                               LossFunction loss, const Tensor& probe_input,
                               comm::ProcessGrid& grid, const NamedTensors* whole_model_weights)
    : grid_(grid), loss_(std::move(loss)) {
  shape_ = {.stages = grid.shape().pipeline,
            .micro_batches = int(config.gradient_accumulation_steps),
            .chunks = int(config.pipeline.virtual_stages)};
  stage_ = grid.coordinates().pipeline;
  check_config(config);
  shape_.validate();
  module_ = std::make_shared<PipelineModule>(
      specs,
      PipelineModuleOptions{
          .stages = shape_.stages,
          .chunks = shape_.chunks,
          .partition_method = config.pipeline.partition_method,
          .activation_checkpoint_interval = config.pipeline.activation_checkpoint_interval},
      stage_);
  if (whole_model_weights != nullptr)
    module_->load_from_whole_model(*whole_model_weights, grid.coordinates().tensor,
                                   grid.shape().tensor);
  const bool outputs_split = std::any_of(specs.begin(), specs.end(), [](const LayerSpec& spec) {
    return spec.output_split_over_tensor_group;
  });
  if (grid.shape().tensor > 1 && !outputs_split) {
    activation_parts_ = config.pipeline.pipe_partitioned ? grid.shape().tensor : 1;
    grad_parts_ = config.pipeline.grad_partitioned ? grid.shape().tensor : 1;
  }
  control_ = grid.pipeline_group().host_communicator().split(0, stage_);
  data_control_ = grid.data_group().host_communicator().split(0, grid.coordinates().data);
  probe_shapes(probe_input);
  make_tied_groups();
  synchronize_tied_parameters();
  agree_or_throw(trace_folder_problem(config, grid.world().rank()), "opening the trace folder");
  // The engine sees one backward per batch (the accumulated gradients), so its own
  // accumulation is 1; the pipeline reports the loss itself.
  dist::Config stage_config = start_pipeline_trace(config, grid.world());
  stage_config.gradient_accumulation_steps = 1;
  stage_config.train_micro_batch_size_per_gpu *= shape_.micro_batches;
  stage_config.steps_per_print = 0;
  const std::set<std::string> tied_copies = tied_copies_counted_elsewhere();
  engine_ = std::make_unique<dist::Engine>(stage_config, module_, grid.data_group(),
                                           dist::ParamGroupSpecs{}, &grid.tensor_group());
  engine_->combine_over_pipeline(grid.pipeline_group(), tied_copies);
  // Engine checkpoints: files named by the stage's model-parallel rank, the weights in layer
  // files, and save and load agreed over the pipeline axis too.
  std::vector<comm::Communicator*> axes = engine_->model_parallel_axes();
  axes.push_back(control_.get());
  dist::ModelParallelPlacement placement =
      stage_placement(*module_, engine_->model_parallel_placement());
  engine_->set_model_parallel_placement(
      placement, axes, [this, tensor_rank = placement.tensor_rank](const std::string& staging) {
        save_layer_states(*module_, staging, tensor_rank);
      });
}

// After reduce_tied_gradients every copy of a tied parameter holds the same gradient: the
// norm counts the first copy on the first stage of its tied group, and none of the others.
std::set<std::string> PipelineEngine::tied_copies_counted_elsewhere() const {
  std::set<std::string> names;
  const NamedTensors named = module_->named_parameters();
  for (const auto& [key, copies] : module_->tied_parameters()) {
    const bool counted_here = tied_groups_.at(key)->rank() == 0;
    for (size_t i = counted_here ? 1 : 0; i < copies.size(); ++i)
      for (const auto& [name, param] : named)
        if (param.is_same(copies[i])) names.insert(name);
  }
  return names;
}

PipelineEngine::~PipelineEngine() {
  finish_pipeline_trace();
}

void PipelineEngine::check_config(const dist::Config& config) const {
  const std::string& source = config.source_name;
  if (config.pipeline.stages != 0 && config.pipeline.stages != shape_.stages)
    throw std::invalid_argument(fmt::format(
        "{}: pipeline.stages: {}, but the grid has {} pipeline stages (world {} = data {} x "
        "pipeline {} x tensor {})",
        source, config.pipeline.stages, shape_.stages, grid_.world().size(), grid_.shape().data,
        grid_.shape().pipeline, grid_.shape().tensor));
  if (config.tensor_parallel_size != grid_.shape().tensor)
    throw std::invalid_argument(fmt::format(
        "{}: tensor_parallel.autotp_size: {}, but the grid has {} tensor ranks (world {} = data "
        "{} x pipeline {} x tensor {})",
        source, config.tensor_parallel_size, grid_.shape().tensor, grid_.world().size(),
        grid_.shape().data, grid_.shape().pipeline, grid_.shape().tensor));
  if (config.zero_optimization.stage > 2)
    throw std::invalid_argument(fmt::format(
        "{}: zero_optimization.stage: 3 partitions the parameters, which pipeline stages do not "
        "gather; use stage 0, 1 or 2 with pipeline parallelism",
        source));
}

void PipelineEngine::make_tied_groups() {
  // Every stage of the pipeline group splits once per key, in key order: the stages holding
  // the key form its group (ordered by stage), each other stage a group of its own.
  std::map<std::string, bool> held;
  const std::vector<int>& bounds = module_->bounds();
  for (size_t index = 0; index < module_->specs().size(); ++index) {
    const std::string& key = module_->specs()[index].tied_key;
    if (key.empty()) continue;
    bool here = false;
    for (int chunk = 0; chunk < shape_.chunks; ++chunk) {
      int vs = virtual_stage_of(shape_, stage_, chunk);
      here = here || (int(index) >= bounds[size_t(vs)] && int(index) < bounds[size_t(vs) + 1]);
    }
    held[key] = held[key] || here;
  }
  for (const auto& [key, here] : held)
    tied_groups_[key] = control_->split(here ? 0 : 1 + stage_, stage_);
}

void PipelineEngine::synchronize_tied_parameters() {
  std::map<std::string, std::vector<Tensor>> tied = module_->tied_parameters();
  for (const auto& [key, group] : tied_groups_) {
    auto copies = tied.find(key);
    if (copies == tied.end()) continue;
    NoGradGuard no_grad;
    std::vector<Tensor>& local = copies->second;
    if (group->size() > 1) group->broadcast(local[0], 0);
    for (size_t i = 1; i < local.size(); ++i) ops::copy_(local[i], local[0]);
  }
}

void PipelineEngine::reduce_tied_gradients() {
  for (auto& [key, copies] : module_->tied_parameters()) {
    Tensor total = zeros(copies[0].sizes(), {.dtype = copies[0].dtype(), .tag = MemoryTag::grad});
    for (const Tensor& copy : copies)
      if (copy.grad().defined()) ops::add_(total, copy.grad());
    comm::Communicator& group = *tied_groups_.at(key);
    if (group.size() > 1) group.all_reduce(total);
    // Into the gradient tensors themselves: the ZeRO engine's may be views of its flat buffers.
    for (const Tensor& copy : copies) {
      if (copy.grad().defined())
        ops::copy_(copy.grad(), total);
      else
        copy.set_grad(total.clone());
    }
  }
}

void PipelineEngine::save_layer_checkpoint(const std::string& dir) {
  std::string problem;
  if (grid_.coordinates().data == 0) {
    try {
      save_layer_states(*module_, dir);
    } catch (const std::exception& error) {
      problem = error.what();
    }
  }
  agree_or_throw(problem, "saving the layer checkpoint");
}

void PipelineEngine::load_layer_checkpoint(const std::string& dir) {
  std::string problem;
  try {
    load_layer_states(*module_, dir);
  } catch (const std::exception& error) {
    problem = error.what();
  }
  agree_or_throw(problem, "loading the layer checkpoint");
}

// Every rank learns whether any failed, so none goes on alone into the next collective.
void PipelineEngine::agree_or_throw(const std::string& problem, const std::string& what) {
  Tensor failed = full({1}, problem.empty() ? 0.0 : 1.0, {.dtype = DType::f64});
  grid_.world().host_communicator().all_reduce(failed, comm::ReduceOperation::max);
  if (failed.item() == 0.0) return;
  throw std::runtime_error(
      problem.empty() ? fmt::format("pipeline: {} failed on another rank", what) : problem);
}

NamedTensors PipelineEngine::whole_model_weights() {
  return module_->gather_whole_model(module_->named_parameters(), grid_.tensor_group());
}

int PipelineEngine::peer_rank(const Instruction& instruction) const {
  return peer_of(shape_, stage_, instruction).stage;
}

int PipelineEngine::peer_chunk(const Instruction& instruction) const {
  return peer_of(shape_, stage_, instruction).chunk;
}

double PipelineEngine::train_batch(const MicroBatchSource& next) {
  module_->train();
  return run_schedule(train_schedule(shape_, stage_), next, true);
}

double PipelineEngine::eval_batch(const MicroBatchSource& next) {
  module_->eval();
  double loss = run_schedule(eval_schedule(shape_, stage_), next, false);
  module_->train();
  return loss;
}

// Every activation the list receives, posted in list order: messages of one (peer, tag) match
// in that order, and the sender sends them in its own list's order, which is the same.
void PipelineEngine::post_activation_receives(const std::vector<Instruction>& list,
                                              Buffers& buffers) {
  for (const Instruction& instruction : list)
    if (instruction.kind == Kind::recv_activation)
      buffers.posted_activations.try_emplace(
          PassKey{instruction.micro_batch, instruction.chunk}, grid_.pipeline_group(), *control_,
          peer_rank(instruction), activation_tag(instruction.chunk), activation_parts_);
}

// The whole boundary tensor from this tensor rank's slice (pipe_partitioned, grad_partitioned).
Tensor PipelineEngine::gather_slices(const Tensor& slice, const Shape& sizes) {
  comm::Communicator& group =
      slice.device().is_cuda() ? grid_.tensor_group() : grid_.tensor_group().host_communicator();
  return gather_partitioned(slice, sizes, group);
}

double PipelineEngine::run_schedule(const std::vector<Instruction>& list,
                                    const MicroBatchSource& next, bool training) {
  Buffers buffers;
  timeline_.clear();
  const Clock::time_point start = Clock::now();
  auto since_start = [&start] {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  const int64_t step = engine_->global_steps() + 1;
  if (training) begin_traced_batch(step);
  {
    autograd::GradModeGuard grad_mode(training);
    post_activation_receives(list, buffers);
    for (const Instruction& instruction : list) {
      double begun = since_start();
      {
        InstructionSpan span(instruction, stage_);
        execute(instruction, buffers, next, training);
      }
      timeline_.push_back({instruction, begun, since_start()});
    }
    wait_all(buffers.pending);
  }
  if (training) end_traced_batch(step, grid_.world().rank() == 0);
  // The last stage's loss to every stage, then the mean over the data-parallel replicas.
  const bool last = stage_ == shape_.stages - 1;
  Tensor loss = full({1}, last ? buffers.loss_sum / shape_.micro_batches : 0.0,
                     {.dtype = DType::f64, .tag = MemoryTag::comm});
  control_->broadcast(loss, shape_.stages - 1);
  data_control_->all_reduce(loss);
  return loss.item() / double(data_control_->size());
}

void PipelineEngine::execute(const Instruction& instruction, Buffers& buffers,
                             const MicroBatchSource& next, bool training) {
  const PassKey key{instruction.micro_batch, instruction.chunk};
  const int vs = virtual_stage_of(shape_, stage_, instruction.chunk);
  const bool last = vs == shape_.virtual_stages() - 1;
  comm::Communicator& pipe = grid_.pipeline_group();
  // What forward and backward passes allocate is counted as activations.
  std::optional<MemoryTagGuard> as_activation;
  if (instruction.kind == Kind::forward_pass || instruction.kind == Kind::backward_pass)
    as_activation.emplace(MemoryTag::activation);
  switch (instruction.kind) {
    case Kind::load_micro_batch:
      if (!buffers.loaded.contains(instruction.micro_batch))
        buffers.loaded[instruction.micro_batch] = next();
      break;
    case Kind::forward_pass: {
      Tensor input =
          vs == 0 ? buffers.loaded.at(instruction.micro_batch).inputs : buffers.inputs.at(key);
      Tensor output = module_->forward_chunk(instruction.chunk, input);
      if (last) {
        output = loss_(output, buffers.loaded.at(instruction.micro_batch).labels);
        // In f32 for its seed, as Engine::backward (a 16-bit loss would round loss_scale / m).
        if (output.dtype() != DType::f32) output = output.to(DType::f32);
        buffers.loss_sum += output.item();
      }
      if (training || !last) buffers.outputs[key] = output;
      if (!training) buffers.inputs.erase(key);
      // The gradient of this output comes back after the later stages' backward: its buffer
      // is known now.
      if (training && !last) {
        Tensor grad = empty(
            grad_parts_ > 1 ? Shape{partition_numel(output.numel(), grad_parts_)} : output.sizes(),
            {.dtype = output.dtype(), .tag = MemoryTag::activation});
        Instruction recv_grad = instruction;
        recv_grad.kind = Kind::recv_grad;
        buffers.posted_grad_works[key] =
            pipe.recv_async(grad, peer_rank(recv_grad), gradient_tag(instruction.chunk));
        buffers.posted_grads[key] = grad;
      }
      break;
    }
    case Kind::send_activation:
      send_tensor_with_shape(pipe, *control_, buffers.outputs.at(key).detach(),
                             peer_rank(instruction), activation_tag(peer_chunk(instruction)),
                             buffers.pending, activation_parts_, grid_.coordinates().tensor);
      if (!training) buffers.outputs.erase(key);
      break;
    case Kind::recv_activation: {
      auto posted = buffers.posted_activations.find(key);
      Tensor received = posted->second.wait();
      if (activation_parts_ > 1) received = gather_slices(received, posted->second.sizes());
      buffers.posted_activations.erase(posted);
      if (training && is_floating(received.dtype())) received.set_requires_grad(true);
      buffers.inputs[key] = received;
      break;
    }
    case Kind::recv_grad: {
      buffers.posted_grad_works.at(key)->wait();
      buffers.posted_grad_works.erase(key);
      Tensor grad = buffers.posted_grads.at(key);
      buffers.received_grads[key] =
          grad_parts_ > 1 ? gather_slices(grad, buffers.outputs.at(key).sizes()) : grad;
      buffers.posted_grads.erase(key);
      break;
    }
    case Kind::backward_pass: {
      Tensor output = buffers.outputs.at(key);
      // The loss of each micro-batch counts 1/m: the batch's gradient is their mean; under
      // fp16 it is also multiplied by the loss scale (the engine unscales before the update).
      Tensor seed = last ? full(output.sizes(), engine_->loss_scale() / shape_.micro_batches,
                                {.dtype = output.dtype(), .device = output.device()})
                         : buffers.received_grads.at(key);
      autograd::Engine::backward({output}, {seed});
      buffers.outputs.erase(key);
      buffers.received_grads.erase(key);
      break;
    }
    case Kind::send_grad: {
      Tensor input = buffers.inputs.at(key);
      Tensor grad = input.grad().defined() ? input.grad().contiguous() : zeros_like(input);
      if (grad_parts_ > 1) grad = partition_slice(grad, grad_parts_, grid_.coordinates().tensor);
      buffers.pending.push_back(
          pipe.send_async(grad, peer_rank(instruction), gradient_tag(peer_chunk(instruction))));
      buffers.inputs.erase(key);
      break;
    }
    case Kind::reduce_tied_grads:
      reduce_tied_gradients();
      break;
    case Kind::reduce_grads:
      engine_->backward_accumulated_gradients(buffers.loss_sum / shape_.micro_batches);
      break;
    case Kind::optimizer_step:
      engine_->step();
      break;
  }
}

}  // namespace zt::pipeline
