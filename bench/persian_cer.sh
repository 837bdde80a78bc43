#!/usr/bin/env bash
# Character error rate of Whisper on Persian speech, per model (README,
# "Persian transcripts"): clinical phrases spoken by espeak-ng's `fa` voice,
# transcribed by Peyk's engine (peyk-bench-whisper, language fa) and
# compared by bench/persian/cer.py. Synthetic speech limits the absolute
# figure; the comparison between models is what counts.
#
#   bench/persian_cer.sh [MODEL...]    default: base base-q8_0, and small
#                                      when ggml-small.bin is in the models
#                                      folder (no registry ships it whole)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh
models_dir=${PEYK_MODELS_DIR:-$root/.peyk/models}
state="$root/.peyk/bench-persian"
mkdir -p "$state"

PHRASES=(
  "بیمار از سردرد و تب از دیروز شکایت دارد"
  "فشار خون بیمار صد و چهل روی نود است"
  "درد قفسه سینه با فعالیت بیشتر می‌شود"
  "بیمار سابقه دیابت و آسم دارد"
  "روزی دو بار یک قرص بعد از غذا مصرف کنید"
  "آزمایش خون و نوار قلب درخواست شد"
)

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(base base-q8_0)
  [ -f "$models_dir/ggml-small.bin" ] && models+=(small)
fi
ensure_packages build-tools
PEYK_MODELS_DIR="$models_dir" infrastructure/models/fetch.sh base base-q8_0
bench_build release

for i in "${!PHRASES[@]}"; do
  wav="$state/phrase-$i.wav"
  [ -f "$wav" ] && continue
  espeak-ng -v fa -s 150 -w "$state/raw.wav" "${PHRASES[$i]}"
  ffmpeg -nostdin -loglevel error -y -i "$state/raw.wav" -ar 16000 -ac 1 -c:a pcm_s16le "$wav"
done

echo "| model | CER | seconds per phrase (median) |"
echo "|---|---|---|"
for model in "${models[@]}"; do
  : > "$state/pairs-$model.tsv"
  : > "$state/seconds-$model"
  for i in "${!PHRASES[@]}"; do
    out=$(PEYK_WHISPER_MODELS="$model=$models_dir/ggml-$model.bin" MODEL=$model LANGUAGE=fa \
      "$bin/peyk-bench-whisper" "$state/phrase-$i.wav" 1 2>/dev/null)
    printf '%s\t%s\n' "${PHRASES[$i]}" "$(echo "$out" | sed -n 's/^text: //p')" >> "$state/pairs-$model.tsv"
    echo "$out" | sed -n 's/^seconds: //p' >> "$state/seconds-$model"
  done
  seconds=$(sort -g "$state/seconds-$model" | awk '{v[NR]=$1} END {printf "%.2f", v[int((NR+1)/2)]}')
  echo "| $model | $(python3 bench/persian/cer.py "$state/pairs-$model.tsv") % | $seconds s |"
done
echo "(transcripts: $state/pairs-MODEL.tsv)"
