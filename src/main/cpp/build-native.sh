#!/usr/bin/env bash
# Builds the native kernels library (libjniNativeKernelsLib.so) into the Maven output folder. Called by the
# maven-antrun-plugin in phase process-classes (pom.xml, "native kernels" block); runnable by hand with the same
# environment. It NEVER fails the build: whatever goes wrong (no g++, no pip or network for the headers, a
# compile error) it says so, removes any stale library from the classes folder, and exits 0 -- Java then falls
# back to TorchKernels (see docs/native.md).
#
# Environment (set by the pom):
#   AC_CLASSES    the Maven output folder (target/classes), holding NativeKernelsLib.class
#   AC_CLASSPATH  the compile classpath (javacpp and the pytorch preset jars, for the JavaCPP Builder)
#   AC_BUILD_DIR  scratch folder for objects and logs (target/native)
#   AC_JAVA       the java executable (default: java on PATH)
#   AC_CACHE      cache folder (default ~/.cache/autocircuit): libtorch headers, finished libraries by content
#   AC_HEADERS    optional: a libtorch 2.13.0 include folder to use instead of fetching one
#   AC_WHEELS     optional: folders (colon-separated) holding the torch-2.13.0+cpu wheel (fetch-libtorch-headers.sh)
#   AC_CUDA       auto (default) | off: compile src/main/cuda with nvcc when it is on PATH
#   CXX, NVCC     compilers (default g++, nvcc)
#
# Steps: headers (fetch-libtorch-headers.sh) -> objects and static archive (Makefile, make -j2) -> CUDA kernels
# and their standalone check when nvcc exists -> JNI library (JavaCPP Builder on NativeKernelsLib, linking the
# archive before c10/torch_cpu) -> copy into AC_CLASSES/org/autocircuit/kernels/<platform>/. A finished library
# is kept in AC_CACHE/native/<hash of every input> so that other output folders and later clean builds reuse it.
set -uo pipefail

started=$(date +%s)
say() { echo "[native] $*"; }

: "${AC_CLASSES:?AC_CLASSES is not set}" "${AC_CLASSPATH:?AC_CLASSPATH is not set}" "${AC_BUILD_DIR:?AC_BUILD_DIR is not set}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
java=${AC_JAVA:-java}
cache=${AC_CACHE:-$HOME/.cache/autocircuit}
cuda_mode=${AC_CUDA:-auto}
cxx=${CXX:-g++}
nvcc=${NVCC:-nvcc}
version=2.13.0

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x86_64 ;;
  Linux-aarch64) platform=linux-arm64 ;;
  *) platform="" ;;
esac
lib_dir="$AC_CLASSES/org/autocircuit/kernels/$platform"
lib="$lib_dir/libjniNativeKernelsLib.so"

skip() {
  say "SKIPPED: $*"
  [[ -n "$platform" ]] && rm -f "$lib"
  say "the Java code will use the reference kernels (TorchKernels); -Dnative.skip=true silences this step"
  exit 0
}

[[ -n "$platform" ]] || skip "platform $(uname -s)-$(uname -m) is not supported (linux-x86_64, linux-arm64)"
command -v "$cxx" >/dev/null 2>&1 || skip "no C++ compiler ('$cxx' not found; set CXX)"
command -v make >/dev/null 2>&1 || skip "make not found"
[[ -f "$AC_CLASSES/org/autocircuit/kernels/NativeKernelsLib.class" ]] || skip "NativeKernelsLib.class not compiled yet"

# ---- headers ----
if [[ -n "${AC_HEADERS:-}" ]]; then
  include=$AC_HEADERS
  [[ -f "$include/ATen/ATen.h" ]] || skip "AC_HEADERS=$include has no ATen/ATen.h"
else
  include=$("$here/fetch-libtorch-headers.sh" "$cache" "$version" | tail -1) ||
    skip "no libtorch $version headers (see the message above; pass -Dnative.wheels=DIR holding the torch-$version+cpu wheel, or -Dnative.headers=DIR)"
fi

# ---- configuration ----
mkdir -p "$AC_BUILD_DIR"
have_nvcc=0
if [[ "$cuda_mode" != off ]] && command -v "$nvcc" >/dev/null 2>&1; then have_nvcc=1; fi
# Linking CUDA into the JNI library needs libtorch's CUDA libraries (the linux-x86_64-gpu preset jar);
# this project depends on the CPU jar only, so normally the CUDA kernels are compiled (and checked) but not linked.
gpu_jar=$(tr ':' '\n' <<<"$AC_CLASSPATH" | grep -E 'pytorch-[^/]*-linux-x86_64-gpu\.jar$' | head -1 || true)
with_cuda=0
if [[ $have_nvcc == 1 && -n "$gpu_jar" ]]; then with_cuda=1; fi
config=cpu
[[ $with_cuda == 1 ]] && config=cuda
javacpp_jars=$(tr ':' '\n' <<<"$AC_CLASSPATH" | grep -E '/javacpp-[^/]*\.jar$' | xargs -r -n1 basename | sort | tr '\n' ' ')

# The key hashes contents and relative paths only, so that every checkout and output folder shares it.
key=$( {
  cd "$root" && find src/main/cpp src/main/cuda -type f \
    \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name Makefile -o -name '*.sh' \) -print0 |
    sort -z | xargs -0 sha256sum
  cd "$root" && sha256sum src/main/java/org/autocircuit/kernels/NativeKernelsLib.java
  "$cxx" --version | head -1
  echo "$include $config $platform $javacpp_jars"
  [[ $with_cuda == 1 ]] && "$nvcc" --version | tail -1
} | sha256sum | cut -c1-16)
cached="$cache/native/$key/libjniNativeKernelsLib.so"

install_cached() {
  mkdir -p "$lib_dir"
  if ! cmp -s "$cached" "$lib"; then cp "$cached" "$lib.tmp.$$" && mv "$lib.tmp.$$" "$lib"; fi
}

if [[ -f "$cached" ]]; then
  install_cached
  say "up to date: $lib (cached build $key, $config)"
  exit 0
fi

# One build at a time per cache (parallel Maven runs in other output folders wait, then reuse the result).
mkdir -p "$cache/native"
exec 9>"$cache/native/.lock"
if command -v flock >/dev/null 2>&1; then flock -w 900 9 || say "could not lock $cache/native/.lock; building anyway"; fi
if [[ -f "$cached" ]]; then
  install_cached
  say "up to date: $lib (built meanwhile by another run, $key)"
  exit 0
fi

say "building the native kernels ($config, libtorch $version headers from $include)"
build="$AC_BUILD_DIR/$config"
log="$AC_BUILD_DIR/build.log"
: >"$log"

# ---- objects: CUDA kernels (ATen-free; whenever nvcc exists, as a check and for the standalone harness) and,
# at the same time, the CPU objects and the static archive ----
cuda_log="$AC_BUILD_DIR/cuda.log"
cuda_pid=""
if [[ $have_nvcc == 1 ]]; then
  make -C "$here" BUILD="$build" TORCH_INCLUDE="$include" NVCC="$nvcc" cuda >"$cuda_log" 2>&1 &
  cuda_pid=$!
  # Linking CUDA in puts the CUDA object into the CPU archive: then the CUDA build must finish first.
  cuda_status=""
  if [[ $with_cuda == 1 ]]; then
    wait "$cuda_pid"
    cuda_status=$?
    [[ $cuda_status == 0 ]] || with_cuda=0
  fi
elif [[ "$cuda_mode" == off ]]; then
  say "CUDA disabled (-Dnative.cuda=off)"
else
  say "nvcc not found: CUDA kernels not compiled (CPU kernels only)"
fi

cuda_vars=()
if [[ $with_cuda == 1 ]]; then
  # The CPU wheel lacks this generated header; a one-line stand-in is enough for c10/cuda/CUDAStream.h.
  if [[ ! -f "$include/c10/cuda/impl/cuda_cmake_macros.h" ]]; then
    mkdir -p "$build/cuda-stub/c10/cuda/impl"
    printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$build/cuda-stub/c10/cuda/impl/cuda_cmake_macros.h"
  fi
  # The CUDA headers (cuda_runtime.h) for g++: nvcc on the PATH is often a symlink or a wrapper script
  # (/usr/local/bin/nvcc exec'ing /usr/local/cuda-13.0/bin/nvcc), so ask nvcc itself where its includes are.
  cuda_include=$("$nvcc" -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -1)
  if [[ ! -f "$cuda_include/cuda_runtime.h" ]]; then
    for candidate in "${CUDA_HOME:-}" "$(dirname "$(readlink -f "$(command -v "$nvcc")")")/.." /usr/local/cuda; do
      if [[ -n "$candidate" && -f "$candidate/include/cuda_runtime.h" ]]; then cuda_include=$candidate/include; break; fi
    done
  fi
  cuda_vars=(WITH_CUDA=1 "CUDA_INCLUDE=-I$cuda_include")
fi
make -C "$here" -j2 BUILD="$build" TORCH_INCLUDE="$include" CXX="$cxx" NVCC="$nvcc" "${cuda_vars[@]}" archive \
  >>"$log" 2>&1
cpu_status=$?

if [[ -n "$cuda_pid" ]]; then
  if [[ -z "$cuda_status" ]]; then
    wait "$cuda_pid"
    cuda_status=$?
  fi
  if [[ $cuda_status == 0 ]]; then
    say "CUDA kernels compiled with $("$nvcc" --version | tail -1 | sed 's/^Build //'); standalone check: $build/cuda/edge_patch_check"
    [[ $with_cuda == 1 ]] ||
      say "CUDA not linked into the JNI library: no libtorch CUDA preset (pytorch linux-x86_64-gpu jar) on the classpath"
  else
    tail -20 "$cuda_log"
    say "CUDA kernels failed to compile (log: $cuda_log); continuing with the CPU kernels only"
  fi
fi
if [[ $cpu_status != 0 ]]; then
  tail -30 "$log"
  skip "the C++ kernels failed to compile (full log: $log)"
fi

# ---- JNI library (JavaCPP Builder) ----
# The archive goes on the command line through -Xcompiler, i.e. before the -l options the Builder appends, so
# that the linker sees our undefined libtorch symbols before it sees c10 and torch_cpu.
jni="$AC_BUILD_DIR/jni"
rm -rf "$jni"
mkdir -p "$jni"
link_resources="/org/bytedeco/pytorch/$platform/"
[[ $with_cuda == 1 ]] && link_resources="/org/bytedeco/pytorch/$platform-gpu/:/org/bytedeco/cuda/$platform/"
builder_args=(
  -cp "$AC_CLASSES" -d "$jni"
  "-Dplatform.includepath=$here:$include:$include/torch/csrc/api/include"
  "-Dplatform.linkresource=$link_resources"
  -Xcompiler "$build/libautocircuit_kernels.a" -Xcompiler -fopenmp
)
# the CUDA objects (in the archive above) need c10_cuda and the CUDA runtime; the redist jar has only the
# versioned libcudart.so.13, hence -l:
[[ $with_cuda == 1 ]] && builder_args+=(-Xcompiler -lc10_cuda -Xcompiler -l:libcudart.so.13)
if ! "$java" -cp "$AC_CLASSPATH" org.bytedeco.javacpp.tools.Builder "${builder_args[@]}" \
    org.autocircuit.kernels.NativeKernelsLib >>"$log" 2>&1; then
  tail -30 "$log"
  skip "the JavaCPP Builder failed to build the JNI library (full log: $log)"
fi
built=$(find "$jni" -name 'libjniNativeKernelsLib.so' | head -1)
[[ -n "$built" ]] || skip "the JavaCPP Builder produced no libjniNativeKernelsLib.so (log: $log)"

mkdir -p "$(dirname "$cached")"
cp "$built" "$cached.tmp.$$" && mv "$cached.tmp.$$" "$cached"
install_cached
say "built $lib in $(($(date +%s) - started)) s ($config, cached as $key)"
