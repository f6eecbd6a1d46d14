// The registered NCCL maker (comm/nccl_registry.h). A constant-initialised pointer, so that it
// is null before any static initialiser runs, whatever the order of the translation units.
#include "comm/nccl_registry.h"

namespace zt::comm {
namespace {
constinit NcclMaker nccl_maker = nullptr;
}  // namespace

void register_nccl_maker(NcclMaker maker) {
  nccl_maker = maker;
}

NcclMaker registered_nccl_maker() {
  return nccl_maker;
}

}  // namespace zt::comm
