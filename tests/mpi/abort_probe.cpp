// A job that fails on purpose, for scripts/run-tests: the job must end (non-zero, promptly)
// with the failing rank's error printed, never hang. Modes:
//   throw                  rank 1 throws mid-step while the other ranks wait in an all_reduce
//   signal                 rank 1 dies from SIGKILL mid-step while the others wait in an
//                          all_reduce
//   every-rank             every rank throws the same error (a config error): one line, rank 0's
//   stage3-eval-on-rank-0  after a stage-3 training step, rank 0 alone runs a forward (an
//                          evaluation on rank 0 only) while the others wait in a barrier: its
//                          first gather waits stage3_gather_timeout (2 s) and ends the job
//   offload-full-disk      offload_optimizer "nvme" on a small tmpfs: after a step, rank 1
//                          fills the disk and punches holes in its swap files, so the next
//                          step's write back of its optimizer state meets ENOSPC and ends the
//                          job with one line naming the file (prints "tmpfs refused" and
//                          fails where mounting is not allowed)
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "comm/mpi_runtime.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "nn/nn.h"

namespace {

class Classifier final : public zt::nn::Module {
 public:
  Classifier() {
    fc1 = register_module("fc1", std::make_shared<zt::nn::Linear>(6, 5));
    fc2 = register_module("fc2", std::make_shared<zt::nn::Linear>(5, 3));
  }
  std::string type_name() const override { return "Classifier"; }

 protected:
  zt::Tensor forward(const zt::Tensor& x) override { return (*fc2)(zt::tanh((*fc1)(x))); }

 private:
  std::shared_ptr<zt::nn::Linear> fc1, fc2;
};

int evaluate_on_rank_0_only(zt::comm::MpiCommunicator& world) {
  std::string text = "{\"train_batch_size\": " + std::to_string(2 * world.size()) +
                     R"(, "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
      "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0,
                            "stage3_gather_timeout": 2}})";
  zt::dist::Config config = zt::dist::parse_config(text, "abort_probe", world.size(), nullptr);
  zt::manual_seed(1);
  zt::dist::Engine engine(config, std::make_shared<Classifier>(), world);
  zt::Tensor inputs = zt::randn({2, 6});
  zt::Tensor targets = zt::from_int64(std::vector<int64_t>{0, 2}, {2});
  engine.backward(zt::cross_entropy(engine.forward(inputs), targets));
  engine.step();
  if (world.rank() == 0) {
    zt::autograd::NoGradGuard evaluating;
    engine.eval();
    engine.forward(inputs);
  }
  world.barrier();
  std::fprintf(stderr, "abort_probe: rank %d finished the evaluation, which it should not\n",
               world.rank());
  return 0;
}

// Rank 1's swap files stay open (so does a filler file on the same tmpfs) while rank 0 detaches
// the mount, which then lives only as long as the job: an aborted job leaves nothing mounted.
int offload_full_disk(zt::comm::MpiCommunicator& world) {
  zt::Tensor pid = zt::full({1}, double(getpid()), {.dtype = zt::DType::f64});
  world.broadcast(pid, 0);
  std::string folder = "/tmp/zt-abort-probe-full-" + std::to_string(int64_t(pid.item()));
  zt::Tensor mounted = zt::zeros({1}, {.dtype = zt::DType::f64});
  if (world.rank() == 0) {
    std::filesystem::create_directories(folder);
    if (::mount("tmpfs", folder.c_str(), "tmpfs", 0, "size=1m") == 0) zt::ops::fill_(mounted, 1.0);
  }
  world.broadcast(mounted, 0);
  if (mounted.item() == 0.0) throw std::runtime_error("abort_probe: tmpfs refused");
  std::string text = "{\"train_batch_size\": " + std::to_string(2 * world.size()) +
                     R"(, "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
      "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "nvme",
                            "nvme_path": ")" +
                     folder + "\"}}}";
  zt::dist::Config config = zt::dist::parse_config(text, "abort_probe", world.size(), nullptr);
  zt::manual_seed(1);
  zt::dist::Engine engine(config, std::make_shared<Classifier>(), world);
  std::vector<int> held;  // rank 1: the filler, then its swap files
  if (world.rank() == 1) {
    held.push_back(::open((folder + "/filler").c_str(), O_WRONLY | O_CREAT, 0600));
    std::string mine = folder + "/zerotrain_swap/rank1/optimizer";
    for (const auto& entry : std::filesystem::directory_iterator(mine))
      held.push_back(::open(entry.path().c_str(), O_RDWR));
  }
  world.barrier();
  if (world.rank() == 0) {
    ::umount2(folder.c_str(), MNT_DETACH);
    std::filesystem::remove(folder);
  }
  zt::Tensor inputs = zt::randn({2, 6});
  zt::Tensor targets = zt::from_int64(std::vector<int64_t>{0, 2}, {2});
  for (int step = 0; step < 2; ++step) {
    if (step == 1 && world.rank() == 1) {
      // Holes first: punching frees the pages the filler then takes.
      for (size_t i = 1; i < held.size(); ++i)
        ::fallocate(held[i], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20);
      std::vector<char> block(65536, 1);
      while (::write(held[0], block.data(), block.size()) > 0) {
      }
    }
    engine.backward(zt::cross_entropy(engine.forward(inputs), targets));
    engine.step();
  }
  std::fprintf(stderr, "abort_probe: rank %d trained on a full disk, which it should not\n",
               world.rank());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view mode = argc > 1 ? argv[1] : "throw";
  return zt::comm::run_distributed_main(argc, argv, [mode](zt::comm::MpiRuntime& runtime) {
    zt::comm::MpiCommunicator& world = runtime.world();
    if (mode == "every-rank")
      throw std::invalid_argument("abort_probe: ds_config.json: train_batch_size: expected > 0");
    if (mode == "stage3-eval-on-rank-0") return evaluate_on_rank_0_only(world);
    if (mode == "offload-full-disk") return offload_full_disk(world);
    zt::Tensor gradients = zt::ones({17});
    for (int step = 0; step < 3; ++step) {
      if (step == 2 && world.rank() == 1) {
        if (mode == "signal") std::raise(SIGKILL);
        throw std::runtime_error("abort_probe: rank 1 failed in step 2");
      }
      world.all_reduce(gradients);
    }
    std::fprintf(stderr, "abort_probe: rank %d finished, which it should not\n", world.rank());
    return 0;
  });
}
