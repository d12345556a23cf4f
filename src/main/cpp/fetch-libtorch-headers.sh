#!/usr/bin/env bash
# Fetches the C++ headers of libtorch VERSION (default 2.13.0, the version of the org.bytedeco:pytorch preset)
# into CACHE_DIR/libtorch-VERSION/torch/include and prints that directory as the last line of stdout.
#
#   src/main/cpp/fetch-libtorch-headers.sh ~/.cache/autocircuit [2.13.0]
#
# The headers must be exactly the preset's version: headers of another version compile and link, then read
# tensor metadata wrongly at run time. They come from the CPU wheel of PyTorch (the preset jars carry no
# headers): `pip download torch==VERSION+cpu` (through the pip configuration first, which may point at a local
# wheel cache, then the PyTorch CPU index), unzipping only torch/include/*. Idempotent; exits non-zero with a
# message on stderr when it cannot provide verified headers.
set -euo pipefail

cache=${1:?usage: fetch-libtorch-headers.sh CACHE_DIR [VERSION]}
version=${2:-2.13.0}
dest="$cache/libtorch-$version"
include="$dest/torch/include"

log() { echo "[native] $*" >&2; }

# Prints MAJOR.MINOR.PATCH from the headers under $1, or nothing.
header_version() {
  local files=("$1/torch/headeronly/version.h" "$1/torch/csrc/api/include/torch/version.h")
  local major minor patch
  major=$(grep -h '#define TORCH_VERSION_MAJOR' "${files[@]}" 2>/dev/null | awk '{print $3}' | head -1)
  minor=$(grep -h '#define TORCH_VERSION_MINOR' "${files[@]}" 2>/dev/null | awk '{print $3}' | head -1)
  patch=$(grep -h '#define TORCH_VERSION_PATCH' "${files[@]}" 2>/dev/null | awk '{print $3}' | head -1)
  [[ -n "$major" && -n "$minor" && -n "$patch" ]] && echo "$major.$minor.$patch"
}

if [[ -d "$include" && "$(header_version "$include")" == "$version" ]]; then
  echo "$include"
  exit 0
fi

python=$(command -v python3 || command -v python || true)
[[ -n "$python" ]] || { log "python3 not found: cannot run pip to fetch the libtorch $version headers"; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching the libtorch $version headers (torch==$version+cpu wheel, pip) into $dest"
if ! "$python" -m pip download --quiet --no-deps -d "$work/wheel" "torch==$version+cpu" >&2 2>"$work/pip.log"; then
  log "pip with the default configuration failed; trying the PyTorch CPU index"
  if ! "$python" -m pip download --quiet --no-deps --index-url https://download.pytorch.org/whl/cpu \
      -d "$work/wheel" "torch==$version+cpu" >&2 2>>"$work/pip.log"; then
    tail -5 "$work/pip.log" >&2
    log "pip could not download torch==$version+cpu"
    exit 1
  fi
fi
wheel=$(ls "$work"/wheel/torch-*.whl 2>/dev/null | head -1)
[[ -n "$wheel" ]] || { log "pip reported success but left no torch wheel"; exit 1; }

# Only torch/include/* (about 60 MB of the ~190 MB wheel); Python's zipfile, so no unzip tool is needed.
"$python" - "$wheel" "$work/out" <<'EOF'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    members = [n for n in z.namelist() if n.startswith("torch/include/")]
    if not members:
        sys.exit("no torch/include/ in " + wheel)
    z.extractall(out, members)
EOF

found=$(header_version "$work/out/torch/include")
if [[ "$found" != "$version" ]]; then
  log "the wheel's headers say libtorch '${found:-unknown}', expected $version"
  exit 1
fi
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$work/out" "$dest"
log "libtorch $version headers ready in $include"
echo "$include"
