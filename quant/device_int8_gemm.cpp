// The registered device int8 GEMM (quant/device_int8_gemm.h).
#include "quant/device_int8_gemm.h"

namespace zt::quant {

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

}  // namespace zt::quant
