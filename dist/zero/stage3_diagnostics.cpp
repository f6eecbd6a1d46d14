// Messages for stage-3 gathers gone wrong (dist/zero/stage3_diagnostics.h).
#include "dist/zero/stage3_diagnostics.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace zt::dist {

std::string module_label(const std::string& module_name, const std::string& type_name) {
  if (module_name.empty()) return fmt::format("the root module ({})", type_name);
  return fmt::format("module '{}' ({})", module_name, type_name);
}

std::string other_ranks_text(int rank, int size) {
  std::vector<std::string> ranges;
  auto add_range = [&ranges](int first, int last) {
    if (first > last) return;
    ranges.push_back(first == last ? fmt::format("{}", first) : fmt::format("{}..{}", first, last));
  };
  add_range(0, rank - 1);
  add_range(rank + 1, size - 1);
  return fmt::format("{}", fmt::join(ranges, ", "));
}

std::string describe_released_parameter(const FlatGroup& group, int64_t element_offset,
                                        const std::vector<std::string>& readers,
                                        const std::string& running) {
  const PlannedParam* read = nullptr;
  for (const PlannedParam& entry : group.params) {
    if (element_offset >= entry.offset && element_offset < entry.offset + entry.numel)
      read = &entry;
  }
  std::string what = read != nullptr ? fmt::format("parameter {} of shape {}", read->name,
                                                   shape_str(read->param.sizes()))
                                     : fmt::format("a parameter of module '{}'", group.module_name);
  std::string where = running.empty()
                          ? "outside every module's forward (in backward, or in code the "
                            "model's forward does not run)"
                          : fmt::format("while {} ran its forward", running);
  return fmt::format(
      "{} has no data: ZeRO stage 3 gathers it only around the forward and backward of {}, but "
      "it was read {}; a module that reads a parameter of another module must declare it with "
      "zt::nn::register_external_parameter(module, parameter) (DeepSpeed's "
      "deepspeed.zero.register_external_parameter)",
      what, fmt::join(readers, " and "), where);
}

std::string describe_unjoined_gather(const std::string& module, const FlatGroup& group,
                                     double waited_seconds, int rank, int size) {
  constexpr size_t kNamesShown = 3;
  std::vector<std::string> names;
  for (const PlannedParam& entry : group.params) {
    if (names.size() < kNamesShown) names.push_back(entry.name);
  }
  if (group.params.size() > kNamesShown)
    names.push_back(fmt::format("{} more", group.params.size() - kNamesShown));
  return fmt::format(
      "stage-3 gather of {} waited {:g} s for ranks {} of its data-parallel group, and not all "
      "of them joined (parameters {}): at stage 3 every rank must run the forward of every "
      "module, so evaluate on every rank, or take engine.consolidated_state_dict() on every rank "
      "and evaluate a model of your own (zero_optimization.stage3_gather_timeout sets the wait)",
      module, waited_seconds, other_ranks_text(rank, size), fmt::join(names, ", "));
}

}  // namespace zt::dist
