// Pattern matching over module names, with the errors that name the group's key.
#include "compress/module_selection.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <regex>

#include "dist/config.h"
#include "models/conv1d.h"
#include "nn/conv2d.h"
#include "nn/linear.h"

namespace zt::compress {

std::vector<NamedModule> compressible_modules(nn::Module& model) {
  std::vector<NamedModule> found;
  for (auto& [name, module] : model.named_modules()) {
    if (dynamic_cast<nn::Linear*>(module.get()) || dynamic_cast<nn::Conv2d*>(module.get()) ||
        dynamic_cast<models::Conv1D*>(module.get()))
      found.push_back({name, module});
  }
  return found;
}

bool pattern_selects(const std::string& pattern, const std::string& name) {
  if (pattern == "*") return true;
  return std::regex_search(name, std::regex(pattern));
}

namespace {

std::vector<NamedModule> matching(const std::vector<NamedModule>& candidates,
                                  const std::string& pattern,
                                  const std::vector<std::string>& excluded) {
  std::vector<NamedModule> found;
  for (const NamedModule& candidate : candidates) {
    bool skip = false;
    for (const std::string& exclusion : excluded)
      skip |= pattern_selects(exclusion, candidate.name);
    if (!skip && pattern_selects(pattern, candidate.name)) found.push_back(candidate);
  }
  return found;
}

[[noreturn]] void no_match(const std::string& key, const std::string& pattern,
                           const std::vector<NamedModule>& candidates) {
  std::vector<std::string> names;
  for (const NamedModule& candidate : candidates) names.push_back(candidate.name);
  throw dist::ConfigError(
      fmt::format("{}: \"{}\" selects no Linear, Conv1D or Conv2d module (the model has {})", key,
                  pattern, names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
}

}  // namespace

std::vector<Selection> select_modules(const std::vector<NamedModule>& candidates,
                                      const dist::CompressionGroup& group,
                                      const std::vector<std::string>& excluded) {
  std::vector<Selection> selections;
  for (size_t index = 0; index < group.modules.size(); ++index) {
    const std::string& pattern = group.modules[index];
    std::vector<NamedModule> sources = matching(candidates, pattern, excluded);
    if (sources.empty()) no_match(group.path + ".modules", pattern, candidates);
    std::vector<std::vector<NamedModule>> related;  // per related pattern
    if (index < group.related_modules.size()) {
      for (const std::string& related_pattern : group.related_modules[index]) {
        std::vector<NamedModule> found = matching(candidates, related_pattern, {});
        if (found.empty()) no_match(group.path + ".related_modules", related_pattern, candidates);
        if (found.size() != 1 && found.size() != sources.size()) {
          throw dist::ConfigError(fmt::format(
              "{}.related_modules: \"{}\" selects {} modules; expected 1 or one per module "
              "\"{}\" selects ({})",
              group.path, related_pattern, found.size(), pattern, sources.size()));
        }
        related.push_back(std::move(found));
      }
    }
    for (size_t source = 0; source < sources.size(); ++source) {
      Selection selection{sources[source], {}};
      for (const std::vector<NamedModule>& found : related)
        selection.related_modules.push_back(found[found.size() == 1 ? 0 : source].name);
      selections.push_back(std::move(selection));
    }
  }
  return selections;
}

}  // namespace zt::compress
