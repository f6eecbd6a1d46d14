// The random streams a checkpoint carries, and the rules that restore them at any layout.
// Each rank's optimizer file records its default generator ("generator": [seed, offset]) and
// the generators seeded per tensor rank that live in its tensor-parallel modules
// ("tensor_rank_generators": {module's name in the whole model: [seed, offset]}); every
// model-states file records the largest offsets any rank of the saving grid had reached
// ("largest_generator_offsets", agreed over the grid at the save), so a loader that reads only
// the files its own piece needs still continues past every number drawn before the save.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/generator.h"
#include "dist/checkpoint_files.h"
#include "dist/model_parallel_checkpoint.h"

namespace zt::dist {

// The largest offsets any rank has reached, of its default generator and of its generators
// seeded per tensor rank (`tensor_rank`, this rank's): all-reduced over `grid_axes` in turn (the
// data group, then each model-parallel axis: the whole grid). Collective.
GeneratorOffsets largest_generator_offsets(const std::map<std::string, Generator*>& tensor_rank,
                                           const std::vector<comm::Communicator*>& grid_axes);

// Adds this rank's generators to its optimizer file's layout: the default generator, and
// `tensor_rank` by the modules' names in the whole model.
void write_generator_record(const std::map<std::string, Generator*>& tensor_rank_by_whole_name,
                            nlohmann::json& layout);
// Appends what write_generator_record wrote to checkpoint.generators and
// checkpoint.tensor_rank_generators (nullopt: a file saved before those were). Throws naming
// `path` and the key when the record is malformed.
void read_generator_record(const nlohmann::json& layout, const std::string& path,
                           ConsolidatedCheckpoint& checkpoint);

nlohmann::json offsets_json(const GeneratorOffsets& offsets);
// The offsets a model-states file's engine state records; nullopt in an older checkpoint.
std::optional<GeneratorOffsets> recorded_largest_offsets(const nlohmann::json& engine_state,
                                                         const std::string& where);

// The default generators the data ranks of the engine at `placement` restore, one per data
// rank of the saved grid (data rank d takes entry d mod their count):
// - the same pipeline and tensor sizes: the states its (stage, tensor rank) saved, so a resume
//   at the same layout draws the same dropout masks as the run that kept going;
// - other sizes: the seeds of the lowest model-parallel rank read, each with the largest offset
//   any saved rank reached (recorded at the save; in an older checkpoint, the largest under
//   that seed among the files read): the resumed run draws no number drawn before the save.
std::vector<SavedGenerator> restored_generators(const UniversalCheckpoint& universal,
                                                const ModelParallelPlacement& placement);

// The per-tensor-rank generators of the engine at `placement` (`local`: its modules' generators
// by local name), per saved data rank (d takes entry d mod their count), by local name:
// - the same tensor size: each module's generator as its tensor rank saved it (found by the
//   module's whole name on whichever stage held it), so a resume is bitwise;
// - another tensor size: the base seed the saved group used for the module of the same whole
//   name (its layer's) plus the new tensor rank (a layer's seeds across a group are
//   consecutive, attention_dropout_seed), at the largest offset any saved rank reached.
// nullopt when the checkpoint predates these generators (they stay as built). Throws naming
// the file when the same tensor size finds no saved state for a module.
std::optional<std::vector<std::map<std::string, SavedGenerator>>> restored_tensor_rank_generators(
    const UniversalCheckpoint& universal, const ModelParallelPlacement& placement,
    const std::map<std::string, Generator*>& local);
// The warning a load of such an older checkpoint (in `tag_dir`) prints.
std::string missing_tensor_rank_generators(const std::string& tag_dir);

}  // namespace zt::dist
