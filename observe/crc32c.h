// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord framing, and
// TFRecord's masked form of it. Debian 12 packages no C or C++ CRC-32C library (only a Python
// one), so the table-driven byte loop lives here; tests check it against RFC 3720's vectors.
#pragma once

#include <cstdint>
#include <string_view>

namespace zt::observe {

// The CRC-32C of `bytes` (initial value and final xor 0xFFFFFFFF, as iSCSI and TFRecord use it).
uint32_t crc32c(std::string_view bytes);
// TFRecord's mask: rotate right by 15 bits and add 0xA282EAD8, so that a CRC stored inside the
// data it covers does not checksum to a fixed value.
uint32_t masked_crc32c(std::string_view bytes);

}  // namespace zt::observe
