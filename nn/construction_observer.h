// A hook into model construction: while an observer is set for the calling thread, Module
// reports each parameter it registers, each child it adopts and each module that goes away.
// dist/partitioned_init.h sets one to partition parameters as their modules are finished
// (a child's constructor has returned by the time its parent registers it), without nn
// knowing about ranks or communicators.
#pragma once

#include <string>

#include "core/tensor.h"

namespace zt::nn {

class Module;

class ConstructionObserver {
 public:
  virtual ~ConstructionObserver() = default;
  // `module` registered `parameter` under `name` as its own.
  virtual void parameter_registered(Module& module, const std::string& name,
                                    const Tensor& parameter) = 0;
  // `parent` registered `child` under `name`: the child's own parameters are final.
  virtual void child_registered(Module& parent, const std::string& name, Module& child) = 0;
  // `module` is being destroyed.
  virtual void module_destroyed(const Module& module) noexcept = 0;
};

// The calling thread's observer (null when none).
ConstructionObserver* construction_observer();
// Sets the calling thread's observer; returns the previous one.
ConstructionObserver* set_construction_observer(ConstructionObserver* observer);

}  // namespace zt::nn
