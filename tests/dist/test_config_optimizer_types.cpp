// The optimizer block's Lamb, OneBitAdam, ZeroOneAdam and OneBitLamb: DeepSpeed's parameter
// names and defaults read, and what cannot run here refused with the reason.
#include <doctest/doctest.h>

#include "core/factory.h"
#include "dist/config_builders.h"
#include "optim/lamb.h"
#include "tests/dist/config_test_helpers.h"

namespace zt::testing {
namespace {

TEST_CASE("Lamb and the compressed-communication optimizers read DeepSpeed's keys") {
  Config lamb = parse(with_batch(R"("optimizer": {"type": "lamb", "params": {"lr": 0.01,
      "max_coeff": 0.3, "min_coeff": 0.08, "weight_decay": 0.1}})"));
  CHECK(lamb.optimizer.type == "Lamb");
  CHECK(lamb.optimizer.max_coeff == 0.3);
  CHECK(lamb.optimizer.min_coeff == 0.08);
  Config onebit = parse(with_batch(R"("optimizer": {"type": "OneBitAdam", "params": {
      "freeze_step": 23, "cuda_aware": true, "comm_backend_name": "mpi"}})"));
  CHECK(onebit.optimizer.type == "OneBitAdam");
  CHECK(onebit.optimizer.freeze_step == 23);
  CHECK(onebit.optimizer.cuda_aware);
  CHECK(onebit.optimizer.comm_backend_name == "mpi");
  CHECK_FALSE(onebit.optimizer.zerotrain_exact_average);
  Config exact = parse(with_batch(R"("optimizer": {"type": "OneBitLamb", "params": {
      "zerotrain_exact_average": true}})"));
  CHECK(exact.optimizer.zerotrain_exact_average);
  Config zero_one = parse(with_batch(R"("optimizer": {"type": "ZeroOneAdam", "params": {
      "var_freeze_step": 7, "var_update_scaler": 3, "local_step_scaler": 5,
      "local_step_clipper": 2}})"));
  CHECK(zero_one.optimizer.var_freeze_step == 7);
  CHECK(zero_one.optimizer.var_update_scaler == 3);
  CHECK(zero_one.optimizer.local_step_scaler == 5);
  CHECK(zero_one.optimizer.local_step_clipper == 2);
  Config lamb1 = parse(with_batch(R"("optimizer": {"type": "OneBitLamb", "params": {
      "coeff_beta": 0.8, "factor_max": 3.0, "factor_min": 0.25, "factor_threshold": 0.2}})"));
  CHECK(lamb1.optimizer.coeff_beta == 0.8);
  CHECK(lamb1.optimizer.factor_max == 3.0);
  CHECK(lamb1.optimizer.factor_min == 0.25);
  CHECK(lamb1.optimizer.factor_threshold == 0.2);
  CHECK(lamb1.optimizer.freeze_step == 100000);  // DeepSpeed's default
}

TEST_CASE("the repository's 1-bit Adam config parses, and make_optimizer builds Lamb") {
  std::vector<std::string> warnings;
  Config onebit = dist::load_config((repository_configs() / "ds_config_onebit_adam.json").string(),
                                    8, &warnings);
  CHECK(warnings.empty());
  CHECK(onebit.optimizer.type == "OneBitAdam");
  CHECK(onebit.optimizer.freeze_step == 100);
  Config lamb = parse(with_batch(R"("optimizer": {"type": "Lamb", "params": {"lr": 0.02,
      "max_coeff": 3.0, "min_coeff": 0.1, "betas": [0.8, 0.9]}})"));
  Tensor weight = zeros({3});
  auto optimizer = dist::make_optimizer(lamb.optimizer, optim::single_group({weight}, 0.5));
  auto* built = dynamic_cast<optim::Lamb*>(optimizer.get());
  REQUIRE(built != nullptr);
  CHECK(built->lr() == 0.02);
  CHECK(built->options().max_coeff == 3.0);
  CHECK(built->options().min_coeff == 0.1);
  CHECK(built->options().beta1 == 0.8);
}

TEST_CASE("what the optimizer types cannot take is refused, naming the key") {
  CHECK(contains(error_of(with_batch(R"("optimizer": {"type": "Lamb", "params": {
      "max_coeff": 0.01, "min_coeff": 0.5}})")),
                 "optimizer.params.min_coeff: expected <= max_coeff 0.01, got 0.5"));
  CHECK(contains(error_of(with_batch(R"("optimizer": {"type": "ZeroOneAdam", "params": {
      "freeze_step": 5}})")),
                 "optimizer.params.freeze_step: unknown parameter for ZeroOneAdam"));
  CHECK(contains(error_of(with_batch(R"("optimizer": {"type": "Adam", "params": {
      "zerotrain_exact_average": true}})")),
                 "optimizer.params.zerotrain_exact_average: unknown parameter for Adam"));
  CHECK(contains(error_of(with_batch(R"("optimizer": {"type": "OneBitAdam", "params": {
      "comm_backend_name": "hccl"}})")),
                 "optimizer.params.comm_backend_name"));
  CHECK(contains(error_of(with_batch(R"("optimizer": {"type": "OneBitAdam", "params": {
      "eps_inside_sqrt": true}})")),
                 "DeepSpeed's compressed optimizers accept it and ignore it"));
}

}  // namespace
}  // namespace zt::testing
