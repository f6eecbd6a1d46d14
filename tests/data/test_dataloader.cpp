// Samplers and the data loader: disjoint equal shares, wrap-around padding, seeded shuffles,
// batch boundaries and normalisation.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "core/factory.h"
#include "data/dataloader.h"
#include "data/sampler.h"

using namespace zt;
using namespace zt::data;

TEST_CASE("seeded_permutation is a permutation, repeatable, and differs across epochs") {
  std::vector<int64_t> first = seeded_permutation(1000, 42, 0);
  std::vector<int64_t> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) CHECK(sorted[size_t(i)] == i);
  CHECK(seeded_permutation(1000, 42, 0) == first);
  CHECK(seeded_permutation(1000, 42, 1) != first);
  CHECK(seeded_permutation(1000, 43, 0) != first);
}

TEST_CASE("DistributedSampler gives N ranks disjoint equal shares that cover the epoch") {
  for (int64_t replicas : {1, 2, 4, 8}) {
    CAPTURE(replicas);
    std::multiset<int64_t> seen;
    for (int64_t rank = 0; rank < replicas; ++rank) {
      DistributedSampler sampler(1000, {.num_replicas = replicas, .rank = rank, .seed = 7});
      sampler.set_epoch(3);
      std::vector<int64_t> mine = sampler.indices();
      CHECK(int64_t(mine.size()) == 1000 / replicas);
      seen.insert(mine.begin(), mine.end());
    }
    CHECK(seen.size() == 1000);
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 1000);
  }
}

TEST_CASE("DistributedSampler pads by wrap-around like PyTorch, or drops the tail") {
  // 10 samples over 4 ranks: 3 each, the first two positions repeated at the end.
  std::vector<std::vector<int64_t>> shares;
  for (int64_t rank = 0; rank < 4; ++rank) {
    shares.push_back(
        DistributedSampler(10, {.num_replicas = 4, .rank = rank, .shuffle = false}).indices());
  }
  CHECK(shares[0] == std::vector<int64_t>{0, 4, 8});
  CHECK(shares[1] == std::vector<int64_t>{1, 5, 9});
  CHECK(shares[2] == std::vector<int64_t>{2, 6, 0});
  CHECK(shares[3] == std::vector<int64_t>{3, 7, 1});
  DistributedSampler dropping(10,
                              {.num_replicas = 4, .rank = 3, .shuffle = false, .drop_last = true});
  CHECK(dropping.indices() == std::vector<int64_t>{3, 7});  // 8 of 10 kept, 2 a rank
  // Tiny dataset, many ranks: the permutation wraps more than once.
  CHECK(DistributedSampler(3, {.num_replicas = 8, .rank = 7, .shuffle = false}).indices() ==
        std::vector<int64_t>{1});
  CHECK_THROWS_AS(DistributedSampler(10, {.num_replicas = 4, .rank = 4}), std::invalid_argument);
}

TEST_CASE("DataLoader cuts an epoch into batches with a smaller last one unless drop_last") {
  std::vector<double> values(10);
  std::vector<int64_t> labels(10);
  for (int i = 0; i < 10; ++i) {
    values[size_t(i)] = i;
    labels[size_t(i)] = i;
  }
  TensorDataset dataset(from_values(values, {10, 1}), from_int64(labels, {10}));
  DataLoader ordered(dataset, {.batch_size = 4, .shuffle = false});
  CHECK(ordered.num_batches() == 3);
  CHECK(ordered.batch(2).targets.to_vector() == std::vector<double>{8, 9});
  CHECK(ordered.batch(0).inputs.sizes() == Shape{4, 1});
  DataLoader dropping(dataset, {.batch_size = 4, .shuffle = false, .drop_last = true});
  CHECK(dropping.num_batches() == 2);
  CHECK_THROWS_AS(dropping.batch(2), std::out_of_range);
  DataLoader shuffled(dataset, {.batch_size = 10, .shuffle = true, .seed = 5});
  std::vector<double> epoch0 = shuffled.batch(0).targets.to_vector();
  shuffled.set_epoch(1);
  std::vector<double> epoch1 = shuffled.batch(0).targets.to_vector();
  CHECK(epoch0 != epoch1);
  std::sort(epoch1.begin(), epoch1.end());
  CHECK(epoch1 == std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Inputs and targets stay paired through the shuffle.
  data::Batch batch = shuffled.batch(0);
  CHECK(batch.inputs.to_vector() == batch.targets.to_vector());
}

TEST_CASE("DataLoader with a distributed sampler reads this rank's share") {
  std::vector<int64_t> labels(12);
  for (int i = 0; i < 12; ++i) labels[size_t(i)] = i;
  TensorDataset dataset(zeros({12, 2}), from_int64(labels, {12}));
  DataLoader rank1(dataset,
                   {.batch_size = 2,
                    .shuffle = false,
                    .distributed = DistributedSamplerOptions{.num_replicas = 3, .rank = 1}});
  CHECK(rank1.num_samples() == 4);
  CHECK(rank1.batch(1).targets.to_vector() == std::vector<double>{7, 10});
}

TEST_CASE("normalize_images maps bytes to (x/255 - mean)/std as [N, 1, H, W] floats") {
  Tensor images = from_values({0, 255, 51, 102}, {1, 2, 2}, {.dtype = DType::u8});
  Tensor normalized = normalize_images(images, 0.5, 0.25);
  CHECK(normalized.sizes() == Shape{1, 1, 2, 2});
  std::vector<double> values = normalized.to_vector();
  CHECK(values[0] == doctest::Approx(-2.0));
  CHECK(values[1] == doctest::Approx(2.0));
  CHECK(values[2] == doctest::Approx((0.2 - 0.5) / 0.25));
  CHECK_THROWS_AS(normalize_images(zeros({2, 2}), 0.5, 0.25), std::invalid_argument);
  CHECK_THROWS_AS(TensorDataset(zeros({3, 2}), zeros({4})), std::invalid_argument);
}
