// SubGroupSwapper: for_each over swapped sub-groups gives bitwise the values of the same update
// done on in-memory copies, with every pipelining choice and engine; while sub-group g is
// updated, g+1's read and g-1's write are in flight exactly as configured; and a buffer_count
// too small for the pipeline is refused naming the key, the minimum and why.
#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/factory.h"
#include "dist/offload/sub_group_swapper.h"
#include "tests/dist/swap_test_helpers.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::offload;
using namespace zt::testing;

namespace {

const char* const kKey = "zero_optimization.offload_optimizer.nvme_path";
const std::vector<int64_t> kNumels{1000, 4097, 33, 70001, 2};
constexpr int kTensors = 3;

dist::AioConfig small_blocks() {
  dist::AioConfig aio;
  aio.block_size = 32 * 1024;
  aio.queue_depth = 4;
  return aio;
}

std::vector<float> random_floats(int64_t count, uint32_t seed) {
  std::vector<uint8_t> bytes = random_bytes(count * 4, seed);
  std::vector<float> values(static_cast<size_t>(count));
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(bytes[4 * i] - 128) / 16.0f;
  return values;
}

// An Adam-like update of three arrays, in place: what for_each and the reference both run.
void update_arrays(size_t g, float* weight, float* moment, float* variance, int64_t numel) {
  for (int64_t i = 0; i < numel; ++i) {
    moment[i] = 0.9f * moment[i] + 0.1f * weight[i];
    variance[i] = 0.99f * variance[i] + 0.01f * weight[i] * weight[i];
    weight[i] -= 0.001f * float(g + 1) * moment[i] / (variance[i] + 1.0f);
  }
}

std::vector<Tensor> tensors_of(const std::vector<std::vector<float>>& arrays) {
  std::vector<Tensor> tensors;
  for (const std::vector<float>& array : arrays) {
    Tensor tensor = empty({int64_t(array.size())});
    std::memcpy(tensor.raw_data(), array.data(), array.size() * 4);
    tensors.push_back(tensor);
  }
  return tensors;
}

bool tensor_equals(const Tensor& tensor, const std::vector<float>& expected) {
  return std::memcmp(tensor.raw_data(), expected.data(), expected.size() * 4) == 0;
}

struct PipelineChoice {
  bool read, write;
};
const PipelineChoice kPipelineChoices[] = {
    {false, false}, {true, false}, {false, true}, {true, true}};

}  // namespace

TEST_CASE("for_each over swapped sub-groups equals the same updates on in-memory copies") {
  for (IoEngineChoice engine : engines_here()) {
    for (PipelineChoice pipeline : kPipelineChoices) {
      CAPTURE(engine_name(engine));
      CAPTURE(pipeline.read);
      CAPTURE(pipeline.write);
      ScratchFolder scratch;
      SwapStore store(scratch.path(), kKey, "optimizer", 0, small_blocks(), engine);
      SubGroupSwapper swapper(store, kNumels, kTensors, 9, pipeline.read, pipeline.write);
      std::vector<std::vector<std::vector<float>>> reference;  // [g][tensor][i]
      for (size_t g = 0; g < kNumels.size(); ++g) {
        reference.push_back({});
        for (int t = 0; t < kTensors; ++t)
          reference[g].push_back(random_floats(kNumels[g], uint32_t(10 * g + t)));
        swapper.store(g, tensors_of(reference[g]));
      }
      for (int pass = 0; pass < 2; ++pass) {
        swapper.for_each([](size_t g, const std::vector<Tensor>& values) {
          update_arrays(g, values[0].data_ptr<float>(), values[1].data_ptr<float>(),
                        values[2].data_ptr<float>(), values[0].numel());
        });
        for (size_t g = 0; g < kNumels.size(); ++g)
          update_arrays(g, reference[g][0].data(), reference[g][1].data(), reference[g][2].data(),
                        kNumels[g]);
      }
      for (size_t g = 0; g < kNumels.size(); ++g) {
        std::vector<Tensor> loaded = tensors_of(reference[g]);
        for (Tensor& tensor : loaded) std::memset(tensor.raw_data(), 0, tensor.nbytes());
        swapper.load(g, loaded);
        for (int t = 0; t < kTensors; ++t)
          CHECK_MESSAGE(tensor_equals(loaded[size_t(t)], reference[g][size_t(t)]), "g ", g,
                        " tensor ", t);
      }
      int64_t bytes_per_pass = 0;
      for (int64_t numel : kNumels) bytes_per_pass += numel * 4 * kTensors;
      CHECK(swapper.stats().bytes_read == 3 * bytes_per_pass);     // 2 passes + the loads
      CHECK(swapper.stats().bytes_written == 3 * bytes_per_pass);  // the stores + 2 passes
      CHECK(swapper.pipeline_stats().passes == 2);
    }
  }
}

TEST_CASE("while sub-group g is updated, g+1 is being read and g-1 written as configured") {
  for (PipelineChoice pipeline : kPipelineChoices) {
    CAPTURE(pipeline.read);
    CAPTURE(pipeline.write);
    ScratchFolder scratch;
    SwapStore store(scratch.path(), kKey, "optimizer", 0, small_blocks());
    SubGroupSwapper swapper(store, kNumels, kTensors, 9, pipeline.read, pipeline.write);
    for (size_t g = 0; g < kNumels.size(); ++g) {
      std::vector<Tensor> zeros_of_g;
      for (int t = 0; t < kTensors; ++t) zeros_of_g.push_back(zeros({kNumels[g]}));
      swapper.store(g, zeros_of_g);
    }
    std::vector<size_t> reads_during, writes_during;
    swapper.for_each([&](size_t, const std::vector<Tensor>&) {
      reads_during.push_back(store.pending_reads());
      writes_during.push_back(store.pending_writes());
    });
    size_t count = kNumels.size();
    for (size_t g = 0; g < count; ++g) {
      CAPTURE(g);
      // A ticket not yet waited: its transfer may still be moving bytes into or out of buffers
      // other than g's, which is what lets I/O overlap the update.
      CHECK(reads_during[g] == (pipeline.read && g + 1 < count ? size_t(kTensors) : 0));
      // g-2's write is waited only when its buffers take g+1's read; the last sub-group reads
      // nothing, so there both earlier writes may still be in flight.
      size_t writes_expected = pipeline.write && g > 0 ? size_t(kTensors) : 0;
      if (pipeline.write && pipeline.read && g > 1 && g + 1 == count) writes_expected *= 2;
      CHECK(writes_during[g] == writes_expected);
    }
    CHECK(store.pending_reads() + store.pending_writes() == 0);
  }
}

TEST_CASE("a buffer_count too small for the pipeline is refused with the minimum and why") {
  ScratchFolder scratch;
  SwapStore store(scratch.path(), kKey, "optimizer", 0, small_blocks());
  CHECK(error_of([&] { SubGroupSwapper(store, kNumels, 3, 4, true, true); }) ==
        "zero_optimization.offload_optimizer.buffer_count: expected at least 9, got 4 (3 swapped "
        "tensors per sub-group x 3 sub-group(s) in host buffers at once: the one being updated, "
        "the next one being read (pipeline_read), the previous one being written "
        "(pipeline_write))");
  CHECK(error_of([&] { SubGroupSwapper(store, kNumels, 3, 2, false, false); }) ==
        "zero_optimization.offload_optimizer.buffer_count: expected at least 3, got 2 (3 swapped "
        "tensors per sub-group x 1 sub-group(s) in host buffers at once: the one being updated)");
  CHECK(SubGroupSwapper::min_buffer_count(3, true, false) == 6);
  CHECK_NOTHROW(SubGroupSwapper(store, kNumels, 3, 4, false, false));  // DeepSpeed's default
}

TEST_CASE("an update that throws, or a sub-group never stored, ends for_each with no I/O left") {
  ScratchFolder scratch;
  SwapStore store(scratch.path(), kKey, "optimizer", 0, small_blocks());
  SubGroupSwapper swapper(store, kNumels, kTensors, 9, true, true);
  CHECK(error_of([&] { swapper.for_each([](size_t, const std::vector<Tensor>&) {}); }) ==
        "swap file " + store.path_of("subgroup0.tensor0") +
            ": No such file or directory (read before it was ever written)");
  for (size_t g = 0; g < kNumels.size(); ++g) {
    std::vector<Tensor> ones_of_g;
    for (int t = 0; t < kTensors; ++t) ones_of_g.push_back(ones({kNumels[g]}));
    swapper.store(g, ones_of_g);
  }
  CHECK(error_of([&] {
          swapper.for_each([](size_t g, const std::vector<Tensor>&) {
            if (g == 2) throw std::runtime_error("update failed at sub-group 2");
          });
        }) == "update failed at sub-group 2");
  CHECK(store.pending_reads() + store.pending_writes() == 0);
  CHECK(error_of([&] { swapper.store(1, {ones({kNumels[1]})}); }) ==
        "SubGroupSwapper::store: sub-group 1: expected 3 tensors, got 1");
}
