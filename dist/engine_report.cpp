// The engine's reports: measured model-state bytes and traffic next to the ZeRO paper's
// formulas (--report, and the memory tests).
#include <fmt/format.h>

#include <vector>

#include "core/allocator.h"
#include "dist/engine.h"
#include "dist/zero/expected_footprint.h"
#include "dist/zero/optimizer_shard.h"
#include "dist/zero/parameter_swap.h"

namespace zt::dist {

ModelStateReport Engine::model_state_report() const {
  ModelStateReport report;
  report.stage = zero_stage();
  report.world_size = world_size();
  report.parameter_count = plan_.total_numel();
  report.model_dtype = model_dtype_;
  MemoryStats stats = memory_accounting().stats();
  report.param_bytes = stats.live(MemoryTag::param);
  report.grad_bytes = stats.live(MemoryTag::grad);
  report.optim_state_bytes = stats.live(MemoryTag::optim_state);
  ExpectedOffloadBytes expected = expected_offload_bytes(
      partitioning_, report.parameter_count, report.world_size, int64_t(dtype_size(model_dtype_)),
      optimizer_state_bytes_per_param(config_.optimizer, mixed_precision()),
      config_.zero_optimization);
  report.expected_param_bytes = expected.device.params;
  report.expected_grad_bytes = expected.device.grads;
  report.expected_optim_state_bytes = expected.device.optim_state;
  // Offloaded state is in host memory wherever the engine runs.
  MemoryStats host = cpu_allocator().accounting().stats();
  report.host_param_bytes = host.live(MemoryTag::param_offload);
  report.host_grad_bytes = host.live(MemoryTag::grad_offload);
  report.host_optim_state_bytes = host.live(MemoryTag::optim_state_offload);
  report.expected_host_param_bytes = expected.host_params;
  report.expected_host_grad_bytes = expected.host_grads;
  report.expected_host_optim_state_bytes = expected.host_optim_state;
  report.nvme_bytes = shard_->nvme_bytes() + (parameter_swap_ ? parameter_swap_->file_bytes() : 0);
  report.expected_nvme_bytes = expected.nvme;
  return report;
}

std::string Engine::step_report() const {
  ModelStateReport report = model_state_report();
  // Model states, activations and communication buffers live on the engine's device; what
  // cpu_checkpointing offloads, and MPI's staging of device tensors, is host memory.
  MemoryStats memory = memory_accounting().stats();
  MemoryStats host_memory = cpu_allocator().accounting().stats();
  bool on_device = !device_.is_cpu();
  auto mib = [](int64_t bytes) { return double(bytes) / double(1 << 20); };
  std::string text = fmt::format(
      "rank {}: ZeRO stage {}, {} ranks, {} parameters (Psi), {} micro-batches a step\n", rank(),
      zero_stage(), world_size(), report.parameter_count, config_.gradient_accumulation_steps);
  text += fmt::format("  {:<12} {:>10} {:>10} {:>12}\n", "memory (MiB)", "live", "peak", "formula");
  auto memory_line = [&](const char* kind, MemoryTag tag, int64_t expected,
                         const MemoryStats& stats) {
    std::string formula = expected >= 0 ? fmt::format("{:12.3f}", mib(expected)) : "           -";
    return fmt::format("  {:<12} {:10.3f} {:10.3f} {}\n", kind, mib(stats.live(tag)),
                       mib(stats.peak(tag)), formula);
  };
  if (on_device) text += fmt::format("  on {} (host memory where marked)\n", device_.str());
  text += memory_line("parameters", MemoryTag::param, report.expected_param_bytes, memory);
  text += memory_line("gradients", MemoryTag::grad, report.expected_grad_bytes, memory);
  text +=
      memory_line("optimizer", MemoryTag::optim_state, report.expected_optim_state_bytes, memory);
  if (config_.zero_optimization.offload_optimizer.enabled() ||
      config_.zero_optimization.offload_param.enabled()) {
    MemoryStats host = cpu_allocator().accounting().stats();
    text += memory_line("params (host)", MemoryTag::param_offload, report.expected_host_param_bytes,
                        host);
    text +=
        memory_line("grads (host)", MemoryTag::grad_offload, report.expected_host_grad_bytes, host);
    text += memory_line("optim (host)", MemoryTag::optim_state_offload,
                        report.expected_host_optim_state_bytes, host);
    text += memory_line("swap buffers", MemoryTag::swap_buffer, -1, host);
    text += fmt::format("  {:<12} {:10.3f} {:>10} {:12.3f}\n", "NVMe files", mib(report.nvme_bytes),
                        "", mib(report.expected_nvme_bytes));
  }
  text += memory_line("activations", MemoryTag::activation, -1, memory);
  // cpu_checkpointing's copies are on the host wherever the model is.
  text += memory_line("act. offload", MemoryTag::activation_offload, -1, host_memory);
  text += memory_line("comm buffers", MemoryTag::comm, -1, memory);
  if (on_device) text += memory_line("comm (host)", MemoryTag::comm, -1, host_memory);
  // Element-bytes per step by the paper (dist/zero/expected_footprint.h).
  double n = double(world_size());
  double share = (n - 1.0) / n * double(dtype_size(model_dtype_)) * double(report.parameter_count);
  double micro = double(config_.gradient_accumulation_steps);
  std::vector<std::pair<comm::CollectiveKind, double>> expected =
      expected_step_traffic(partitioning_, share, micro);
  const comm::CommStats& stats = last_step_traffic_;
  text +=
      fmt::format("  {:<14} {:>6} {:>14} {:>14}\n", "traffic", "calls", "payload bytes", "formula");
  double total_expected = 0.0;
  for (auto& [kind, bytes] : expected) {
    total_expected += bytes;
    text += fmt::format("  {:<14} {:>6} {:>14} {:>14.0f}\n", comm::collective_kind_name(kind),
                        stats[kind].calls, stats[kind].payload_bytes, bytes);
  }
  text += fmt::format("  {:<14} {:>6} {:>14} {:>14.0f}\n", "total", "", stats.total_payload_bytes(),
                      total_expected);
  return text;
}

std::string ModelStateReport::str() const {
  auto line = [](const char* kind, int64_t measured, int64_t expected) {
    double ratio = expected > 0 ? double(measured) / double(expected) : 0.0;
    return fmt::format("  {:<12} {:>12} bytes   formula {:>12}   ratio {:.4f}\n", kind, measured,
                       expected, ratio);
  };
  return fmt::format("ZeRO stage {} on {} ranks, {} parameters:\n", stage, world_size,
                     parameter_count) +
         line("parameters", param_bytes, expected_param_bytes) +
         line("gradients", grad_bytes, expected_grad_bytes) +
         line("optimizer", optim_state_bytes, expected_optim_state_bytes) +
         line("params host", host_param_bytes, expected_host_param_bytes) +
         line("grads host", host_grad_bytes, expected_host_grad_bytes) +
         line("optim host", host_optim_state_bytes, expected_host_optim_state_bytes) +
         line("NVMe", nvme_bytes, expected_nvme_bytes);
}

}  // namespace zt::dist
