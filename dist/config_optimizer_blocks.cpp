// ds_config.json's optimizer and scheduler blocks, read with DeepSpeed's names, defaults and
// rules (fact sheet 1.4 and 1.5); the rest of the file is read by dist/config.cpp.
#include <array>
#include <map>
#include <string>
#include <string_view>

#include "dist/config_optimizer_blocks.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// ---- optimizer (fact sheet 1.4) ----

namespace {

// DeepSpeed's own optimizers and torch.optim's, by lowercase name, that are not implemented.
const std::map<std::string, std::string>& unimplemented_optimizers() {
  static const std::map<std::string, std::string> names = [] {
    std::map<std::string, std::string> by_lowercase;
    for (const char* name :
         {"Adagrad", "Lion", "MuAdam", "MuAdamW", "MuSGD", "Adadelta", "Adamax", "ASGD", "LBFGS",
          "NAdam", "RAdam", "RMSprop", "Rprop", "SparseAdam", "Adafactor"}) {
      by_lowercase[lowercase(name)] = name;
    }
    return by_lowercase;
  }();
  return names;
}

void read_betas(Section& params, std::array<double, 2>& betas) {
  const json* value = params.take("betas");
  if (value == nullptr) return;
  bool valid = value->is_array() && value->size() == 2;
  for (size_t i = 0; valid && i < 2; ++i) {
    valid = (*value)[i].is_number() && kUnitOpenRight.contains((*value)[i].get<double>());
  }
  if (!valid) {
    params.fail("betas",
                fmt::format("expected [beta1, beta2] with each in [0, 1), got {}", shown(*value)));
  }
  betas = {(*value)[0].get<double>(), (*value)[1].get<double>()};
}

void read_adam_params(Section& params, OptimizerConfig& optimizer) {
  params.read_number("lr", optimizer.lr, kNonNegative);
  read_betas(params, optimizer.betas);
  params.read_number("eps", optimizer.eps, kNonNegative);
  params.read_bool("bias_correction", optimizer.bias_correction);
  bool adam_w_mode = true;
  params.read_bool("adam_w_mode", adam_w_mode);
  params.read_bool("torch_adam", optimizer.torch_adam);
  // DeepSpeed: effective_adam_w_mode = (type == AdamW) or adam_w_mode.
  optimizer.adam_w_mode = optimizer.type == "AdamW" || adam_w_mode;
  // torch_adam builds torch.optim.AdamW, whose weight_decay defaults to 0.01 (FusedAdam's: 0).
  if (optimizer.torch_adam && optimizer.adam_w_mode) optimizer.weight_decay = 0.01;
  params.read_number("weight_decay", optimizer.weight_decay, kNonNegative);
  params.require_default("amsgrad", false);
}

void read_sgd_params(Section& params, OptimizerConfig& optimizer) {
  params.read_number("lr", optimizer.lr, kNonNegative);
  params.read_number("momentum", optimizer.momentum, kNonNegative);
  params.read_number("dampening", optimizer.dampening, NumberRange{});
  params.read_number("weight_decay", optimizer.weight_decay, kNonNegative);
  params.read_bool("nesterov", optimizer.nesterov);
  params.require_default("maximize", false);
  if (optimizer.nesterov && (optimizer.momentum <= 0.0 || optimizer.dampening != 0.0)) {
    params.fail("nesterov", fmt::format("needs momentum > 0 and dampening 0, got momentum {} and "
                                        "dampening {}",
                                        optimizer.momentum, optimizer.dampening));
  }
}

// DeepSpeed's Lamb (FusedLamb's constructor arguments).
void read_lamb_params(Section& params, OptimizerConfig& optimizer) {
  params.read_number("lr", optimizer.lr, kNonNegative);
  read_betas(params, optimizer.betas);
  params.read_number("eps", optimizer.eps, kNonNegative);
  params.read_bool("eps_inside_sqrt", optimizer.eps_inside_sqrt);
  params.read_bool("bias_correction", optimizer.bias_correction);
  params.read_number("weight_decay", optimizer.weight_decay, kNonNegative);
  params.read_number("max_coeff", optimizer.max_coeff, kNonNegative);
  params.read_number("min_coeff", optimizer.min_coeff, kNonNegative);
  params.require_default("amsgrad", false);
  if (optimizer.min_coeff > optimizer.max_coeff) {
    params.fail("min_coeff", fmt::format("expected <= max_coeff {}, got {}", optimizer.max_coeff,
                                         optimizer.min_coeff));
  }
}

// The keys of DeepSpeed's OneBitAdam, ZeroOneAdam and OneBitLamb constructors.
void read_compressed_communication_params(Section& params, OptimizerConfig& optimizer) {
  params.read_number("lr", optimizer.lr, kNonNegative);
  read_betas(params, optimizer.betas);
  params.read_number("eps", optimizer.eps, kNonNegative);
  params.read_bool("eps_inside_sqrt", optimizer.eps_inside_sqrt);
  // Accepted as DeepSpeed accepts it: its 1-bit optimizers never apply bias correction.
  params.read_bool("bias_correction", optimizer.bias_correction);
  params.read_number("weight_decay", optimizer.weight_decay, kNonNegative);
  params.require_default("amsgrad", false);
  params.read_bool("cuda_aware", optimizer.cuda_aware);
  params.read_choice("comm_backend_name", optimizer.comm_backend_name, {"nccl", "mpi"});
  params.read_bool("zerotrain_exact_average", optimizer.zerotrain_exact_average);
  if (optimizer.eps_inside_sqrt)
    params.fail("eps_inside_sqrt",
                "DeepSpeed's compressed optimizers accept it and ignore it; "
                "expected false so that the config says what runs");
  if (optimizer.type == "ZeroOneAdam") {
    params.read_int("var_freeze_step", optimizer.var_freeze_step, kNonNegativeCount);
    params.read_int("var_update_scaler", optimizer.var_update_scaler, kCount);
    params.read_int("local_step_scaler", optimizer.local_step_scaler, kCount);
    params.read_int("local_step_clipper", optimizer.local_step_clipper, kCount);
    return;
  }
  params.read_int("freeze_step", optimizer.freeze_step, kNonNegativeCount);
  if (optimizer.type == "OneBitLamb") {
    params.read_number("max_coeff", optimizer.max_coeff, kNonNegative);
    params.read_number("min_coeff", optimizer.min_coeff, kNonNegative);
    params.read_number("coeff_beta", optimizer.coeff_beta, kUnitOpenRight);
    params.read_number("factor_max", optimizer.factor_max, kNonNegative);
    params.read_number("factor_min", optimizer.factor_min, kNonNegative);
    params.read_number("factor_threshold", optimizer.factor_threshold, kNonNegative);
  }
}

}  // namespace

void read_optimizer(Section& top, OptimizerConfig& optimizer) {
  Section section = top.section("optimizer");
  if (!section.present()) return;
  optimizer.present = true;
  const json* type = section.take("type");
  if (type == nullptr)
    section.fail("type",
                 "required (Adam, AdamW, SGD, Lamb, OneBitAdam, ZeroOneAdam or OneBitLamb)");
  if (!type->is_string()) {
    section.fail(
        "type", fmt::format("expected a string (Adam, AdamW, SGD, Lamb, OneBitAdam, ZeroOneAdam or "
                            "OneBitLamb), got {}",
                            shown(*type)));
  }
  std::string type_lowercase = lowercase(type->get<std::string>());
  if (type_lowercase == "adam") {
    optimizer.type = "Adam";
  } else if (type_lowercase == "adamw") {
    optimizer.type = "AdamW";
  } else if (type_lowercase == "sgd") {
    optimizer.type = "SGD";
  } else if (type_lowercase == "lamb") {
    optimizer.type = "Lamb";
  } else if (type_lowercase == "onebitadam") {
    optimizer.type = "OneBitAdam";
  } else if (type_lowercase == "zerooneadam") {
    optimizer.type = "ZeroOneAdam";
  } else if (type_lowercase == "onebitlamb") {
    optimizer.type = "OneBitLamb";
  } else if (auto found = unimplemented_optimizers().find(type_lowercase);
             found != unimplemented_optimizers().end()) {
    section.fail("type", fmt::format("optimizer \"{}\" is not implemented yet (implemented: Adam, "
                                     "AdamW, SGD, Lamb, OneBitAdam, ZeroOneAdam, OneBitLamb)",
                                     found->second));
  } else {
    section.fail("type",
                 fmt::format("unknown optimizer {} (expected Adam, AdamW, SGD, Lamb, OneBitAdam, "
                             "ZeroOneAdam, OneBitLamb)",
                             shown(*type)));
  }
  Section params = section.section(
      "params", {.unknown_key_error = fmt::format("unknown parameter for {} (DeepSpeed passes "
                                                  "params to the optimizer's constructor, which "
                                                  "rejects it)",
                                                  optimizer.type)});
  if (params.present() && params.take("max_grad_norm") != nullptr) {
    params.fail("max_grad_norm",
                "not an optimizer parameter; use the top-level \"gradient_clipping\" instead");
  }
  if (optimizer.is_adam()) {
    read_adam_params(params, optimizer);
  } else if (optimizer.is_lamb()) {
    read_lamb_params(params, optimizer);
  } else if (optimizer.is_compressed_communication()) {
    read_compressed_communication_params(params, optimizer);
  } else {
    read_sgd_params(params, optimizer);
  }
  params.finish();
  section.finish();
}

// ---- scheduler (fact sheet 1.5) ----

namespace {

constexpr std::array<std::string_view, 5> kSchedulers = {
    "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"};
constexpr std::array<std::string_view, 15> kTorchSchedulers = {"LambdaLR",
                                                               "MultiplicativeLR",
                                                               "StepLR",
                                                               "MultiStepLR",
                                                               "ConstantLR",
                                                               "LinearLR",
                                                               "ExponentialLR",
                                                               "SequentialLR",
                                                               "CosineAnnealingLR",
                                                               "ChainedScheduler",
                                                               "ReduceLROnPlateau",
                                                               "CyclicLR",
                                                               "OneCycleLR",
                                                               "CosineAnnealingWarmRestarts",
                                                               "PolynomialLR"};

void read_warmup_type(Section& params, optim::WarmupType& type) {
  std::string text;
  if (params.read_choice("warmup_type", text, {"log", "linear"})) {
    type = optim::parse_warmup_type(text);
  }
}

// A required key: present, or an error naming it.
void require_present(Section& params, std::string_view key, const std::string& scheduler) {
  if (params.take(key) == nullptr) params.fail(key, fmt::format("required for {}", scheduler));
}

void read_warmup_params(Section& params, optim::WarmupLRParams& warmup) {
  params.read_number("warmup_min_lr", warmup.warmup_min_lr, kNonNegative);
  params.read_number("warmup_max_lr", warmup.warmup_max_lr, kNonNegative);
  params.read_int("warmup_num_steps", warmup.warmup_num_steps, kNonNegativeCount);
  read_warmup_type(params, warmup.warmup_type);
}

// total_num_steps must reach past the warm-up (warmup_num_steps counts as at least 2).
void check_total_covers_warmup(Section& params, int64_t total_num_steps, int64_t warmup_steps) {
  int64_t effective_warmup = std::max<int64_t>(2, warmup_steps);
  if (total_num_steps < effective_warmup) {
    params.fail("total_num_steps", fmt::format("expected an integer >= warmup_num_steps {}, got {}",
                                               effective_warmup, total_num_steps));
  }
}

void read_scheduler_params(Section& params, SchedulerConfig& scheduler) {
  params.read_int("last_batch_iteration", scheduler.last_batch_iteration, IntRange{.min = -1});
  const std::string& type = scheduler.type;
  if (type == "WarmupLR" || type == "WarmupDecayLR") {
    read_warmup_params(params, scheduler.warmup);
    if (type == "WarmupDecayLR") {
      require_present(params, "total_num_steps", type);
      params.read_int("total_num_steps", scheduler.total_num_steps, kCount);
      check_total_covers_warmup(params, scheduler.total_num_steps,
                                scheduler.warmup.warmup_num_steps);
    }
  } else if (type == "WarmupCosineLR") {
    optim::WarmupCosineLRParams& cosine = scheduler.warmup_cosine;
    require_present(params, "total_num_steps", type);
    params.read_int("total_num_steps", cosine.total_num_steps, kCount);
    params.read_number("warmup_min_ratio", cosine.warmup_min_ratio, kUnitClosed);
    params.read_int("warmup_num_steps", cosine.warmup_num_steps, kNonNegativeCount);
    params.read_number("cos_min_ratio", cosine.cos_min_ratio, kUnitClosed);
    read_warmup_type(params, cosine.warmup_type);
    check_total_covers_warmup(params, cosine.total_num_steps, cosine.warmup_num_steps);
  } else if (type == "OneCycle") {
    optim::OneCycleParams& cycle = scheduler.one_cycle;
    require_present(params, "cycle_min_lr", type);
    require_present(params, "cycle_max_lr", type);
    params.read_number("cycle_min_lr", cycle.cycle_min_lr, kNonNegative);
    params.read_number("cycle_max_lr", cycle.cycle_max_lr, NumberRange{.min = cycle.cycle_min_lr});
    params.read_int("cycle_first_step_size", cycle.cycle_first_step_size, kCount);
    params.read_int("cycle_second_step_size", cycle.cycle_second_step_size, kCount);
    params.read_int("decay_step_size", cycle.decay_step_size, kNonNegativeCount);
    params.read_number("decay_lr_rate", cycle.decay_lr_rate, kNonNegative);
    params.read_bool("cycle_momentum", cycle.cycle_momentum);
    params.read_number("cycle_min_mom", cycle.cycle_min_mom, kUnitOpenRight);
    params.read_number("cycle_max_mom", cycle.cycle_max_mom, kUnitOpenRight);
    params.read_number("decay_mom_rate", cycle.decay_mom_rate, kNonNegative);
    // Stair counts are in DeepSpeed's signature but unused by its formulas.
    int64_t unused_stair_count = 0;
    params.read_int("cycle_first_stair_count", unused_stair_count, kNonNegativeCount);
    params.read_int("cycle_second_stair_count", unused_stair_count, kNonNegativeCount);
  } else {
    optim::LRRangeTestParams& range_test = scheduler.lr_range_test;
    params.read_number("lr_range_test_min_lr", range_test.lr_range_test_min_lr, kNonNegative);
    params.read_int("lr_range_test_step_size", range_test.lr_range_test_step_size, kCount);
    params.read_number("lr_range_test_step_rate", range_test.lr_range_test_step_rate, kNonNegative);
    params.read_bool("lr_range_test_staircase", range_test.lr_range_test_staircase);
  }
}

}  // namespace

void read_scheduler(Section& top, SchedulerConfig& scheduler) {
  Section section = top.section("scheduler");
  if (!section.present()) return;
  scheduler.present = true;
  const json* type = section.take("type");
  if (type == nullptr)
    section.fail("type", fmt::format("required ({})", fmt::join(kSchedulers, ", ")));
  std::string type_lowercase = type->is_string() ? lowercase(type->get<std::string>()) : "";
  auto matches = [&](std::string_view name) { return lowercase(name) == type_lowercase; };
  if (auto found = std::find_if(kSchedulers.begin(), kSchedulers.end(), matches);
      found != kSchedulers.end()) {
    scheduler.type = std::string(*found);
  } else if (auto torch = std::find_if(kTorchSchedulers.begin(), kTorchSchedulers.end(), matches);
             torch != kTorchSchedulers.end()) {
    section.fail("type", fmt::format("torch scheduler \"{}\" is not implemented yet (implemented: "
                                     "{})",
                                     *torch, fmt::join(kSchedulers, ", ")));
  } else {
    section.fail("type", fmt::format("unknown scheduler {} (expected {})", shown(*type),
                                     fmt::join(kSchedulers, ", ")));
  }
  Section params = section.section(
      "params", {.unknown_key_error = fmt::format("unknown parameter for {} (DeepSpeed passes "
                                                  "params to the scheduler's constructor, which "
                                                  "rejects it)",
                                                  scheduler.type)});
  read_scheduler_params(params, scheduler);
  params.finish();
  section.finish();
}

}  // namespace zt::dist::config_reading
