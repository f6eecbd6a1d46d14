# shellcheck shell=bash
# Sourced by scripts/gpu-check and scripts/check-gpu-bundle: finds the bundle that
# scripts/gpu-bundle made from what the user names (its tree, the folder holding its archive,
# or the archive itself), unpacking an archive first.
# open_gpu_bundle PATH SCRATCH: prints the bundle's root folder (unpacked into SCRATCH when PATH
# is or holds zerotrain-gpu.tar.xz); returns non-zero with a message on stderr otherwise.
open_gpu_bundle() {
  local path=$1 scratch=$2 archive=""
  if [ -f "$path/env.sh" ]; then
    (cd "$path" && pwd)
    return
  fi
  if [ -f "$path" ]; then
    archive=$path
  elif [ -f "$path/zerotrain-gpu.tar.xz" ]; then
    archive=$path/zerotrain-gpu.tar.xz
  else
    echo "$path is not a GPU bundle (no env.sh, no zerotrain-gpu.tar.xz): see scripts/gpu-bundle" >&2
    return 1
  fi
  mkdir -p "$scratch"
  # xz where the machine has it, else Python's lzma (a minimal image may lack xz-utils).
  if command -v xz >/dev/null; then
    tar -C "$scratch" -xJf "$archive" || return 1
  else
    python3 -c 'import sys, tarfile
options = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **options)' \
      "$archive" "$scratch" || { echo "cannot unpack $archive: no xz, no python3" >&2; return 1; }
  fi
  [ -f "$scratch/zerotrain-gpu/env.sh" ] || { echo "$archive holds no bundle" >&2; return 1; }
  echo "$scratch/zerotrain-gpu"
}
