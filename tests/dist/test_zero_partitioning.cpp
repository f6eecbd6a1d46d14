// The stage-to-switches derivation and the paper's formulas written against the switches:
// expected values come from the ZeRO paper (Figure 1: Psi = 7.5B, N = 64, mixed-precision
// Adam; section 7's volumes), not from the code under test.
#include <doctest/doctest.h>

#include <stdexcept>

#include "dist/zero/expected_footprint.h"
#include "dist/zero/partitioning.h"

using namespace zt;
using namespace zt::dist;

TEST_CASE("each stage adds one switch: P_os at 1, P_g at 2, P_p at 3") {
  struct Row {
    int stage;
    bool optimizer_states, gradients, parameters;
  };
  for (Row row : {Row{0, false, false, false}, Row{1, true, false, false},
                  Row{2, true, true, false}, Row{3, true, true, true}}) {
    CAPTURE(row.stage);
    ZeroPartitioning partitioning = ZeroPartitioning::for_stage(row.stage);
    CHECK(partitioning.optimizer_states == row.optimizer_states);
    CHECK(partitioning.gradients == row.gradients);
    CHECK(partitioning.parameters == row.parameters);
  }
  CHECK_THROWS_AS(ZeroPartitioning::for_stage(4), std::invalid_argument);
  CHECK_THROWS_AS(ZeroPartitioning::for_stage(-1), std::invalid_argument);
}

TEST_CASE("model-state bytes equal the paper's Figure 1 at every stage (Psi 7.5B, N 64)") {
  OptimizerConfig adam;
  adam.type = "Adam";
  int64_t k = optimizer_state_bytes_per_param(adam, /*mixed_precision=*/true);
  CHECK(k == 12);
  const int64_t psi = 7'500'000'000;
  const int64_t expected_totals[] = {120'000'000'000, 31'406'250'000, 16'640'625'000,
                                     1'875'000'000};
  for (int stage = 0; stage <= 3; ++stage) {
    CAPTURE(stage);
    ExpectedModelStateBytes bytes =
        expected_model_state_bytes(ZeroPartitioning::for_stage(stage), psi, 64, 2, k);
    CHECK(bytes.params + bytes.grads + bytes.optim_state == expected_totals[stage]);
  }
}

TEST_CASE("optimizer state per parameter: Adam 8, SGD with momentum 4, plain SGD 0, +4 masters") {
  OptimizerConfig sgd;
  sgd.type = "SGD";
  CHECK(optimizer_state_bytes_per_param(sgd, false) == 0);
  CHECK(optimizer_state_bytes_per_param(sgd, true) == 4);
  sgd.momentum = 0.9;
  CHECK(optimizer_state_bytes_per_param(sgd, false) == 4);
  OptimizerConfig adam;
  adam.type = "AdamW";
  CHECK(optimizer_state_bytes_per_param(adam, false) == 8);
}

TEST_CASE("traffic per step is 2 shares at stages 0-2 and 3 at stage 3 for one micro-batch") {
  using comm::CollectiveKind;
  const double expected_totals[] = {2.0, 2.0, 2.0, 3.0};
  for (int stage = 0; stage <= 3; ++stage) {
    CAPTURE(stage);
    double total = 0.0;
    for (auto& [kind, shares] : expected_step_traffic(ZeroPartitioning::for_stage(stage), 1.0, 1.0))
      total += shares;
    CHECK(total == expected_totals[stage]);
  }
  // Without P_os one all-reduce; with P_g the reduce-scatter runs every micro-batch; with P_p
  // both gathers run every micro-batch too.
  auto stage0 = expected_step_traffic(ZeroPartitioning::for_stage(0), 1.0, 4.0);
  REQUIRE(stage0.size() == 1);
  CHECK(stage0[0] == std::pair{CollectiveKind::all_reduce, 2.0});
  auto stage1 = expected_step_traffic(ZeroPartitioning::for_stage(1), 1.0, 4.0);
  CHECK(stage1 ==
        decltype(stage1){{CollectiveKind::reduce_scatter, 1.0}, {CollectiveKind::all_gather, 1.0}});
  auto stage2 = expected_step_traffic(ZeroPartitioning::for_stage(2), 1.0, 4.0);
  CHECK(stage2 ==
        decltype(stage2){{CollectiveKind::reduce_scatter, 4.0}, {CollectiveKind::all_gather, 1.0}});
  auto stage3 = expected_step_traffic(ZeroPartitioning::for_stage(3), 1.0, 4.0);
  CHECK(stage3 ==
        decltype(stage3){{CollectiveKind::all_gather, 8.0}, {CollectiveKind::reduce_scatter, 4.0}});
}
