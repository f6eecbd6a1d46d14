// The one handler of the fault points (dist/fault_points.h); none outside tests.
#include "dist/fault_points.h"

namespace zt::dist {
namespace {

FaultHandler installed_handler = nullptr;

}  // namespace

void install_fault_handler(FaultHandler handler) {
  installed_handler = handler;
}

void reach_fault_point(std::string_view name, int rank, int64_t step) {
  if (installed_handler != nullptr) installed_handler(FaultPoint{name, rank, step});
}

}  // namespace zt::dist
