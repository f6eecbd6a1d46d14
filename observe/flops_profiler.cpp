// The flops profiler's hooks, aggregation and report.
#include "observe/flops_profiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>

namespace zt::observe {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int depth_of(const std::string& name) {
  if (name.empty()) return 0;
  return 1 + int(std::count(name.begin(), name.end(), '.'));
}

bool is_within(const std::string& name, const std::string& ancestor) {
  if (ancestor.empty()) return true;
  return name == ancestor || (name.size() > ancestor.size() && name.starts_with(ancestor) &&
                              name[ancestor.size()] == '.');
}

double share(double part, double whole) {
  return whole > 0 ? 100.0 * part / whole : 0.0;
}

}  // namespace

std::string with_unit_prefix(double value, const std::string& unit) {
  static constexpr std::pair<double, const char*> kPrefixes[] = {
      {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto& [scale, prefix] : kPrefixes) {
    if (value >= scale) return fmt::format("{:.2f} {}{}", value / scale, prefix, unit);
  }
  // Under a thousand: the number as it is ("320", "1.5 GFLOPS" above).
  return unit.empty() ? fmt::format("{:g}", value) : fmt::format("{:g} {}", value, unit);
}

FlopsProfiler::FlopsProfiler(FlopsProfilerConfig config, nn::Module& model)
    : config_(std::move(config)), model_(model) {
  for (auto& [name, module] : model.named_modules()) {
    auto measured = std::make_unique<Measured>();
    measured->module = module.get();
    measured->name = name;
    measured->type = module->type_name();
    Measured* raw = measured.get();
    raw->hook_handles.push_back(
        module->register_forward_pre_hook([this, raw](nn::Module&, const nn::TensorList&) {
          if (profiling_) raw->starts.push_back(now_seconds());
        }));
    raw->hook_handles.push_back(
        module->register_forward_hook([this, raw](nn::Module& called, const nn::TensorList& inputs,
                                                  const nn::TensorList& outputs) {
          if (!profiling_ || raw->starts.empty()) return;
          raw->latency_seconds += now_seconds() - raw->starts.back();
          raw->starts.pop_back();
          ModuleCost cost = module_own_cost(called, inputs, outputs);
          raw->own_macs += cost.macs;
          raw->own_flops += cost.flops;
          raw->calls += 1;
        }));
    measured_.push_back(std::move(measured));
  }
}

FlopsProfiler::~FlopsProfiler() {
  for (auto& measured : measured_) {
    for (int64_t handle : measured->hook_handles) measured->module->remove_hook(handle);
  }
}

void FlopsProfiler::start() {
  for (auto& measured : measured_) {
    measured->own_macs = measured->own_flops = measured->calls = 0;
    measured->latency_seconds = 0;
    measured->starts.clear();
  }
  profiling_ = true;
}

void FlopsProfiler::stop() {
  profiling_ = false;
}

std::vector<FlopsProfiler::ModuleProfile> FlopsProfiler::profiles() const {
  std::vector<ModuleProfile> profiles;
  for (const auto& measured : measured_) {
    ModuleProfile profile{.name = measured->name,
                          .type = measured->type,
                          .depth = depth_of(measured->name),
                          .params = measured->module->num_parameters(),
                          .latency_seconds = measured->latency_seconds,
                          .calls = measured->calls};
    for (const auto& inner : measured_) {
      if (!is_within(inner->name, measured->name)) continue;
      profile.macs += inner->own_macs;
      profile.flops += inner->own_flops;
    }
    profiles.push_back(profile);
  }
  return profiles;
}

std::string FlopsProfiler::report(const ProfiledStep& measured) const {
  std::vector<ModuleProfile> all = profiles();
  std::string text = summary(measured, all.front());
  text += top_modules(all);
  if (config_.detailed) text += tree(all);
  text += std::string(78, '-') + "\n";
  return text;
}

std::string FlopsProfiler::summary(const ProfiledStep& measured, const ModuleProfile& model) const {
  double forward = model.latency_seconds;
  double iteration = measured.forward_seconds + measured.backward_seconds + measured.step_seconds;
  auto line = [](std::string_view label, const std::string& value) {
    return fmt::format("{:<62}{}\n", label, value);
  };
  std::string text = fmt::format("{:-^78}\n", " ZeroTrain Flops Profiler ");
  text += fmt::format("Profile Summary at step {}:\n", measured.step);
  text += line("world size:", fmt::format("{}", measured.world_size));
  text += line("data parallel size:", fmt::format("{}", measured.world_size));
  text += line("batch size per GPU:", fmt::format("{}", measured.batch_size_per_gpu));
  text += line("params per GPU:", with_unit_prefix(double(model.params)));
  text += line("fwd MACs per GPU:", with_unit_prefix(double(model.macs), "MACs"));
  text += line("fwd flops per GPU:", with_unit_prefix(double(model.flops)));
  text += line("fwd latency:", fmt::format("{:.2f} ms", 1e3 * forward));
  text += line("bwd latency:", fmt::format("{:.2f} ms", 1e3 * measured.backward_seconds));
  text += line("fwd FLOPS per GPU = fwd flops per GPU / fwd latency:",
               with_unit_prefix(forward > 0 ? model.flops / forward : 0.0, "FLOPS"));
  text +=
      line("bwd FLOPS per GPU = 2 * fwd flops per GPU / bwd latency:",
           with_unit_prefix(
               measured.backward_seconds > 0 ? 2.0 * model.flops / measured.backward_seconds : 0.0,
               "FLOPS"));
  double forward_backward = forward + measured.backward_seconds;
  text += line(
      "fwd+bwd FLOPS per GPU = 3 * fwd flops / (fwd+bwd latency):",
      with_unit_prefix(forward_backward > 0 ? 3.0 * model.flops / forward_backward : 0.0, "FLOPS"));
  text += line("step latency:", fmt::format("{:.2f} ms", 1e3 * measured.step_seconds));
  text += line("iter latency:", fmt::format("{:.2f} ms", 1e3 * iteration));
  text += line("samples/second:",
               fmt::format("{:.2f}", iteration > 0 ? double(measured.batch_size_per_gpu) *
                                                         measured.world_size / iteration
                                                   : 0.0));
  return text;
}

std::string FlopsProfiler::top_modules(const std::vector<ModuleProfile>& profiles) const {
  std::map<int, std::vector<const ModuleProfile*>> by_depth;
  for (const ModuleProfile& profile : profiles) by_depth[profile.depth].push_back(&profile);
  std::string text = fmt::format("{:-^78}\n", " Aggregated Profile per GPU ");
  text += fmt::format(
      "Top {} modules in terms of params, MACs or fwd latency at different model "
      "depths:\n",
      config_.top_modules);
  for (auto& [depth, modules] : by_depth) {
    if (config_.module_depth >= 0 && depth > config_.module_depth) break;
    auto top = [&](auto key, auto shown) {
      std::vector<const ModuleProfile*> sorted = modules;
      std::stable_sort(
          sorted.begin(), sorted.end(),
          [&](const ModuleProfile* a, const ModuleProfile* b) { return key(*a) > key(*b); });
      std::string entries;
      for (size_t i = 0; i < sorted.size() && int64_t(i) < config_.top_modules; ++i) {
        if (!entries.empty()) entries += ", ";
        entries +=
            fmt::format("'{}': '{}'", sorted[i]->name.empty() ? sorted[i]->type : sorted[i]->name,
                        shown(*sorted[i]));
      }
      return "{" + entries + "}";
    };
    text += fmt::format("depth {}:\n", depth);
    text +=
        fmt::format("    params      - {}\n",
                    top([](const ModuleProfile& p) { return double(p.params); },
                        [](const ModuleProfile& p) { return with_unit_prefix(double(p.params)); }));
    text += fmt::format(
        "    MACs        - {}\n",
        top([](const ModuleProfile& p) { return double(p.macs); },
            [](const ModuleProfile& p) { return with_unit_prefix(double(p.macs), "MACs"); }));
    text += fmt::format("    fwd latency - {}\n",
                        top([](const ModuleProfile& p) { return p.latency_seconds; },
                            [](const ModuleProfile& p) {
                              return fmt::format("{:.2f} ms", 1e3 * p.latency_seconds);
                            }));
  }
  return text;
}

std::string FlopsProfiler::tree(const std::vector<ModuleProfile>& profiles) const {
  const ModuleProfile& model = profiles.front();
  std::string text = fmt::format("{:-^78}\n", " Detailed Profile per GPU ");
  text +=
      "Each module profile is listed after its name in the following order:\n"
      "params, percentage of total params, MACs, percentage of total MACs, fwd latency, "
      "percentage of total fwd latency, fwd FLOPS\n\n";
  for (const ModuleProfile& profile : profiles) {
    if (config_.module_depth >= 0 && profile.depth > config_.module_depth) continue;
    std::string indent(size_t(2 * profile.depth), ' ');
    std::string label =
        profile.name.empty()
            ? profile.type
            : fmt::format("({}): {}", profile.name.substr(profile.name.rfind('.') + 1),
                          profile.type);
    text += fmt::format(
        "{}{}({}, {:.2f}% Params, {}, {:.2f}% MACs, {:.2f} ms, {:.2f}% latency, {})\n", indent,
        label, with_unit_prefix(double(profile.params)),
        share(double(profile.params), double(model.params)),
        with_unit_prefix(double(profile.macs), "MACs"),
        share(double(profile.macs), double(model.macs)), 1e3 * profile.latency_seconds,
        share(profile.latency_seconds, model.latency_seconds),
        with_unit_prefix(
            profile.latency_seconds > 0 ? profile.flops / profile.latency_seconds : 0.0, "FLOPS"));
  }
  return text;
}

}  // namespace zt::observe
