// Splitting an owned slice into runs of one parameter group (dist/zero/owned_runs.h).
#include "dist/zero/owned_runs.h"

#include <algorithm>

namespace zt::dist {

std::vector<OwnedRun> owned_runs(const FlatGroup& plan, int64_t owned_begin, int64_t owned_numel,
                                 const std::function<size_t(const std::string&)>& group_of) {
  std::vector<OwnedRun> runs;
  int64_t owned_end = owned_begin + owned_numel;
  for (const PlannedParam& entry : plan.params) {
    int64_t begin = std::max(owned_begin, entry.offset);
    int64_t end = std::min(owned_end, entry.offset + entry.numel);
    if (begin >= end) continue;
    size_t group = group_of(entry.name);
    if (!runs.empty() && runs.back().param_group == group) {
      runs.back().numel += end - begin;  // parameters lie end to end: the run goes on
    } else {
      runs.push_back({begin - owned_begin, end - begin, group});
    }
  }
  int64_t covered = runs.empty() ? 0 : runs.back().begin + runs.back().numel;
  if (covered == owned_numel) return runs;
  if (runs.empty()) {
    size_t group = plan.params.empty() ? 0 : group_of(plan.params.back().name);
    runs.push_back({0, owned_numel, group});
  } else {
    runs.back().numel = owned_numel - runs.back().begin;  // the padding after the last one
  }
  return runs;
}

}  // namespace zt::dist
