// The registered device int8 GEMM (core/device_int8_gemm.h).
#include "core/device_int8_gemm.h"

namespace zt {

namespace {
DeviceInt8Gemm& registered() {
  static DeviceInt8Gemm gemm = nullptr;
  return gemm;
}
}  // namespace

void register_device_int8_gemm(DeviceInt8Gemm gemm) {
  registered() = gemm;
}

DeviceInt8Gemm registered_device_int8_gemm() {
  return registered();
}

}  // namespace zt
