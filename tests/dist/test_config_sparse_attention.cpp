// ds_config.json's sparse_attention block: DeepSpeed's defaults (num_random_blocks 0 for
// bigbird, as its config reader has it), each mode's keys read, a key of another mode warned
// about by name, and one-line errors for a bad mode, direction or combination.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/dist/config_test_helpers.h"

using namespace zt;
using namespace zt::testing;

namespace {

std::string sparse_block(const std::string& members) {
  return with_batch("\"sparse_attention\": {" + members + "}");
}

}  // namespace

TEST_CASE("sparse_attention config: absent, defaults, and every key of a mode read") {
  CHECK(!parse(with_batch("")).sparse_attention.has_value());
  const SparsityConfig defaults = parse(sparse_block("")).sparse_attention.value();
  CHECK(defaults.mode == SparsityMode::fixed);
  CHECK(defaults.block == 16);
  CHECK(!defaults.different_layout_per_head);
  CHECK(defaults.num_local_blocks == 4);
  CHECK(defaults.num_global_blocks == 1);
  CHECK(!defaults.unidirectional);
  CHECK(defaults.num_different_global_patterns == 1);
  CHECK(parse(sparse_block("\"mode\": \"bigbird\"")).sparse_attention->num_random_blocks == 0);

  const SparsityConfig variable =
      parse(sparse_block("\"mode\": \"variable\", \"block\": 32, \"num_random_blocks\": 2, "
                         "\"local_window_blocks\": [2, 8], \"global_block_indices\": [0, 5], "
                         "\"global_block_end_indices\": [2, 7], \"attention\": \"unidirectional\""))
          .sparse_attention.value();
  CHECK(variable.mode == SparsityMode::variable);
  CHECK(variable.block == 32);
  CHECK(variable.num_random_blocks == 2);
  CHECK(variable.local_window_blocks == std::vector<int64_t>{2, 8});
  CHECK(variable.global_block_indices == std::vector<int64_t>{0, 5});
  CHECK(variable.global_block_end_indices == std::vector<int64_t>{2, 7});
  CHECK(variable.unidirectional);

  const SparsityConfig longformer =
      parse(sparse_block("\"mode\": \"bslongformer\", \"num_sliding_window_blocks\": 5"))
          .sparse_attention.value();
  CHECK(longformer.num_sliding_window_blocks == 5);
}

TEST_CASE("sparse_attention config: a key of another mode is warned about by name") {
  std::vector<std::string> warnings;
  const Config config =
      parse(sparse_block(
                "\"mode\": \"fixed\", \"num_sliding_window_blocks\": 9, \"num_local_blockz\": 2"),
            1, &warnings);
  CHECK(config.sparse_attention->num_sliding_window_blocks == 3);  // not read by fixed
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0] ==
        "ds_config.json: sparse_attention.num_sliding_window_blocks: not read by mode \"fixed\" "
        "(DeepSpeed ignores it too); ignored");
  CHECK(warnings[1] ==
        "ds_config.json: sparse_attention.num_local_blockz: unknown key, ignored (did you mean "
        "\"num_local_blocks\"?)");
}

TEST_CASE("sparse_attention config: bad mode, direction, values and combinations") {
  CHECK(error_of(sparse_block("\"mode\": \"strided\"")) ==
        "ds_config.json: sparse_attention.mode: expected one of \"dense\", \"fixed\", "
        "\"variable\", \"bigbird\", \"bslongformer\", got \"strided\"");
  CHECK(error_of(sparse_block("\"attention\": \"sideways\"")) ==
        "ds_config.json: sparse_attention.attention: expected one of \"bidirectional\", "
        "\"unidirectional\", got \"sideways\"");
  CHECK(error_of(sparse_block("\"block\": 0")) ==
        "ds_config.json: sparse_attention.block: expected an integer >= 1, got 0");
  CHECK(error_of(sparse_block("\"mode\": \"variable\", \"local_window_blocks\": []")) ==
        "ds_config.json: sparse_attention.local_window_blocks: expected a non-empty list of "
        "integers >= 1, got []");
  CHECK(error_of(sparse_block("\"num_local_blocks\": 6, \"num_global_blocks\": 4")) ==
        "ds_config.json: sparse_attention.num_local_blocks: 6 must be a multiple of "
        "num_global_blocks (4)");
  CHECK(error_of(sparse_block("\"attention\": \"unidirectional\", "
                              "\"horizontal_global_attention\": true")) ==
        "ds_config.json: sparse_attention.horizontal_global_attention: needs \"attention\": "
        "\"bidirectional\"");
}
