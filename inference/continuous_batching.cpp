// InferenceEngine::generate: the scheduler. Each step admits waiting requests (longest output
// first) while the running batch has room and the KV pool has blocks for their whole length
// (prompt + max_new_tokens), runs one ragged step (the prompts of the newcomers, one token of
// every other sequence), draws one token per sequence and retires the finished ones, returning
// their blocks to the pool.
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <stdexcept>

#include "core/factory.h"
#include "core/generator.h"
#include "inference/inference_engine.h"
#include "inference/paged_kv_cache.h"

namespace zt::inference {

namespace {

struct RunningSequence {
  size_t request = 0;
  int64_t cache_id = 0;
  int64_t reserved_blocks = 0;
  std::vector<int64_t> feed;  // tokens of the next step: the prompt, then the last drawn token
  Generator generator;
  bool done = false;  // static batches: finished, stepping on as padding
};

// The next token from one row of logits: argmax when greedy (the lowest id among equal logits,
// as sampling_probabilities ranks them), else a draw from the request's own generator.
int64_t next_token(std::span<const double> logits, const SamplingOptions& sampling,
                   Generator& generator) {
  if (sampling.temperature == 0.0) {
    return int64_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  std::vector<double> probabilities = sampling_probabilities(logits, sampling);
  Tensor weights =
      from_values(probabilities, {int64_t(probabilities.size())}, {.dtype = DType::f64});
  return int64_t(multinomial(weights, 1, false, &generator).item());
}

// The order in which waiting requests join. Continuous batching admits the longest outputs
// first: every request is waiting from the start, so the short ones then fill the gaps the long
// ones leave, and the last steps are not a few long requests running almost alone (a batch of
// one row costs nearly what a full one does, the weights being read either way). Static batches
// keep the given order: a padded engine's batches are the requests as they came.
std::vector<size_t> admission_order(const std::vector<GenerationRequest>& requests, bool padded) {
  std::vector<size_t> order(requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (padded) return order;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return requests[a].max_new_tokens > requests[b].max_new_tokens;
  });
  return order;
}

}  // namespace

std::vector<Completion> InferenceEngine::generate(const std::vector<GenerationRequest>& requests,
                                                  const TokenCallback& on_token,
                                                  Batching batching) {
  for (size_t i = 0; i < requests.size(); ++i) check_request(i, requests[i]);
  const bool padded = batching == Batching::static_batches;
  const int64_t positions = max_positions();
  PagedKVCache cache = make_cache();
  std::vector<Completion> completions(requests.size());
  std::vector<RunningSequence> running;
  int64_t reserved = 0;
  size_t waiting = 0;
  last_steps_ = 0;
  // The positions a request's sequence reaches; padded, it steps until its batch's longest is
  // done (static batches are requests [k B, (k + 1) B)).
  auto positions_reached = [&](size_t index) {
    int64_t longest = requests[index].max_new_tokens;
    const size_t width = size_t(config_.max_batch_size), first = index - index % width;
    for (size_t j = first; padded && j < std::min(requests.size(), first + width); ++j)
      longest = std::max(longest, requests[j].max_new_tokens);
    return int64_t(requests[index].prompt.size()) + longest;
  };
  for (size_t i = 0; i < requests.size(); ++i) {
    if (positions_reached(i) > positions) {
      throw std::invalid_argument(fmt::format(
          "request {}: in a static batch it steps to {} positions, past the {} it may hold", i,
          positions_reached(i), positions));
    }
  }
  auto blocks_needed = [&](size_t index) { return cache.blocks_for(positions_reached(index)); };
  const std::vector<size_t> order = admission_order(requests, padded);
  while (waiting < requests.size() || !running.empty()) {
    const bool may_admit = !padded || running.empty();
    while (may_admit && waiting < requests.size() &&
           int64_t(running.size()) < config_.max_batch_size &&
           reserved + blocks_needed(order[waiting]) <= cache.shape().blocks) {
      const size_t index = order[waiting];
      RunningSequence joined{.request = index,
                             .cache_id = cache.add_sequence(),
                             .reserved_blocks = blocks_needed(index),
                             .feed = requests[index].prompt,
                             .generator = Generator(requests[index].seed)};
      reserved += joined.reserved_blocks;
      running.push_back(std::move(joined));
      ++waiting;
    }
    if (running.empty()) {
      throw std::runtime_error("inference: the KV-cache pool cannot hold the next request");
    }
    std::vector<RaggedSequence> batch;
    for (const RunningSequence& sequence : running)
      batch.push_back({sequence.cache_id, sequence.feed});
    const Tensor logits = decoder_->step(batch, cache);
    ++last_steps_;
    const std::vector<double> values = logits.to_vector();
    const size_t vocab = size_t(logits.size(-1));
    for (size_t s = 0; s < running.size(); ++s) {
      RunningSequence& sequence = running[s];
      const GenerationRequest& request = requests[sequence.request];
      std::span<const double> row(values.data() + s * vocab, vocab);
      const int64_t token = next_token(row, request.sampling, sequence.generator);
      sequence.feed.assign(1, token);
      if (sequence.done) continue;
      std::vector<int64_t>& out = completions[sequence.request].tokens;
      out.push_back(token);
      sequence.done = int64_t(out.size()) == request.max_new_tokens;
      if (on_token) on_token(sequence.request, token, sequence.done);
    }
    const bool batch_over = std::all_of(running.begin(), running.end(),
                                        [](const RunningSequence& s) { return s.done; });
    // Finished sequences leave at once (padded: only with their whole batch).
    auto leaves = [&](const RunningSequence& sequence) {
      if (!sequence.done || (padded && !batch_over)) return false;
      cache.release(sequence.cache_id);
      reserved -= sequence.reserved_blocks;
      return true;
    };
    running.erase(std::remove_if(running.begin(), running.end(), leaves), running.end());
  }
  return completions;
}

}  // namespace zt::inference
