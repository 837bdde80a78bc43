#!/usr/bin/env bash
# Builds whisper-ref (main.c, same folder): "whisper.cpp itself", for comparing
# Peyk's transcription speed against. It is compiled against the whisper.cpp
# sources that whisper-rs-sys vendors (whisper-rs-sys 0.15.0 = whisper.cpp
# 1.8.3), configured like whisper-rs-sys's build.rs configures them for Peyk
# (Release, static, no examples/tests, OpenMP on: Peyk enables whisper-rs's
# "openmp" feature; GGML_NATIVE stays at its default, i.e. -march=native).
#
#   bench/whisper-ref/build.sh
#   target/whisper-ref/whisper-ref -m .peyk/models/ggml-tiny.en.bin \
#       -f .peyk/fixtures/jfk.wav -t 2 -l en
#
# Environment:
#   WHISPER_CPP_DIR   use these whisper.cpp sources instead of looking them up
#   GGML_OPENMP       ON (default, like Peyk) or OFF
#   GGML_*            any other ggml option, passed to cmake as whisper-rs-sys
#                     passes it (e.g. the portable image's GGML_NATIVE=OFF ...)
#   WHISPER_REF_OUT   output folder (default target/whisper-ref)
#   JOBS              parallel compile jobs (default 2)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${WHISPER_REF_OUT:-$root/target/whisper-ref}
build="$out/build"
jobs=${JOBS:-2}
openmp=${GGML_OPENMP:-ON}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (Debian packages)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# The whisper-rs-sys version Peyk locks (Cargo.lock), 0.15.0 when not found.
sys_version=$(awk '/^name = "whisper-rs-sys"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' \
  "$root/Cargo.lock" 2>/dev/null || true)
sys_version=${sys_version:-0.15.0}

locate_sources() {
  if [ -n "${WHISPER_CPP_DIR:-}" ]; then echo "$WHISPER_CPP_DIR"; return; fi
  local dir
  # 1. the cargo registry (where `cargo fetch`/`cargo build` unpacked it)
  for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"whisper-rs-sys-$sys_version"/whisper.cpp; do
    if [ -f "$dir/include/whisper.h" ]; then echo "$dir"; return; fi
  done
  # 2. ask cargo (downloads the crate if needed; --locked: never touch Cargo.lock)
  if command -v cargo >/dev/null; then
    (cd "$root" && cargo metadata --format-version 1 --locked) 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "whisper-rs-sys":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "whisper.cpp"))
        break
' || true
  fi
}

src=$(locate_sources)
if [ -z "$src" ] || [ ! -f "$src/include/whisper.h" ]; then
  echo "error: whisper.cpp sources of whisper-rs-sys $sys_version not found;" \
    "run 'cargo fetch' in $root or set WHISPER_CPP_DIR" >&2
  exit 1
fi
version=$(sed -n 's/^project("whisper.cpp" VERSION \([0-9.]*\)).*/\1/p' "$src/CMakeLists.txt")
echo "==> whisper.cpp ${version:-?} from $src"

mkdir -p "$out"
ggml_options=()
while IFS='=' read -r name value; do
  case "$name" in GGML_OPENMP) ;; GGML_*) ggml_options+=("-D$name=$value") ;; esac
done < <(env)
echo "==> configuring (cmake, Release, static, GGML_OPENMP=$openmp) in $build"
cmake -S "$src" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DWHISPER_BUILD_EXAMPLES=OFF \
  -DWHISPER_BUILD_TESTS=OFF \
  -DWHISPER_BUILD_SERVER=OFF \
  -DWHISPER_ALL_WARNINGS=OFF \
  -DWHISPER_ALL_WARNINGS_3RD_PARTY=OFF \
  -DGGML_OPENMP="$openmp" ${ggml_options[@]+"${ggml_options[@]}"} >"$out/cmake.log" 2>&1 ||
  { cat "$out/cmake.log" >&2; echo "error: cmake configure failed" >&2; exit 1; }

echo "==> compiling whisper.cpp (-j$jobs)"
cmake --build "$build" --config Release -j "$jobs" >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log" >&2; echo "error: whisper.cpp build failed (log: $out/build.log)" >&2; exit 1; }

# The static archives the build produced, in link order.
libs=()
for name in whisper ggml ggml-cpu ggml-base; do
  lib=$(find "$build" -name "lib$name.a" -print -quit)
  if [ -z "$lib" ]; then echo "error: lib$name.a not built under $build" >&2; exit 1; fi
  libs+=("$lib")
done
# Any other ggml backend archive (none in a plain CPU build) goes before ggml-base.
extra=()
while IFS= read -r lib; do
  case "$(basename "$lib")" in
    libwhisper.a | libggml.a | libggml-cpu.a | libggml-base.a) ;;
    *) extra+=("$lib") ;;
  esac
done < <(find "$build" -name 'libggml*.a' | sort)

ldflags=(-lstdc++ -lm -lpthread)
# OpenMP: link libgomp when the CPU backend was compiled with it. (No grep -q:
# it would exit early, nm would die of SIGPIPE and pipefail would say "no".)
if nm "${libs[2]}" 2>/dev/null | grep -E ' U (GOMP_|omp_)' >/dev/null; then
  ldflags+=(-fopenmp)
  echo "==> the CPU backend uses OpenMP: linking with -fopenmp (libgomp)"
fi

echo "==> linking $out/whisper-ref"
gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
  -I"$src/include" -I"$src/ggml/include" \
  -o "$out/whisper-ref.tmp" "$here/main.c" \
  "${libs[0]}" "${libs[1]}" "${libs[2]}" ${extra[@]+"${extra[@]}"} "${libs[3]}" "${ldflags[@]}"
mv -f "$out/whisper-ref.tmp" "$out/whisper-ref"
echo "==> built $out/whisper-ref (whisper.cpp ${version:-?})"
