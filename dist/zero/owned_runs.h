// How a rank's owned slice of a flat group splits into runs of one optimizer parameter group
// each. The optimizer steps every run with its own group's hyperparameters, so a slice that
// spans parameters of two groups (a weight beside its bias) gives each element its group's
// rule while the flat groups, their reductions and their gathers stay as the plan made them.
// Invariant: the runs of a slice tile it, in order, each as long as possible. Padding joins the
// run before it (in a slice of padding only, the group of the flat group's last parameter):
// padding holds zeros with zero gradients, which every update rule leaves at zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dist/zero/partition_plan.h"

namespace zt::dist {

struct OwnedRun {
  int64_t begin = 0;  // element offset in the owned slice
  int64_t numel = 0;
  size_t param_group = 0;
};

// The runs of elements [owned_begin, owned_begin + owned_numel) of `plan`'s flat layout;
// `group_of` gives a parameter's group from its name.
std::vector<OwnedRun> owned_runs(const FlatGroup& plan, int64_t owned_begin, int64_t owned_numel,
                                 const std::function<size_t(const std::string&)>& group_of);

}  // namespace zt::dist
