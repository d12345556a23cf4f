#!/usr/bin/env bash
# Provides the C++ headers of libtorch VERSION (default 2.13.0, the version of the org.bytedeco:pytorch preset)
# in CACHE_DIR/libtorch-VERSION/torch/include and prints that directory as the last line of stdout.
#
#   src/main/cpp/fetch-libtorch-headers.sh ~/.cache/autocircuit [2.13.0]
#
# The headers must be exactly the preset's version: headers of another version compile and link, then read
# tensor metadata wrongly at run time. The preset jars carry no headers; the CPU wheel of PyTorch does
# (torch/include). Where the wheel comes from, first hit wins:
#   1. a torch-VERSION+cpu wheel file in AC_WHEELS (colon-separated folders), /opt/wheels, or the find-links
#      folders of the pip configuration: no network, no pip run needed (machines of this project's kind keep
#      the wheel in /opt/wheels);
#   2. `pip download torch==VERSION+cpu` through the pip configuration (which may name local indexes), with short
#      time-outs so that a machine without network fails in seconds rather than minutes;
#   3. the PyTorch CPU index, same time-outs, unless AC_OFFLINE=1.
# Only torch/include/* is unpacked (with unzip, python3 or the JDK's jar, whichever exists). Idempotent; exits
# non-zero with a message on stderr when it cannot provide verified headers.
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
mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- 1. a wheel already on this machine ----
folders=()
IFS=: read -r -a given <<<"${AC_WHEELS:-}"
folders+=("${given[@]}" /opt/wheels)
if [[ -n "$python" ]]; then
  # find-links of the pip configuration (file paths or file:// URLs), e.g. "global.find-links='/opt/wheels'"
  while read -r f; do folders+=("${f#file://}"); done < <(
    timeout 20 "$python" -m pip config list 2>/dev/null | sed -n "s/^.*find-links='\(.*\)'$/\1/p" | tr ' ' '\n' || true)
fi
wheel=""
for f in "${folders[@]}"; do
  [[ -n "$f" && -d "$f" ]] || continue
  wheel=$(ls "$f"/torch-"$version"+cpu-*.whl "$f"/torch-"$version"-*.whl 2>/dev/null | head -1 || true)
  [[ -n "$wheel" ]] && break
done

# ---- 2. and 3. pip, with short time-outs ----
pip_download() {
  timeout 600 "$python" -m pip download --quiet --no-deps --timeout 15 --retries 1 -d "$work/wheel" "$@" \
    "torch==$version+cpu" >&2 2>>"$work/pip.log"
}
if [[ -z "$wheel" ]]; then
  [[ -n "$python" ]] || { log "no torch-$version+cpu wheel in ${folders[*]} and no python3 to run pip"; exit 1; }
  log "no torch-$version+cpu wheel in ${folders[*]}; trying pip download (configured indexes)"
  if ! pip_download; then
    if [[ "${AC_OFFLINE:-0}" == 1 ]]; then
      tail -3 "$work/pip.log" >&2
      log "pip could not get torch==$version+cpu and AC_OFFLINE=1 forbids the PyTorch index"
      exit 1
    fi
    log "trying the PyTorch CPU index (https://download.pytorch.org/whl/cpu)"
    if ! pip_download --index-url https://download.pytorch.org/whl/cpu; then
      tail -3 "$work/pip.log" >&2
      log "pip could not download torch==$version+cpu"
      exit 1
    fi
  fi
  wheel=$(ls "$work"/wheel/torch-*.whl 2>/dev/null | head -1 || true)
  [[ -n "$wheel" ]] || { log "pip reported success but left no torch wheel"; exit 1; }
fi
log "unpacking torch/include from $wheel into $dest"

# ---- unpack only torch/include/* (about 60 MB of the 190 MB wheel) ----
mkdir -p "$work/out"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$wheel" 'torch/include/*' -d "$work/out"
elif [[ -n "$python" ]]; then
  "$python" -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("torch/include/")])' \
    "$wheel" "$work/out"
elif command -v jar >/dev/null 2>&1; then
  (cd "$work/out" && jar xf "$wheel" torch/include)
else
  log "no unzip, python3 or jar to unpack $wheel"
  exit 1
fi

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
