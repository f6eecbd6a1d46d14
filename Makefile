# ZeroTrain build. `make` builds the library, apps, benchmarks and tests; `make test` runs every
# suite and ends with one line "N passed, N failed, N skipped"; `make asan` does the same under
# AddressSanitizer and UndefinedBehaviorSanitizer; `make fuzz` runs the libFuzzer targets of
# the file readers (not part of `make test`); `make deps` installs what is missing.
# CUDA code (cuda/) is compiled when nvcc is found; CUDA=0 turns it off.

MAKEFLAGS += --no-builtin-rules -j$(shell nproc 2>/dev/null || echo 2)
SHELL := /bin/bash

BUILD ?= build
CXX := g++
OPT ?= -O2
SANITIZE ?=
CXXFLAGS := -std=c++20 $(OPT) -g -fopenmp -Wall -Wextra -Werror -Wno-unknown-pragmas -Wno-missing-field-initializers \
            -I. -MMD -MP $(SANITIZE)
LDFLAGS := -fopenmp $(SANITIZE)
# Each linked binary carries the debug information of the whole library (about 100 MB a binary,
# 2.5 GB for a build's 38): the linker compresses it with zstd (2.7x smaller, 0.3 s a link), so
# that a build fits on a small disk (a CI run once filled one). gdb and addr2line read it, and
# programs built from zerotrain.pc get the same flag; the sanitizer builds keep it plain, since
# GCC 12's sanitizer symbolizer reads only zlib-compressed sections.
ifeq ($(SANITIZE),)
DEBUG_COMPRESSION := -Wl,--compress-debug-sections=zstd
endif
LDFLAGS += $(DEBUG_COMPRESSION)
# OpenBLAS built on OpenMP shares our OpenMP thread pool; the pthread build would run a second
# pool that fights it for the cores (measured: 13x slower training on 2 cores).
comma := ,
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_LIBS := $(if $(wildcard $(OPENBLAS_DIR)/libopenblas.so),-L$(OPENBLAS_DIR) -Wl$(comma)-rpath$(comma)$(OPENBLAS_DIR)) -lopenblas
# liburing: the io_uring engine of the NVMe swap files (dist/offload/); protobuf's lite runtime:
# the messages of TensorBoard's event files (observe/tensorboard_event.proto).
LDLIBS := -lfmt $(OPENBLAS_LIBS) -lz -luring -lprotobuf-lite -lpthread
# Open MPI, for dist/ and the multi-rank tests; its headers as system headers so that -Werror
# judges only our code. We call the C API only: no C++ bindings (OMPI_SKIP_MPICXX), mpicc's
# link line (no libmpi_cxx).
MPI_COMPILE_FLAGS := -DOMPI_SKIP_MPICXX $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile 2>/dev/null))
MPI_LINK_FLAGS := $(shell mpicc --showme:link 2>/dev/null)
CXXFLAGS += $(MPI_COMPILE_FLAGS)
LDLIBS += $(MPI_LINK_FLAGS)
# What a program of the core library links (no CUDA library): zerotrain.pc's Libs.
CORE_LDLIBS := $(LDLIBS)

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA ?= $(if $(NVCC),1,0)
# cuda/ (the CUDA backend) goes into its own archive, linked whole so that its static
# registration of the backend runs in every binary; CUDA=0 leaves it out and builds as before.
# One PTX pass per file: SASS for sm_90 (H100/H200) plus compute_90 PTX for later GPUs.
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_CXXFLAGS := -isystem $(CUDA_HOME)/include
NVCCFLAGS := -std=c++20 $(OPT) -g -lineinfo -gencode arch=compute_90,code=[sm_90,compute_90] -I. \
             -Xcompiler -Wall,-Wextra,-Werror,-Wno-unknown-pragmas,-Wno-missing-field-initializers \
             --Werror all-warnings
CUDA_SRCS := $(wildcard cuda/*.cu)
CUDA_CPP_SRCS := $(wildcard cuda/*.cpp)
# comm/nccl_communicator.cpp (device tensors over NCCL) needs the CUDA headers and libraries:
# it goes into the CUDA archive, from which it registers itself (comm/nccl_registry.h), so that
# the core library references no CUDA symbol; its multi-rank test sees ZT_NCCL to use it.
NCCL_SRCS := comm/nccl_communicator.cpp
CUDA_OBJS := $(CUDA_SRCS:%.cu=$(BUILD)/%.cu.o) $(CUDA_CPP_SRCS:%.cpp=$(BUILD)/%.o) \
             $(NCCL_SRCS:%.cpp=$(BUILD)/%.o)
CUDA_LIB := $(BUILD)/libzerotrain_cuda.a

LIB_DIRS := core core/cpu core/ops autograd comm nn models tensor_parallel data optim observe dist dist/zero dist/offload compress quant pipeline inference
LIB_SRCS := $(filter-out $(NCCL_SRCS),$(foreach dir,$(LIB_DIRS),$(wildcard $(dir)/*.cpp)))
# protoc writes the C++ of each .proto into the build folder (included as "observe/X.pb.h").
PROTO_SRCS := $(wildcard observe/*.proto)
PROTO_HEADERS := $(PROTO_SRCS:%.proto=$(BUILD)/%.pb.h)
LIB_OBJS := $(LIB_SRCS:%.cpp=$(BUILD)/%.o) $(PROTO_SRCS:%.proto=$(BUILD)/%.pb.o)
LIB := $(BUILD)/libzerotrain.a
# What binaries link: the CUDA archive first (it uses the core library after it).
ifeq ($(CUDA),1)
LINK_DEPS := $(CUDA_LIB) $(LIB)
LINK_LIBS := -Wl,--whole-archive $(CUDA_LIB) -Wl,--no-whole-archive $(LIB)
CUDA_LDLIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lnccl -lcublasLt -lcublas -lcudart
LDLIBS += $(CUDA_LDLIBS)
else
LINK_DEPS := $(LIB)
LINK_LIBS := $(LIB)
endif

TEST_SRCS := $(filter-out tests/mpi/% tests/faults/%,$(wildcard tests/*.cpp tests/*/*.cpp))
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/tests/unit_tests
# Multi-rank tests (run under mpirun by scripts/run-tests) and the job-failure probe.
MPI_TEST_SRCS := $(filter-out tests/mpi/abort_probe.cpp,$(wildcard tests/mpi/*.cpp))
MPI_TEST_OBJS := $(MPI_TEST_SRCS:%.cpp=$(BUILD)/%.o)
MPI_TEST_BIN := $(BUILD)/tests/mpi_tests
ABORT_PROBE := $(BUILD)/tests/abort_probe

# mnist_train once more with the crash tests' fault handler linked in (tests/faults/): the build
# that scripts/check-checkpoints kills at fault points. The apps themselves have no handler.
FAULT_APPS_DIR := $(BUILD)/fault-apps
FAULT_TRAIN := $(FAULT_APPS_DIR)/mnist_train
FAULT_HANDLER_OBJ := $(BUILD)/tests/faults/env_fault_handler.o

APP_SRCS := $(wildcard apps/*.cpp)
APP_BINS := $(APP_SRCS:%.cpp=%)
BENCH_SRCS := $(wildcard bench/*.cpp)
BENCH_BINS := $(BENCH_SRCS:%.cpp=%)

.PHONY: all lib tests test asan fuzz fuzz-build deps run bench clean format
all: lib tests $(APP_BINS) $(BENCH_BINS)
lib: $(LINK_DEPS)
tests: $(TEST_BIN) $(MPI_TEST_BIN) $(ABORT_PROBE) $(FAULT_TRAIN)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	@echo "  CXX $<"
	@$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/%.pb.cc $(BUILD)/%.pb.h: %.proto
	@mkdir -p $(dir $@)
	@echo "  PROTOC $<"
	@protoc --cpp_out=$(BUILD) $<
# protoc's code is not ours to judge: its header is included as a system header, its source
# compiled without warnings.
$(BUILD)/%.pb.o: $(BUILD)/%.pb.cc
	@echo "  CXX $<"
	@$(CXX) $(CXXFLAGS) -isystem $(BUILD) -w -c $< -o $@
$(BUILD)/observe/tensorboard_monitor.o: CXXFLAGS += -isystem $(BUILD)
$(BUILD)/observe/tensorboard_monitor.o: $(PROTO_HEADERS)
.SECONDARY: $(PROTO_SRCS:%.proto=$(BUILD)/%.pb.cc)

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  AR  $@"
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC $<"
	@$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

# The CPU optimizer kernels must round like the CUDA ones: a multiply and an add are fused
# exactly where the shared arithmetic (core/optimizer_arithmetic.h) says so, never by the
# compiler. Their vector paths are built for their instruction sets and chosen at run time.
# The fuzz build (clang++, FUZZ_CXXFLAGS) compiles the same files with the same flags.
OPTIMIZER_FLAGS := -ffp-contract=off
ifeq ($(shell uname -m),x86_64)
OPTIMIZER_AVX2_FLAGS := -mavx2 -mfma
OPTIMIZER_AVX512_FLAGS := -mavx512f -mfma
endif
$(BUILD)/core/cpu/cpu_optimizer.o: CXXFLAGS += $(OPTIMIZER_FLAGS)
$(BUILD)/core/cpu/cpu_optimizer_lamb.o: CXXFLAGS += $(OPTIMIZER_FLAGS)
$(BUILD)/core/cpu/cpu_optimizer_avx2.o: CXXFLAGS += $(OPTIMIZER_FLAGS) $(OPTIMIZER_AVX2_FLAGS)
$(BUILD)/core/cpu/cpu_optimizer_avx512.o: CXXFLAGS += $(OPTIMIZER_FLAGS) $(OPTIMIZER_AVX512_FLAGS)
# The int8 GEMM's VNNI path (vpdpbusd), chosen at run time where the processor has it.
ifeq ($(shell uname -m),x86_64)
$(BUILD)/core/cpu/cpu_int8_gemm_vnni.o: CXXFLAGS += -mavx512f -mavx512bw -mavx512vnni
endif
# The f32 GELU loops (core/cpu/vector_math.h's tanh) vectorise only when GCC may evaluate both
# sides of a select (no program here reads floating-point exception flags; no result changes),
# and their clones per instruction set round alike only without fused multiply-adds.
$(BUILD)/core/cpu/cpu_gelu_tanh.o: CXXFLAGS += -fno-trapping-math -ffp-contract=off
# cuda/*.cpp and the CUDA benchmark are host code that includes the CUDA runtime headers.
$(BUILD)/cuda/%.o: CXXFLAGS += $(CUDA_CXXFLAGS)
ifeq ($(CUDA),1)
$(BUILD)/bench/cuda_ops.o: CXXFLAGS += $(CUDA_CXXFLAGS) -DZT_CUDA=1
$(BUILD)/comm/nccl_communicator.o $(BUILD)/tests/mpi/test_nccl_communicator.o \
  $(BUILD)/tests/mpi/test_engine_device.o: CXXFLAGS += $(CUDA_CXXFLAGS) -DZT_NCCL=1
endif

$(CUDA_LIB): $(CUDA_OBJS)
	@mkdir -p $(dir $@)
	@echo "  AR  $@"
	@rm -f $@ && ar rcs $@ $^

$(TEST_BIN): $(TEST_OBJS) $(LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $(TEST_OBJS) $(LINK_LIBS) $(LDLIBS) -o $@

$(MPI_TEST_BIN): $(MPI_TEST_OBJS) $(LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $(MPI_TEST_OBJS) $(LINK_LIBS) $(LDLIBS) -o $@

$(ABORT_PROBE): $(BUILD)/tests/mpi/abort_probe.o $(LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $< $(LINK_LIBS) $(LDLIBS) -o $@

$(FAULT_TRAIN): $(BUILD)/apps/mnist_train.o $(FAULT_HANDLER_OBJ) $(LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $(BUILD)/apps/mnist_train.o $(FAULT_HANDLER_OBJ) $(LINK_LIBS) $(LDLIBS) -o $@

$(APP_BINS): apps/%: $(BUILD)/apps/%.o $(LINK_DEPS)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $< $(LINK_LIBS) $(LDLIBS) -o $@
# The apps linked inside a build tree too, so that `make asan` can run them sanitized.
$(BUILD)/bin/%: $(BUILD)/apps/%.o $(LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $< $(LINK_LIBS) $(LDLIBS) -o $@
$(BENCH_BINS): bench/%: $(BUILD)/bench/%.o $(LINK_DEPS)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $< $(LINK_LIBS) $(LDLIBS) -o $@

# The benchmarks linked inside a build tree too, like the apps in $(BUILD)/bin: a second build
# (scripts/gpu-bundle's CUDA build in build/cuda) then leaves the in-tree bench/ binaries alone.
$(BUILD)/bench-bin/%: $(BUILD)/bench/%.o $(LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $< $(LINK_LIBS) $(LDLIBS) -o $@

deps:
	@bash scripts/install-deps

test: deps
	@$(MAKE) --no-print-directory all
	@ZT_MAKE_VARS='BUILD=$(BUILD) CUDA=$(CUDA)' bash scripts/run-tests $(TEST_BIN)

# A separate build tree so that sanitizer objects never mix with the normal ones. Without CUDA:
# the CUDA runtime's device mappings collide with ASan's shadow memory (it needs
# protect_shadow_gap=0), and the sanitizers cannot see into device code anyway.
# -Wno-maybe-uninitialized: at -O1 with the sanitizers GCC 12 reports a false
# maybe-uninitialized inside libstdc++'s <regex>; the normal build keeps the warning.
ASAN_MAKE_VARS := BUILD=build-asan OPT=-O1 CUDA=0 \
  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
  -Wno-maybe-uninitialized"
asan: deps
	@$(MAKE) --no-print-directory $(ASAN_MAKE_VARS) \
	  build-asan/tests/unit_tests build-asan/tests/mpi_tests build-asan/tests/abort_probe \
	  build-asan/fault-apps/mnist_train \
	  $(APP_SRCS:apps/%.cpp=build-asan/bin/%) $(EXAMPLE_SRCS:%.cpp=build-asan/%)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ZT_APPS_DIR=build-asan/bin \
	  ZT_MAKE_VARS='$(ASAN_MAKE_VARS)' bash scripts/run-tests build-asan/tests/unit_tests

# libFuzzer targets (fuzz/) for the IDX, safetensors and ds_config readers, built with clang++
# in their own tree with coverage, ASan and UBSan, each run for FUZZ_SECONDS on a scratch copy
# of its seeds in tests/fuzz/<target>/ (scripts/run-fuzz). The library sources they reach are
# compiled without OpenMP (its pragmas are then inert) and without comm/ and dist/ (MPI), so the
# targets need neither libomp nor MPI at run time.
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := idx safetensors config
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)
FUZZ_LIB_SRCS := $(filter-out data/% dist/% comm/% observe/tensorboard%,$(LIB_SRCS)) data/idx.cpp \
                 $(filter-out dist/config_builders.cpp,$(wildcard dist/config*.cpp)) \
                 dist/json_comments.cpp
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.cpp=$(FUZZ_BUILD)/%.o)
FUZZ_LIB := $(FUZZ_BUILD)/libzerotrain_fuzz.a
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CXXFLAGS := $(filter-out -fopenmp $(OPT),$(CXXFLAGS)) -O1 -fsanitize=fuzzer-no-link \
                 $(FUZZ_SANITIZE)
FUZZ_LDLIBS := -lfmt $(OPENBLAS_LIBS) -lz -lpthread

$(FUZZ_BUILD)/core/cpu/cpu_optimizer.o: FUZZ_CXXFLAGS += $(OPTIMIZER_FLAGS)
$(FUZZ_BUILD)/core/cpu/cpu_optimizer_lamb.o: FUZZ_CXXFLAGS += $(OPTIMIZER_FLAGS)
$(FUZZ_BUILD)/core/cpu/cpu_optimizer_avx2.o: FUZZ_CXXFLAGS += $(OPTIMIZER_FLAGS) \
  $(OPTIMIZER_AVX2_FLAGS)
$(FUZZ_BUILD)/core/cpu/cpu_optimizer_avx512.o: FUZZ_CXXFLAGS += $(OPTIMIZER_FLAGS) \
  $(OPTIMIZER_AVX512_FLAGS)

$(FUZZ_BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	@echo "  CLANG++ $<"
	@clang++ $(FUZZ_CXXFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@echo "  AR  $@"
	@rm -f $@ && ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ_BUILD)/fuzz/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIB)
	@echo "  LD  $@"
	@clang++ -fsanitize=fuzzer $(FUZZ_SANITIZE) $< $(FUZZ_LIB) $(FUZZ_LDLIBS) -o $@

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@command -v clang++ >/dev/null || { echo "make fuzz: needs clang++ with libFuzzer (apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory fuzz-build
	@bash scripts/run-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Open MPI on one small machine: more ranks than cores (--oversubscribe), no pinning of ranks to
# cores (--bind-to none), shared memory between ranks (btl self,vader), waiting ranks yield their
# core (mpi_yield_when_idle), and root allowed (containers and CI run as root).
MPIRUN := mpirun --oversubscribe --bind-to none --mca btl self,vader --mca mpi_yield_when_idle 1 \
          $(if $(filter 0,$(shell id -u)),--allow-run-as-root)

# Trains the MNIST example network on 8 ranks with the DeepSpeed tutorial's config, then
# evaluates the saved model.
run: deps
	@$(MAKE) --no-print-directory all
	$(MPIRUN) -np 8 ./apps/mnist_train --deepspeed --deepspeed_config configs/ds_config.json --epochs 3
	./apps/mnist_eval

bench: all
	@for b in $(BENCH_BINS); do echo "== $$b"; ./$$b || exit 1; done

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf build build-asan $(FUZZ_BUILD) $(APP_BINS) $(BENCH_BINS)

# ---- Examples, `make install` and pkg-config ------------------------------------------------
# examples/*.cpp: the programs the docs quote (scripts/check-docs holds every ```cpp block of the
# docs to a region of an examples/ file and runs them). They are compiled as a user's program
# is: -Wall -Wextra -Werror without the project's -Wno-* flags and without -fopenmp.
EXAMPLE_SRCS := $(wildcard examples/*.cpp)
EXAMPLE_OBJS := $(EXAMPLE_SRCS:%.cpp=$(BUILD)/%.o)
EXAMPLE_BINS := $(EXAMPLE_SRCS:%.cpp=$(BUILD)/%)
USER_CXXFLAGS := -std=c++20 $(OPT) -Wall -Wextra -Werror -I. $(MPI_COMPILE_FLAGS) -MMD -MP \
                 $(SANITIZE)
$(EXAMPLE_OBJS): CXXFLAGS := $(USER_CXXFLAGS)
$(EXAMPLE_BINS): $(BUILD)/examples/%: $(BUILD)/examples/%.o $(LINK_DEPS)
	@echo "  LD  $@"
	@$(CXX) $(LDFLAGS) $< $(LINK_LIBS) $(LDLIBS) -o $@
examples: $(EXAMPLE_BINS)
all: examples

# `make install PREFIX=DIR` (default /usr/local; DESTDIR is honoured): the headers under
# DIR/include/zerotrain/ in the tree's layout, the libraries under DIR/lib, and pkg-config files
# under DIR/lib/pkgconfig: zerotrain.pc (the core library: no CUDA library needed) and, in a
# CUDA build, zerotrain-cuda.pc (the CUDA backend's archive, linked whole so that it registers
# itself for Device::cuda and NCCL, and the CUDA libraries; it requires zerotrain).
PREFIX ?= /usr/local
INSTALL_PREFIX = $(abspath $(PREFIX))
INSTALL_ROOT = $(DESTDIR)$(INSTALL_PREFIX)
ZT_VERSION := 0.1.0
INSTALL_HEADERS := $(filter-out $(NCCL_SRCS:.cpp=.h),$(foreach dir,$(LIB_DIRS),$(wildcard $(dir)/*.h))) \
                   core/backend_kernels.def
ifeq ($(CUDA),1)
INSTALL_HEADERS += $(NCCL_SRCS:.cpp=.h)
endif
# pkg-config's Cflags and Libs: the build's own flags (MPI's headers as system headers, the
# OpenBLAS build that shares OpenMP's threads, sanitizers when the library was built with them).
PC_CFLAGS := -I$${includedir}/zerotrain -I$${includedir} $(MPI_COMPILE_FLAGS)
PC_LIBS := -L$${libdir} -lzerotrain $(LDFLAGS) $(CORE_LDLIBS)
PC_CUDA_LIBS := -Wl,--whole-archive $${libdir}/libzerotrain_cuda.a -Wl,--no-whole-archive \
                $(CUDA_LDLIBS)

# Writes a pkg-config file: $(call write_pc,FILE,NAME,DESCRIPTION,REQUIRES,CFLAGS,LIBS).
define write_pc
	@printf '%s\n' 'prefix=$(INSTALL_PREFIX)' 'includedir=$${prefix}/include' \
	  'libdir=$${prefix}/lib' '' 'Name: $(2)' 'Description: $(3)' 'Version: $(ZT_VERSION)' \
	  'Requires: $(4)' 'Cflags: $(5)' 'Libs: $(6)' >$(1).tmp && mv $(1).tmp $(1)
endef

install: lib
	@echo "  INSTALL $(INSTALL_ROOT)"
	@for header in $(INSTALL_HEADERS); do \
	  install -D -m 644 $$header $(INSTALL_ROOT)/include/zerotrain/$$header || exit 1; done
	@install -d $(INSTALL_ROOT)/lib/pkgconfig
	@install -m 644 $(LINK_DEPS) $(INSTALL_ROOT)/lib/
	$(call write_pc,$(INSTALL_ROOT)/lib/pkgconfig/zerotrain.pc,zerotrain,ZeroTrain: tensors$(comma) autograd$(comma) nn$(comma) optimizers and the ZeRO training engine,,$(PC_CFLAGS),$(PC_LIBS))
ifeq ($(CUDA),1)
	$(call write_pc,$(INSTALL_ROOT)/lib/pkgconfig/zerotrain-cuda.pc,zerotrain-cuda,ZeroTrain: the CUDA backend and the NCCL communicator,zerotrain,-isystem $(CUDA_HOME)/include,$(PC_CUDA_LIBS))
endif

.PHONY: examples install
-include $(EXAMPLE_OBJS:.o=.d)

-include $(LIB_OBJS:.o=.d) $(CUDA_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(MPI_TEST_OBJS:.o=.d) $(BUILD)/tests/mpi/abort_probe.d $(FAULT_HANDLER_OBJ:.o=.d) $(APP_SRCS:%.cpp=$(BUILD)/%.d) $(BENCH_SRCS:%.cpp=$(BUILD)/%.d) \
         $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%.d)
