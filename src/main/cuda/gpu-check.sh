#!/usr/bin/env bash
# The one command a GPU machine runs to check the CUDA kernels: from a copy of this working tree that carries the
# checker built here (target/cuda-checker/edge_patch_check, by build-checker.sh), with only the NVIDIA driver, no
# network, no Maven or JVM. It prints the machine's GPU, runs every case of the checker (correctness of every kernel
# and dtype, then GB/s beside the device's peak) under a time limit, and keeps the output.
#
#   src/main/cuda/gpu-check.sh [SECONDS]     (default 170: the whole run must fit in 3 minutes)
#
# Output: the checker's report on stdout and in $OUT/edge_patch_check.txt (OUT defaults to target/cuda-checker).
# Exit code: the checker's (0 all OK, 1 a mismatch, 2 an error, 3 no CUDA device), 124 when it ran out of time,
# 4 when the binary is missing.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
limit=${1:-170}
bin=${CHECKER:-$root/target/cuda-checker/edge_patch_check}
out=${OUT:-$root/target/cuda-checker}
mkdir -p "$out"
report="$out/edge_patch_check.txt"
if [[ ! -x "$bin" ]]; then
  echo "gpu-check: $bin not found; build it where nvcc is (src/main/cuda/build-checker.sh) and bring target/cuda-checker along" >&2
  exit 4
fi
{
  echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  command -v nvidia-smi >/dev/null 2>&1 &&
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader 2>&1 | sed 's/^/gpu-check: /'
  echo "gpu-check: $bin ($(stat -c %s "$bin") bytes), dynamic dependencies:"
  ldd "$bin" 2>&1 | sed 's/^/  /'
} | tee "$report"
started=$(date +%s.%N)
timeout --signal=TERM --kill-after=10 "$limit" "$bin" 2>&1 | tee -a "$report"
status=${PIPESTATUS[0]}
elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
echo "gpu-check: exit $status after $elapsed s (limit $limit s); report in $report" | tee -a "$report"
exit "$status"
