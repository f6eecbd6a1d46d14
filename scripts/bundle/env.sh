# shellcheck shell=bash
# Sourced by bash from the root of a GPU bundle (scripts/gpu-bundle) before its programs run:
# puts the bundle's mpirun first on PATH, points the relocated Open MPI and PMIx at the bundle's
# plugins, help texts and settings, and adds to LD_LIBRARY_PATH the folders where this machine
# keeps the CUDA libraries the bundle does not carry (cuda-libs.txt: cuBLAS, cuDNN, NCCL).
# Sets ZT_BUNDLE_DIR, and ZT_BUNDLE_MISSING to the CUDA libraries found nowhere (empty if none).

ZT_BUNDLE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ZT_BUNDLE_DIR
export PATH="$ZT_BUNDLE_DIR/bin:$PATH"

# Debian's Open MPI was built for /usr, with its plugins in a libdir below it and its settings in
# /etc/openmpi; each install folder has its own variable, and these override the built-in paths
# (the ranks mpirun starts inherit them).
export OPAL_PREFIX=$ZT_BUNDLE_DIR OPAL_EXEC_PREFIX=$ZT_BUNDLE_DIR
export OPAL_BINDIR=$ZT_BUNDLE_DIR/bin OPAL_LIBDIR=$ZT_BUNDLE_DIR/lib
export OPAL_PKGLIBDIR=$ZT_BUNDLE_DIR/lib/openmpi
export OPAL_DATAROOTDIR=$ZT_BUNDLE_DIR/share OPAL_DATADIR=$ZT_BUNDLE_DIR/share
export OPAL_PKGDATADIR=$ZT_BUNDLE_DIR/share/openmpi OPAL_SYSCONFDIR=$ZT_BUNDLE_DIR/etc
# PMIx (mpirun's process-management server) likewise; Debian's pmix-mca-params.conf names its
# plugin folder by absolute path, so the bundle names it here instead.
export PMIX_PREFIX=$ZT_BUNDLE_DIR PMIX_EXEC_PREFIX=$ZT_BUNDLE_DIR PMIX_LIBDIR=$ZT_BUNDLE_DIR/lib
export PMIX_PKGLIBDIR=$ZT_BUNDLE_DIR/lib/pmix PMIX_DATAROOTDIR=$ZT_BUNDLE_DIR/share
export PMIX_DATADIR=$ZT_BUNDLE_DIR/share PMIX_PKGDATADIR=$ZT_BUNDLE_DIR/share/pmix
export PMIX_SYSCONFDIR=$ZT_BUNDLE_DIR/etc
export PMIX_MCA_mca_base_component_path=$ZT_BUNDLE_DIR/lib/pmix

# Folders that may hold the CUDA libraries, in order of preference: ZT_CUDA_LIB_PATH (colon
# separated), the CUDA toolkit, the NVIDIA wheels under the python3 on PATH (PyTorch's cuBLAS,
# cuDNN and NCCL), wheels in common virtual environments, the system's library folder.
zt_bundle_cuda_dirs() {
  tr ':' '\n' <<<"${ZT_CUDA_LIB_PATH:-}"
  local toolkit
  for toolkit in /usr/local/cuda /usr/local/cuda-*; do
    echo "$toolkit/lib64"
    echo "$toolkit/targets/x86_64-linux/lib"
  done
  python3 -c 'import glob, nvidia
for root in nvidia.__path__: print("\n".join(sorted(glob.glob(root + "/*/lib"))))' 2>/dev/null ||
    true
  compgen -G '/opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib' || true
  compgen -G '/usr/local/lib/python3*/dist-packages/nvidia/*/lib' || true
  compgen -G '/usr/lib/python3/dist-packages/nvidia/*/lib' || true
  echo /usr/lib/x86_64-linux-gnu
}

# Each library comes from the first folder that has it; the folders chosen go on the path in
# that same order of preference, so that the loader's search picks those very copies.
ZT_BUNDLE_MISSING=""
zt_bundle_cuda_path=""
if [ -f "$ZT_BUNDLE_DIR/cuda-libs.txt" ]; then
  mapfile -t zt_bundle_candidates < <(zt_bundle_cuda_dirs | awk 'NF && !seen[$0]++')
  declare -A zt_bundle_chosen=()
  while read -r zt_bundle_soname; do
    [ -n "$zt_bundle_soname" ] || continue
    zt_bundle_found=""
    for zt_bundle_dir in "${zt_bundle_candidates[@]}"; do
      if [ -e "$zt_bundle_dir/$zt_bundle_soname" ]; then
        zt_bundle_found=$zt_bundle_dir
        break
      fi
    done
    if [ -z "$zt_bundle_found" ]; then
      ZT_BUNDLE_MISSING+="${ZT_BUNDLE_MISSING:+ }$zt_bundle_soname"
    else
      zt_bundle_chosen[$zt_bundle_found]=1
    fi
  done <"$ZT_BUNDLE_DIR/cuda-libs.txt"
  for zt_bundle_dir in "${zt_bundle_candidates[@]}"; do
    if [ -n "${zt_bundle_chosen[$zt_bundle_dir]:-}" ]; then
      zt_bundle_cuda_path+="${zt_bundle_cuda_path:+:}$zt_bundle_dir"
    fi
  done
  unset zt_bundle_candidates zt_bundle_chosen zt_bundle_soname zt_bundle_found zt_bundle_dir
fi
if [ -n "$zt_bundle_cuda_path" ]; then
  export LD_LIBRARY_PATH="$zt_bundle_cuda_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export ZT_BUNDLE_MISSING
if [ -n "$ZT_BUNDLE_MISSING" ]; then
  echo "zerotrain bundle: CUDA libraries not found on this machine: $ZT_BUNDLE_MISSING" \
    "(set ZT_CUDA_LIB_PATH to their folder)" >&2
fi
unset zt_bundle_cuda_path
unset -f zt_bundle_cuda_dirs
