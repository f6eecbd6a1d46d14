// The config doctor (dist/config_doctor.h): the paper's formulas over the model's own plan.
#include "dist/config_doctor.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "dist/zero/partition_plan.h"
#include "dist/zero/partitioning.h"

namespace zt::dist {

namespace {

// The prefetcher's rule (dist/zero/parameter_gatherer.cpp) replayed over the groups in the
// order modules use them: while group i is gathered, the partitioned groups after it are
// started as long as they fit the prefetch bucket and the live-parameter bound.
int64_t gathered_peak_numel(const std::vector<int64_t>& order, const ZeroConfig& zero) {
  int64_t peak = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t live = order[i], budget = zero.stage3_prefetch_bucket_size;
    for (size_t next = i + 1; next < order.size(); ++next) {
      if (order[next] > budget || live + order[next] > zero.stage3_max_live_parameters) break;
      live += order[next];
      budget -= order[next];
    }
    peak = std::max(peak, live);
  }
  return peak;
}

}  // namespace

ModelShape model_shape(nn::Module& model, const ZeroConfig& zero, int world_size) {
  ModelShape shape;
  // The stage-3 plan is a pure function of the model and N (no communication), so the
  // doctor reads the very groups the engine would gather.
  PartitionPlan plan = plan_by_module(model, world_size, zero.stage3_param_persistence_threshold,
                                      zero.stage3_model_persistence_threshold);
  std::vector<int64_t> partitioned;  // padded sizes in module order (forward's)
  for (const FlatGroup& group : plan.groups) {
    shape.parameter_count += group.numel;
    if (!group.partitioned) {
      shape.kept_whole_numel += group.numel;
      continue;
    }
    partitioned.push_back(group.padded_numel);
    if (group.padded_numel > shape.largest_module_numel) {
      shape.largest_module_numel = group.padded_numel;
      shape.largest_module_name = group.module_name.empty() ? "(root)" : group.module_name;
    }
  }
  int64_t forward = gathered_peak_numel(partitioned, zero);
  std::reverse(partitioned.begin(), partitioned.end());
  shape.gathered_peak_numel = std::max(forward, gathered_peak_numel(partitioned, zero));
  return shape;
}

int64_t RankPrediction::device_bytes() const {
  const ExpectedModelStateBytes& device = model_states.device;
  return device.params + device.grads + device.optim_state + gathered_working_set +
         std::max<int64_t>(activation_bytes, 0);
}

int64_t RankPrediction::host_bytes() const {
  return model_states.host_params + model_states.host_grads + model_states.host_optim_state;
}

double RankPrediction::traffic_bytes() const {
  double total = 0.0;
  for (auto& [kind, bytes] : traffic) total += bytes;
  return total;
}

RankPrediction predict_rank(const ModelShape& shape, const Config& config, int world_size,
                            bool checkpointed) {
  RankPrediction prediction;
  if (shape.activation_ops) {
    const ActivationCheckpointingConfig& kept = config.activation_checkpointing;
    prediction.activation_bytes = predict_activation_peak(
        shape.activation_ops(checkpointed), config.train_micro_batch_size_per_gpu,
        {.enabled = checkpointed, .cpu_checkpointing = checkpointed && kept.cpu_checkpointing});
  } else if (shape.activation_peak) {
    prediction.activation_bytes =
        shape.activation_peak(config.train_micro_batch_size_per_gpu, checkpointed);
  }
  prediction.stage = config.zero_optimization.stage;
  prediction.world_size = world_size;
  bool mixed = config.fp16.enabled || config.bf16.enabled;
  prediction.element_bytes = mixed ? 2 : 4;
  ZeroPartitioning partitioning = ZeroPartitioning::for_stage(prediction.stage);
  const int64_t psi = shape.parameter_count, n = world_size, b = prediction.element_bytes;
  prediction.model_states = expected_offload_bytes(
      partitioning, psi, n, b, optimizer_state_bytes_per_param(config.optimizer, mixed),
      config.zero_optimization);
  const double micro = double(config.gradient_accumulation_steps);
  auto share = [&](int64_t numel) { return double(n - 1) / double(n) * double(b) * double(numel); };
  if (!partitioning.parameters) {
    prediction.traffic = expected_step_traffic(partitioning, share(psi), micro);
    return prediction;
  }
  // Groups under the persistence threshold stay whole on every rank next to their owned slice
  // (measured: B K bytes more than B Psi / N), and are never gathered before use: they move
  // as at stage 2 (a reduce-scatter, and one all-gather of the updated slices a step).
  const int64_t kept = shape.kept_whole_numel;
  ExpectedOffloadBytes& states = prediction.model_states;
  states.device.params += b * kept;
  if (config.zero_optimization.offload_param.enabled()) {
    // offload_param moves only partitioned groups' slices: the kept ones' stay on the device.
    const int64_t kept_slices = b * kept / n;
    const int64_t from_host = std::min(kept_slices, states.host_params);
    states.device.params += kept_slices;
    states.host_params -= from_host;
    states.nvme -= kept_slices - from_host;
  }
  // Gathered groups (prefetch included), and the largest module's gradient, whole until
  // reduce-scattered, while its backward runs.
  prediction.gathered_working_set = b * (shape.gathered_peak_numel + shape.largest_module_numel);
  prediction.traffic = expected_step_traffic(partitioning, share(psi - kept), micro);
  for (auto& [kind, bytes] :
       expected_step_traffic(ZeroPartitioning::for_stage(2), share(kept), micro)) {
    for (auto& [predicted_kind, predicted_bytes] : prediction.traffic)
      if (predicted_kind == kind) predicted_bytes += bytes;
  }
  return prediction;
}

std::string explain_prediction(const RankPrediction& p, const ModelShape& shape) {
  auto mib = [](double bytes) { return bytes / double(1 << 20); };
  const ExpectedOffloadBytes& s = p.model_states;
  std::string text = fmt::format(
      "config doctor: ZeRO stage {} on {} ranks, {} parameters of {} bytes, per rank:\n", p.stage,
      p.world_size, shape.parameter_count, p.element_bytes);
  text += fmt::format("  {:<28} {:>12} {:>12}\n", "memory (MiB)", "device", "host");
  auto row = [&](const char* kind, int64_t device, int64_t host) {
    text +=
        fmt::format("  {:<28} {:12.3f} {:12.3f}\n", kind, mib(double(device)), mib(double(host)));
  };
  row("parameters", s.device.params, s.host_params);
  row("gradients", s.device.grads, s.host_grads);
  row("optimizer state", s.device.optim_state, s.host_optim_state);
  if (p.stage == 3) {
    std::string what =
        fmt::format("gathered {} + grad",
                    shape.largest_module_name.empty() ? "module" : shape.largest_module_name);
    row(what.substr(0, 28).c_str(), p.gathered_working_set, 0);
  }
  if (p.activation_bytes >= 0) row("activations (peak)", p.activation_bytes, 0);
  row("total", p.device_bytes(), p.host_bytes());
  if (s.nvme > 0) text += fmt::format("  {:<28} {:12.3f}\n", "NVMe files", mib(double(s.nvme)));
  text +=
      fmt::format("  {:<28} {:>12}\n", p.activation_bytes >= 0 ? "buffers" : "activations, buffers",
                  "not predicted");
  text += fmt::format("  {:<28} {:>12}\n", "sent per step (bytes)", "payload");
  for (auto& [kind, bytes] : p.traffic)
    text += fmt::format("  {:<28} {:12.0f}\n", comm::collective_kind_name(kind), bytes);
  text += fmt::format("  {:<28} {:12.0f}\n", "total", p.traffic_bytes());
  return text;
}

std::string Layout::str() const {
  std::string text = fmt::format("stage {}", stage);
  if (offload_optimizer != "none") text += ", offload_optimizer " + offload_optimizer;
  if (offload_param != "none") text += ", offload_param " + offload_param;
  if (micro_batch > 0) text += fmt::format(", micro-batch {}", micro_batch);
  if (checkpointing) text += ", activation checkpointing";
  return text;
}

Config with_layout(const Config& config, const Layout& layout) {
  Config changed = config;
  changed.zero_optimization.stage = layout.stage;
  changed.zero_optimization.offload_optimizer.device = layout.offload_optimizer;
  changed.zero_optimization.offload_param.device = layout.offload_param;
  if (layout.micro_batch > 0) {
    // The same samples per rank and step, in more or fewer micro-steps.
    const int64_t per_rank =
        config.train_micro_batch_size_per_gpu * config.gradient_accumulation_steps;
    changed.train_micro_batch_size_per_gpu = layout.micro_batch;
    changed.gradient_accumulation_steps = per_rank / layout.micro_batch;
    // The checkpointing the prediction assumed is the one the config asks for.
    ActivationCheckpointingConfig& kept = changed.activation_checkpointing;
    const int64_t asked = kept.number_checkpoints > 0 ? kept.number_checkpoints : 1;
    kept.number_checkpoints =
        layout.checkpointing ? (layout.number_checkpoints > 0 ? layout.number_checkpoints : asked)
                             : 0;
    if (kept.number_checkpoints == 0) kept.contiguous_memory_optimization = false;
  }
  return changed;
}

std::string layout_config_json(const Config& suggested) {
  const ZeroConfig& zero = suggested.zero_optimization;
  const ActivationCheckpointingConfig& kept = suggested.activation_checkpointing;
  nlohmann::ordered_json json = {
      {"train_micro_batch_size_per_gpu", suggested.train_micro_batch_size_per_gpu},
      {"gradient_accumulation_steps", suggested.gradient_accumulation_steps},
      {"zero_optimization",
       {{"stage", zero.stage},
        {"offload_optimizer", {{"device", zero.offload_optimizer.device}}},
        {"offload_param", {{"device", zero.offload_param.device}}}}},
      {"activation_checkpointing",
       {{"number_checkpoints", kept.number_checkpoints},
        {"partition_activations", kept.partition_activations},
        {"cpu_checkpointing", kept.cpu_checkpointing}}}};
  return json.dump();
}

namespace {

// Every layout in the order of cost: least traffic per step first (stages 0-2 send 2 shares
// with one micro-batch, stage 3 three), then least offload (each offload adds host traffic
// and host compute to every step).
std::vector<Layout> layouts_by_cost(const Config& config, int world_size) {
  std::vector<Layout> layouts;
  bool can_offload = config.optimizer.is_adam();
  for (std::string optimizer : {"none", "cpu"}) {
    for (int stage = 0; stage <= 3; ++stage) {
      if (optimizer == "cpu" && (stage == 0 || !can_offload)) continue;
      layouts.push_back({.stage = stage, .offload_optimizer = optimizer});
    }
  }
  if (can_offload)
    layouts.push_back({.stage = 3, .offload_optimizer = "cpu", .offload_param = "cpu"});
  std::stable_sort(layouts.begin(), layouts.end(), [&](const Layout& a, const Layout& b) {
    ModelShape unit{.parameter_count = 1'000'000};
    auto traffic = [&](const Layout& l) {
      return predict_rank(unit, with_layout(config, l), std::max(world_size, 2)).traffic_bytes();
    };
    auto offload = [](const Layout& l) {
      return int(l.offload_optimizer != "none") + int(l.offload_param != "none");
    };
    double ta = traffic(a), tb = traffic(b);
    if (ta != tb) return ta < tb;
    return offload(a) < offload(b);
  });
  return layouts;
}

// Where activations are predicted: the micro-batches that divide the samples per rank and
// step, largest first (fewest micro-steps), all without checkpointing before any with it:
// a re-run forward costs compute, and its re-run happens while gradients already fill their
// buffers, which the per-kind peaks do not see (measured on the MNIST CNN at stage 0: the
// activation peak falls by 5.8 MiB at 64 samples, the device peak rises by 1.4 MiB).
std::vector<Layout> activation_choices(const Layout& base, const ModelShape& shape,
                                       const Config& config) {
  if (!shape.predicts_activations()) return {base};
  std::vector<Layout> choices;
  const int64_t per_rank =
      config.train_micro_batch_size_per_gpu * config.gradient_accumulation_steps;
  for (bool checkpointing : {false, true}) {
    for (int64_t micro = per_rank; micro >= 1; --micro) {
      if (per_rank % micro != 0) continue;
      Layout layout = base;
      layout.micro_batch = micro;
      layout.checkpointing = checkpointing;
      layout.number_checkpoints = checkpointing ? shape.number_checkpoints : 0;
      choices.push_back(layout);
    }
  }
  return choices;
}

}  // namespace

std::optional<Suggestion> suggest_layout(const ModelShape& shape, const Config& config,
                                         int world_size, int64_t budget_bytes,
                                         int64_t reserve_bytes, std::string* why_none) {
  auto mib = [](int64_t bytes) { return double(bytes) / double(1 << 20); };
  std::string why;
  // Fewer micro-steps send less at stages 2 and 3 (a reduce-scatter each): where the
  // micro-batch is a choice, every choice is ordered by its own traffic, ties kept in the
  // order above.
  std::vector<std::pair<Layout, RankPrediction>> choices;
  for (const Layout& base : layouts_by_cost(config, world_size)) {
    for (const Layout& layout : activation_choices(base, shape, config)) {
      choices.emplace_back(layout, predict_rank(shape, with_layout(config, layout), world_size,
                                                layout.checkpointing));
    }
  }
  if (shape.predicts_activations()) {
    std::stable_sort(choices.begin(), choices.end(), [](const auto& a, const auto& b) {
      return a.second.traffic_bytes() < b.second.traffic_bytes();
    });
  }
  for (const auto& [layout, prediction] : choices) {
    int64_t needed = prediction.device_bytes() + reserve_bytes;
    if (needed <= budget_bytes) {
      why +=
          fmt::format("{}: {:.3f} MiB on the device fits {:.3f} MiB, sending {:.0f} bytes a step",
                      layout.str(), mib(needed), mib(budget_bytes), prediction.traffic_bytes());
      return Suggestion{layout, prediction, why};
    }
    why += fmt::format("{}: needs {:.3f} MiB, over by {:.3f} MiB\n", layout.str(), mib(needed),
                       mib(needed - budget_bytes));
  }
  if (why_none) *why_none = why;
  return std::nullopt;
}

}  // namespace zt::dist
