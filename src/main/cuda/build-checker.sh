#!/usr/bin/env bash
# Builds the standalone checker of the edge_patch CUDA kernels (src/main/cuda/checker/edge_patch_check.cu) with
# nvcc alone: no libtorch, no Maven. SASS for sm_80 (A100) and sm_90 (H100/H200) plus PTX for later GPUs (JIT at
# load), the CUDA runtime and libstdc++ linked statically, so that the binary runs on a machine with only the
# NVIDIA driver. Then it runs the binary's GPU-free self-test and, when a GPU is present, nothing more (run the
# binary yourself; see docs/native.md, "GPU").
#
#   src/main/cuda/build-checker.sh [OUTPUT]     (default target/cuda-checker/edge_patch_check)
#
# Environment: NVCC (default nvcc), CUDA_GENCODE (default below), NVCC_THREADS (parallel gencode compiles, 2).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$root/target/cuda-checker/edge_patch_check}
nvcc=${NVCC:-nvcc}
gencode=${CUDA_GENCODE:-"-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"}
command -v "$nvcc" >/dev/null 2>&1 || { echo "build-checker: nvcc not found (set NVCC or put the CUDA toolkit on PATH)" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
started=$(date +%s)
# shellcheck disable=SC2086
"$nvcc" -std=c++17 -O3 $gencode --threads "${NVCC_THREADS:-2}" -cudart static \
  -Xcompiler -static-libstdc++,-static-libgcc \
  -I "$here" -I "$here/checker" \
  "$here/autocircuit/edge_patch.cu" "$here/checker/edge_patch_check.cu" -o "$out"
echo "build-checker: built $out in $(($(date +%s) - started)) s with $("$nvcc" --version | tail -1)"
echo "build-checker: dynamic dependencies:"
ldd "$out" 2>/dev/null | sed 's/^/  /' || true
"$out" --host-only
