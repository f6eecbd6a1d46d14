// offload_optimizer, offload_param, cpu_offload / cpu_offload_param and aio: parsed with
// DeepSpeed's defaults (its pydantic models reject unknown keys, so do we) and checked against
// the stage. Whether nvme_path exists and is writable is known only where the swap folder is
// made (dist/offload/swap_store.h), at engine construction.
#include "dist/config_offload_blocks.h"

#include <fmt/format.h>

namespace zt::dist::config_reading {
namespace {

constexpr const char* kUnknownOffloadKey = "unknown key (DeepSpeed rejects it)";

// The keys both offload blocks share.
void read_common(Section& section, OffloadConfig& offload) {
  section.read_choice("device", offload.device, {"none", "cpu", "nvme"});
  if (const json* path = section.take("nvme_path")) {
    if (!path->is_string() || path->get<std::string>().empty()) {
      section.fail("nvme_path", fmt::format("expected a folder path, got {}", shown(*path)));
    }
    offload.nvme_path = path->get<std::string>();
  }
  section.read_int("buffer_count", offload.buffer_count, kCount);
  section.read_bool("pin_memory", offload.pin_memory);
  if (offload.to_nvme() && offload.nvme_path.empty()) {
    section.fail("nvme_path", "device \"nvme\" needs \"nvme_path\" (the folder of swap files)");
  }
}

void read_offload_optimizer(Section& zero, OffloadConfig& offload, int stage) {
  Section section = zero.section(
      "offload_optimizer", {.auto_keeps_default = true, .unknown_key_error = kUnknownOffloadKey});
  read_common(section, offload);
  section.read_bool("pipeline_read", offload.pipeline_read);
  section.read_bool("pipeline_write", offload.pipeline_write);
  section.read_bool("fast_init", offload.fast_init);
  section.read_number("ratio", offload.ratio, {.min = 0.0, .min_open = true, .max = 1.0});
  section.require_default("super_offload", false);
  section.require_default("cpuadam_cores_perc", 0.8);
  section.finish();
  if (!offload.enabled()) return;
  if (stage < 1) {
    section.fail("device", fmt::format("offloading the optimizer needs ZeRO stage 1, 2 or 3 "
                                       "(zero_optimization.stage is {})",
                                       stage));
  }
  if (offload.ratio < 1.0) {
    // DeepSpeed: partial offload exists for stage 3 only.
    section.fail("ratio", stage < 3 ? fmt::format("{} < 1 (partial offload) needs ZeRO stage 3",
                                                  offload.ratio)
                                    : fmt::format("{} < 1 (partial offload) is not implemented "
                                                  "yet (only 1)",
                                                  offload.ratio));
  }
}

void read_offload_param(Section& zero, OffloadConfig& offload, int stage) {
  Section section = zero.section(
      "offload_param", {.auto_keeps_default = true, .unknown_key_error = kUnknownOffloadKey});
  read_common(section, offload);
  section.read_int("buffer_size", offload.buffer_size, kCount);
  section.read_int("max_in_cpu", offload.max_in_cpu, kNonNegativeCount);
  section.finish();
  if (offload.enabled() && stage < 3) {
    section.fail("device", fmt::format("offloading parameters needs ZeRO stage 3 "
                                       "(zero_optimization.stage is {})",
                                       stage));
  }
}

// A deprecated boolean spelling of an offload block: true means {"device": "cpu"}.
void read_deprecated_flag(Section& zero, std::string_view key, std::string_view replacement,
                          OffloadConfig& offload) {
  bool offload_to_cpu = false;
  if (!zero.read_bool(key, offload_to_cpu)) return;
  if (zero.take(replacement) != nullptr) {
    zero.fail(key, fmt::format("deprecated; set it or \"{}\", not both", replacement));
  }
  if (offload_to_cpu) offload.device = "cpu";
}

}  // namespace

void read_offload_blocks(Section& zero, ZeroConfig& config) {
  bool old_optimizer_flag = false, old_param_flag = false;
  // The deprecated flags first: they must not be mixed with the blocks they stand for.
  read_deprecated_flag(zero, "cpu_offload", "offload_optimizer", config.offload_optimizer);
  read_deprecated_flag(zero, "cpu_offload_param", "offload_param", config.offload_param);
  old_optimizer_flag = config.offload_optimizer.enabled();
  old_param_flag = config.offload_param.enabled();
  if (!old_optimizer_flag) read_offload_optimizer(zero, config.offload_optimizer, config.stage);
  if (!old_param_flag) read_offload_param(zero, config.offload_param, config.stage);
  if (old_optimizer_flag && config.stage < 1) {
    zero.fail("cpu_offload", fmt::format("offloading the optimizer needs ZeRO stage 1, 2 or 3 "
                                         "(zero_optimization.stage is {})",
                                         config.stage));
  }
  if (old_param_flag && config.stage < 3) {
    zero.fail("cpu_offload_param", fmt::format("offloading parameters needs ZeRO stage 3 "
                                               "(zero_optimization.stage is {})",
                                               config.stage));
  }
  bool pin = config.offload_optimizer.pin_memory;
  zero.read_bool("cpu_offload_use_pin_memory", pin);  // the deprecated flag of pin_memory
  config.offload_optimizer.pin_memory = pin;
}

void read_aio(Section& top, AioConfig& aio, const ParseContext& context) {
  Section section = top.section("aio");
  section.read_int("block_size", aio.block_size, kCount);
  section.read_int("queue_depth", aio.queue_depth, kCount);
  // DeepSpeed's docs call it thread_count; its code reads intra_op_parallelism.
  if (section.read_int("thread_count", aio.intra_op_parallelism, kCount) &&
      section.take("intra_op_parallelism") != nullptr) {
    section.fail("thread_count", "the docs' name of \"intra_op_parallelism\"; set one, not both");
  }
  section.read_int("intra_op_parallelism", aio.intra_op_parallelism, kCount);
  section.read_bool("single_submit", aio.single_submit);
  section.read_bool("overlap_events", aio.overlap_events);
  if (section.read_bool("use_gds", aio.use_gds) && aio.use_gds) {
    context.warn(section.path_of("use_gds"),
                 "there is no GPUDirect Storage path; swapping goes through pinned host buffers");
  }
  section.finish();
}

}  // namespace zt::dist::config_reading
