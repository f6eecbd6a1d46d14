// The calling thread's construction observer (nn/construction_observer.h). Thread-local, so a
// model built on one thread is not partitioned by a scope opened on another.
#include "nn/construction_observer.h"

namespace zt::nn {
namespace {
thread_local ConstructionObserver* current_observer = nullptr;
}  // namespace

ConstructionObserver* construction_observer() {
  return current_observer;
}

ConstructionObserver* set_construction_observer(ConstructionObserver* observer) {
  ConstructionObserver* previous = current_observer;
  current_observer = observer;
  return previous;
}

}  // namespace zt::nn
