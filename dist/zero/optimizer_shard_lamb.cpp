// LAMB over the owned slices (dist/zero/optimizer_shard.h): a run of an owned slice holds
// pieces of several parameters, and with P_os a parameter's pieces lie on several ranks, while
// LAMB's trust ratio needs the norms of whole parameters. Each run is cut into norm segments
// keyed by parameter (padding joins the parameter before it: its zeros add nothing), and with
// P_os every rank's partial squares are summed by one all-reduce of two doubles per parameter.
// 1-bit LAMB takes the same pieces (at stage 0 they are whole parameters).
#include <algorithm>
#include <vector>

#include "core/factory.h"
#include "dist/zero/optimizer_shard.h"
#include "optim/lamb.h"
#include "optim/onebit_optimizer.h"

namespace zt::dist {

namespace {

// The segments of `run` (offsets in the owned slice that starts at flat offset owned_begin),
// keyed first_key + the parameter's index in the plan.
std::vector<optim::NormSegment> norm_segments(const FlatGroup& plan, int64_t owned_begin,
                                              const OwnedRun& run, size_t first_key) {
  std::vector<optim::NormSegment> segments;
  const int64_t run_begin = owned_begin + run.begin, run_end = run_begin + run.numel;
  for (size_t p = 0; p < plan.params.size(); ++p) {
    const PlannedParam& entry = plan.params[p];
    int64_t begin = std::max(run_begin, entry.offset);
    int64_t end = std::min(run_end, entry.offset + entry.numel);
    if (begin < end) segments.push_back({begin - run_begin, end - begin, first_key + p});
  }
  int64_t covered = segments.empty() ? 0 : segments.back().begin + segments.back().numel;
  if (covered < run.numel) {  // padding
    if (segments.empty()) {
      segments.push_back(
          {0, run.numel, first_key + (plan.params.empty() ? 0 : plan.params.size() - 1)});
    } else {
      segments.back().numel = run.numel - segments.back().begin;
    }
  }
  return segments;
}

}  // namespace

void OptimizerShard::attach_lamb_norms() {
  // The compressed-communication optimizers run at stage 0 only: a run's pieces are whole
  // parameters, each of which takes its own trust ratio (1-bit LAMB) or compression scale
  // (1-bit Adam), as in DeepSpeed.
  if (auto* onebit = dynamic_cast<optim::CompressedCommunicationOptimizer*>(optimizer_.get())) {
    for (size_t g = 0; g < groups_.size(); ++g)
      for (const RunPlace& place : runs_[g])
        onebit->set_pieces(place.run.param_group, place.index,
                           norm_segments(groups_[g]->plan, 0, place.run, 0));
    return;
  }
  auto* lamb = dynamic_cast<optim::Lamb*>(optimizer_.get());
  if (lamb == nullptr) return;
  size_t key_count = 0;
  for (const auto& group : groups_) key_count += std::max<size_t>(group->plan.params.size(), 1);
  size_t first_key = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const FlatGroup& plan = groups_[g]->plan;
    const int64_t owned_begin =
        partitioning_.optimizer_states ? plan.slice_begin(control_.rank()) : 0;
    for (const RunPlace& place : runs_[g]) {
      lamb->set_norm_segments(place.run.param_group, place.index,
                              norm_segments(plan, owned_begin, place.run, first_key), key_count);
    }
    first_key += std::max<size_t>(plan.params.size(), 1);
  }
  if (!partitioning_.optimizer_states || control_.size() == 1) return;
  lamb->set_norm_combiner([this](std::vector<double>& sums) {
    Tensor totals =
        from_values(sums, {int64_t(sums.size())}, {.dtype = DType::f64, .tag = MemoryTag::comm});
    control_.all_reduce(totals, comm::ReduceOperation::sum);
    sums = totals.to_vector();
  });
}

}  // namespace zt::dist
