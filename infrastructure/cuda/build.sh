#!/usr/bin/env bash
# Builds the GPU speech worker (whisper.cpp's CUDA backend, cargo feature
# `cuda`) on a machine without a GPU and without NVIDIA's installers: the
# CUDA 13.0 toolkit comes from PyPI wheels, hash-pinned in requirements.txt
# beside this script. Opt-in, not part of the test suite: on a 2-core machine
# it takes about as long as the whole suite (README "GPU transcription").
#
#   infrastructure/cuda/build.sh [ARCHITECTURES]   default 90 (H100, H200);
#                                                  e.g. "75;80;86;89;90"
#
# Writes, under target/cuda/release/:
#   peyk-worker, peyk-bench-whisper   built with CUDA for ARCHITECTURES
#   cuda/            the CUDA libraries they load (libcudart, libcublas,
#                    libcublasLt; found through the binaries' rpath
#                    $ORIGIN/cuda); copy it beside the binaries when deploying
#   build-seconds    how long the build took
# The host that runs them needs an NVIDIA driver for CUDA 13 (580 or newer),
# which provides libcuda.so.1. Without a GPU they run on the CPU and say so.
#
# Why the extra steps: the wheels hold the toolkit's files but not its
# link-time pieces: the unversioned libcudart.so/libcublas.so names, the
# driver's link stub libcuda.so (the real one comes with the driver) and
# libculibos.a (whisper-rs-sys asks for it; it only matters for static
# cuBLAS, which this build does not use). They are made here, outside the
# run-time folder.
#
# Environment: PEYK_CUDA_DIR (default <repo>/.peyk/cuda), the toolkit's folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
architectures=${1:-90}
cuda_dir=${PEYK_CUDA_DIR:-$root/.peyk/cuda}
target_dir=$root/target/cuda
started=$(date +%s)

# --- The toolkit from PyPI ----------------------------------------------------
wheels=$cuda_dir/wheels
stamp=$cuda_dir/requirements.sha256
wanted=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  rm -rf "$wheels"
  python3 -m pip install --quiet --no-deps --require-hashes --target "$wheels" -r "$here/requirements.txt"
  echo "$wanted" > "$stamp"
fi
toolkit=$wheels/nvidia/cu13
[ -x "$toolkit/bin/nvcc" ] || { echo "no nvcc in $toolkit/bin after installing the wheels" >&2; exit 1; }

# --- Link-time pieces the wheels lack -----------------------------------------
# Made inside the toolkit's folder, where CMake's FindCUDAToolkit and nvcc's
# profile look for them: lib/ for the libraries, lib/stubs/ for the driver.
stubs=$toolkit/lib/stubs
mkdir -p "$stubs"
ln -sfn lib "$toolkit/lib64" # nvcc.profile links from lib64/, the wheels have lib/
for lib in cudart cublas cublasLt; do
  ln -sfn "lib$lib.so.13" "$toolkit/lib/lib$lib.so"
done
# The driver stub: every cu* entry point that cuda.h names, each answering
# CUDA_ERROR_NO_DEVICE (100), under the driver's soname so that the binary
# asks for the real libcuda.so.1 at run time.
if [ ! -f "$stubs/libcuda.so" ]; then
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$toolkit/include/cuda.h" | sort -u \
    | awk '{ printf "int %s(void) { return 100; }\n", $1 }' > "$stubs/libcuda-stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda-stub.c"
fi
[ -f "$toolkit/lib/libculibos.a" ] || ar rc "$toolkit/lib/libculibos.a"

# --- The build ------------------------------------------------------------------
# Same portable CPU level as the Docker images (README "Portable builds"):
# the CPU still runs audio decoding, VAD and whatever the GPU does not.
export PATH=$toolkit/bin:$PATH
export CUDAToolkit_ROOT=$toolkit CUDA_PATH=$toolkit
export CMAKE_CUDA_COMPILER=$toolkit/bin/nvcc CMAKE_CUDA_ARCHITECTURES=$architectures
export GGML_NATIVE=OFF GGML_SSE42=ON GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON GGML_BMI2=ON
export CARGO_TARGET_DIR=$target_dir
# shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader, not the shell
export RUSTFLAGS="-L native=$toolkit/lib -L native=$stubs -C link-arg=-Wl,-rpath,\$ORIGIN/cuda"
cd "$root"
cargo build --release --locked -p peyk-worker -p peyk-bench --bin peyk-worker --bin peyk-bench-whisper \
  --features peyk-speech/cuda

out=$target_dir/release
mkdir -p "$out/cuda"
for lib in cudart cublas cublasLt; do
  cp -u "$toolkit/lib/lib$lib.so.13" "$out/cuda/"
done
seconds=$(( $(date +%s) - started ))
echo "$seconds" > "$out/build-seconds"

# The binary must really hold the CUDA backend and ask for the CUDA libraries.
needed=$(readelf -d "$out/peyk-worker" | grep NEEDED)
for lib in libcudart.so.13 libcublas.so.13 libcuda.so.1; do
  grep -q "$lib" <<<"$needed" || { echo "peyk-worker does not link $lib" >&2; exit 1; }
done
# A host without a GPU (like this one) must still run it, on the CPU: one
# transcription against the stub driver, when the suite's model and audio
# are here.
model=$root/.peyk/models/ggml-tiny.en.bin
audio=$root/.peyk/fixtures/jfk.wav
if [ -f "$model" ] && [ -f "$audio" ] && [ ! -e /dev/nvidiactl ]; then
  ln -sfn libcuda.so "$stubs/libcuda.so.1"
  LD_LIBRARY_PATH=$stubs PEYK_WHISPER_MODELS="tiny.en=$model" LANGUAGE=en "$out/peyk-bench-whisper" "$audio" 1 | tee "$out/cpu-check.txt"
  grep -qi "ask not what your country" "$out/cpu-check.txt" || { echo "the CUDA build did not transcribe on the CPU" >&2; exit 1; }
fi
echo "built for CUDA architectures $architectures in ${seconds} s: $out/peyk-worker, $out/peyk-bench-whisper (libraries in $out/cuda)"
