// The messages of what goes wrong around stage-3 gathers, in the user's terms (modules and
// parameters): a parameter read while its buffer is released (a module reading another
// module's parameter without declaring it), and a gather that other ranks never joined (a
// forward run on some ranks only). Pure functions of the plan, so tests can read them.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dist/zero/partition_plan.h"

namespace zt::dist {

// "module 'wte' (Embedding)", or "the root module (TiedLM)" for the model itself.
std::string module_label(const std::string& module_name, const std::string& type_name);

// The other ranks of a group of `size`, as ranges: rank 0 of 4 gives "1..3", rank 2 "0..1, 3".
std::string other_ranks_text(int rank, int size);

// Why the parameter of `group` at element `element_offset` has no data: which modules gather
// it (`readers`), which module read it (`running`, "" outside every module's forward), and the
// fix.
std::string describe_released_parameter(const FlatGroup& group, int64_t element_offset,
                                        const std::vector<std::string>& readers,
                                        const std::string& running);

// A gather of `group` (gathered for `module`) that rank `rank` of `size` waited
// `waited_seconds` in without the others joining: what happened and what to do instead.
std::string describe_unjoined_gather(const std::string& module, const FlatGroup& group,
                                     double waited_seconds, int rank, int size);

}  // namespace zt::dist
