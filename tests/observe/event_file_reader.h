// A reader of TensorBoard event files written independently of the writer: the TFRecord framing
// and its masked CRC-32Cs checked as TensorFlow's record reader checks them, the Event messages
// decoded from protobuf's wire format by hand with TensorFlow's field numbers (no generated code),
// so that a wrong field number or framing in the writer fails the tests.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "observe/crc32c.h"

namespace zt::testing {

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> scalars;  // (tag, simple_value)
};

class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : bytes_(bytes) {}
  bool done() const { return at_ == bytes_.size(); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      REQUIRE(at_ < bytes_.size());
      auto byte = uint8_t(bytes_[at_++]);
      value |= uint64_t(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    FAIL("varint longer than 10 bytes");
    return 0;
  }
  template <typename T>
  T fixed() {
    REQUIRE(at_ + sizeof(T) <= bytes_.size());
    T value;
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));  // little-endian host (x86-64)
    at_ += sizeof(T);
    return value;
  }
  std::string_view length_delimited() {
    uint64_t length = varint();
    REQUIRE(at_ + length <= bytes_.size());
    std::string_view part = bytes_.substr(at_, length);
    at_ += length;
    return part;
  }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

// Summary.Value {1: tag, 2: simple_value}.
inline std::pair<std::string, float> decode_summary_value(std::string_view bytes) {
  WireReader wire(bytes);
  std::pair<std::string, float> scalar;
  while (!wire.done()) {
    uint64_t key = wire.varint();
    if (key == (1 << 3 | 2))
      scalar.first = wire.length_delimited();
    else if (key == (2 << 3 | 5))
      scalar.second = wire.fixed<float>();
    else
      FAIL("unexpected Summary.Value field key " << key);
  }
  return scalar;
}

// Event {1: wall_time, 2: step, 3: file_version, 5: summary {1: value}}.
inline DecodedEvent decode_event(std::string_view bytes) {
  WireReader wire(bytes);
  DecodedEvent event;
  while (!wire.done()) {
    uint64_t key = wire.varint();
    if (key == (1 << 3 | 1)) {
      event.wall_time = wire.fixed<double>();
    } else if (key == (2 << 3 | 0)) {
      event.step = int64_t(wire.varint());
    } else if (key == (3 << 3 | 2)) {
      event.file_version = wire.length_delimited();
    } else if (key == (5 << 3 | 2)) {
      WireReader summary(wire.length_delimited());
      while (!summary.done()) {
        REQUIRE(summary.varint() == (1 << 3 | 2));
        event.scalars.push_back(decode_summary_value(summary.length_delimited()));
      }
    } else {
      FAIL("unexpected Event field key " << key);
    }
  }
  return event;
}

// TFRecord's masked CRC, from its definition (TensorFlow's crc32c::Mask).
inline uint32_t tfrecord_mask(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

// Every record of the file at `path`, each CRC checked.
inline std::vector<DecodedEvent> read_event_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE_MESSAGE(file.good(), "cannot open " << path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string bytes = buffer.str();
  std::vector<DecodedEvent> events;
  size_t at = 0;
  auto u32 = [&](size_t offset) {
    uint32_t value;
    std::memcpy(&value, bytes.data() + offset, 4);
    return value;
  };
  while (at < bytes.size()) {
    REQUIRE(at + 12 <= bytes.size());
    uint64_t length;
    std::memcpy(&length, bytes.data() + at, 8);
    CHECK(u32(at + 8) == tfrecord_mask(observe::crc32c(std::string_view(bytes).substr(at, 8))));
    REQUIRE(at + 12 + length + 4 <= bytes.size());
    std::string_view payload = std::string_view(bytes).substr(at + 12, length);
    CHECK(u32(at + 12 + length) == tfrecord_mask(observe::crc32c(payload)));
    events.push_back(decode_event(payload));
    at += 12 + length + 4;
  }
  return events;
}

}  // namespace zt::testing
