// The process-wide default Generator. Its state is a (seed, offset) pair; see generator.h for
// why draws do not depend on threads or devices.
#include "core/generator.h"

namespace zt {

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void manual_seed(uint64_t seed) {
  default_generator().set_state(seed, 0);
}

}  // namespace zt
