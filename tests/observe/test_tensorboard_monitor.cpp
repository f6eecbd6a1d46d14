// The tensorboard monitor's event file read back by an independent decoder
// (tests/observe/event_file_reader.h): CRC-32C against RFC 3720's test vectors, the file version
// record first, then one scalar Event per logged value with its tag, step and value; a folder
// that cannot be made is an error naming it.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "observe/crc32c.h"
#include "observe/tensorboard_monitor.h"
#include "tests/observe/event_file_reader.h"

using namespace zt;

TEST_CASE("crc32c equals RFC 3720's test vectors and the check value of CRC-32C") {
  CHECK(observe::crc32c("123456789") == 0xE3069283u);
  CHECK(observe::crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(observe::crc32c(std::string(32, '\xFF')) == 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(char(i));
    descending.push_back(char(31 - i));
  }
  CHECK(observe::crc32c(ascending) == 0x46DD794Eu);
  CHECK(observe::crc32c(descending) == 0x113FDB5Cu);
  CHECK(observe::crc32c("") == 0u);
}

TEST_CASE("tensorboard monitor: the event file holds the file version, then every logged scalar") {
  namespace fs = std::filesystem;
  fs::path base = fs::temp_directory_path() / ("zt_tensorboard_" + std::to_string(getpid()));
  fs::remove_all(base);
  observe::TensorboardMonitor monitor(
      {.enabled = true, .output_path = base.string(), .job_name = "run1"});
  CHECK(fs::path(monitor.path()).parent_path() == base / "run1");
  CHECK(fs::path(monitor.path()).filename().string().starts_with("events.out.tfevents."));
  monitor.write_event("Train/Samples/train_loss", 2.5, 32);
  monitor.write_event("Train/Samples/lr", 1e-3, 32);
  monitor.flush();
  monitor.write_event("Train/Samples/train_loss", 1.25, 64);
  monitor.flush();
  auto events = testing::read_event_file(monitor.path());
  REQUIRE(events.size() == 4);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[0].scalars.empty());
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  struct Expected {
    const char* tag;
    float value;
    int64_t step;
  };
  Expected expected[] = {{"Train/Samples/train_loss", 2.5f, 32},
                         {"Train/Samples/lr", 1e-3f, 32},
                         {"Train/Samples/train_loss", 1.25f, 64}};
  for (int i = 0; i < 3; ++i) {
    const testing::DecodedEvent& event = events[size_t(i) + 1];
    CAPTURE(i);
    CHECK(event.step == expected[i].step);
    REQUIRE(event.scalars.size() == 1);
    CHECK(event.scalars[0].first == expected[i].tag);
    CHECK(event.scalars[0].second == expected[i].value);
    CHECK(event.wall_time <= now);
    CHECK(event.wall_time > now - 60);
  }
  int files = 0;
  for (const auto& entry : fs::directory_iterator(base / "run1")) {
    (void)entry;
    ++files;
  }
  CHECK(files == 1);  // no temporary file left behind
  fs::remove_all(base);
}

TEST_CASE("tensorboard monitor: a folder that cannot be made is an error naming it") {
  namespace fs = std::filesystem;
  fs::path file = fs::temp_directory_path() / ("zt_tensorboard_file_" + std::to_string(getpid()));
  { std::ofstream(file) << "x"; }
  std::string message;
  try {
    observe::TensorboardMonitor monitor(
        {.enabled = true, .output_path = file.string(), .job_name = "run1"});
  } catch (const std::runtime_error& error) {
    message = error.what();
  }
  CHECK(message.starts_with("tensorboard: cannot make the folder " + (file / "run1").string()));
  fs::remove(file);
}
