#!/usr/bin/env bash
# The transcription benchmark (README, "Benchmarks"). For each model
# (default: tiny.en and base), on jfk.wav (11 s of real speech), THREADS
# threads (default 2):
#   1. whisper.cpp itself: bench/whisper-ref (built from the very sources
#      and options Peyk links), a whole run: model load + transcription;
#   2. Peyk: API + a transcription worker (model loaded at start-up);
#      `POST /v1/audio/transcriptions` with the file, timed from sending the
#      request to receiving the transcript (upload, job record, queue,
#      decode, whisper, result, answer);
#   3. the worker's peak memory with that model loaded.
# Then the audio path alone: decode + resample a 10-minute mp3.
# Best and median of RUNS (default 5) each.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
MODELS=${MODELS:-"tiny.en base"}
PG_PORT=54359 REDIS_PORT=63829 API_PORT=18090 WORKER_PORT=19092
state="$root/.peyk/bench-speech"
models_dir=${PEYK_MODELS_DIR:-$root/.peyk/models}
fixtures="$root/.peyk/fixtures"

ensure_packages build-tools
# shellcheck disable=SC2086
PEYK_MODELS_DIR="$models_dir" infrastructure/models/fetch.sh $MODELS
infrastructure/dev/fixtures.sh "$fixtures" >/dev/null
bench/whisper-ref/build.sh >/dev/null
bench_build release
bench_services "$state" "$PG_PORT" "$REDIS_PORT"
export PEYK_STORAGE_DIR="$state/files"
bench_database peyk_bench
bench_start_api "$API_PORT"

now() { date +%s.%N; }
# best and median of the numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {printf "%.3f %.3f", v[1], v[int((NR+1)/2)]}'; }

audio="$fixtures/jfk.wav"
duration=11.0
summary=()
for model in $MODELS; do
  echo "==> $model: whisper.cpp itself ($RUNS runs)"
  ref=$(for _ in $(seq 1 "$RUNS"); do
    t0=$(now); target/whisper-ref/whisper-ref -m "$models_dir/ggml-$model.bin" -f "$audio" -t "$THREADS" -l en >/dev/null 2>&1; t1=$(now)
    echo "$t0 $t1" | awk '{print $2 - $1}'
  done | stats)

  echo "==> $model: Peyk, submission to result ($RUNS runs)"
  PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_QUEUES=transcription PEYK_WHISPER_THREADS="$THREADS" \
    PEYK_WHISPER_MODELS="$model=$models_dir/ggml-$model.bin" "$bin/peyk-worker" & worker=$!; pids+=("$worker")
  wait_healthy "http://127.0.0.1:$WORKER_PORT"
  transcribe() {
    curl -fs -o "$state/last.json" -w '%{time_total}\n' "http://127.0.0.1:$API_PORT/v1/audio/transcriptions" \
      -H "Authorization: Bearer $key" -F "file=@$audio" -F "model=$model" -F language=en
  }
  transcribe >/dev/null # warm-up (first-touch page faults of the model)
  peyk=$(for _ in $(seq 1 "$RUNS"); do transcribe; done | stats)
  text=$(sed 's/.*"text":"\([^"]*\)".*/\1/' "$state/last.json")
  rss=$(peak_rss_mb "$worker")
  kill "$worker"; wait "$worker" 2>/dev/null || true

  read -r ref_best ref_median <<<"$ref"
  read -r peyk_best peyk_median <<<"$peyk"
  ratio=$(echo "$peyk_median $ref_median" | awk '{printf "%.2f", $1 / $2}')
  rtf=$(echo "$peyk_median $duration" | awk '{printf "%.3f", $1 / $2}')
  echo "    text: $text"
  summary+=("$(printf '%-8s whisper.cpp %5.2f s (best %5.2f) | Peyk %5.2f s (best %5.2f) | Peyk/whisper.cpp %s | RTF %s | worker peak %s MiB' \
    "$model" "$ref_median" "$ref_best" "$peyk_median" "$peyk_best" "$ratio" "$rtf" "$rss")")
done

# Whisper beside other work: two 2-thread transcriptions at once on the same
# cores (two workers on one host, or one beside the API and PostgreSQL),
# with libgomp's default spin-wait and with the short one peyk-worker sets
# (worker/src/openmp.rs). Wall time for both, and the CPU time they burnt.
echo "==> base: two whisper.cpp runs at once, default OpenMP spin vs GOMP_SPINCOUNT=5000 ($RUNS rounds)"
pair() {
  local model=$models_dir/ggml-base.bin
  [ -f "$model" ] || model=$models_dir/ggml-$(echo "$MODELS" | awk '{print $1}').bin
  local TIMEFORMAT='%R %U'
  { time { for _ in 1 2; do env "$1" target/whisper-ref/whisper-ref -m "$model" -f "$audio" -t "$THREADS" -l en >/dev/null 2>&1 & done; wait; }; } 2>&1
}
medians() { sort -g | awk '{w[NR]=$1; u[NR]=$2} END {m=int((NR+1)/2); printf "%.2f s wall, %.2f CPU-s", w[m], u[m]}'; }
spin_default=$(for _ in $(seq 1 "$RUNS"); do pair GOMP_SPINCOUNT=300000; done | medians)
spin_short=$(for _ in $(seq 1 "$RUNS"); do pair GOMP_SPINCOUNT=5000; done | medians)

echo "==> decode + resample"
decode_long=$("$bin/peyk-bench-decode" "$fixtures/long_10min.mp3" "$RUNS")
decode_wav=$("$bin/peyk-bench-decode" "$audio" "$RUNS")

cat <<SUMMARY

== Peyk transcription benchmark ($(nproc) cores, $THREADS whisper threads, jfk.wav ${duration} s, median of $RUNS) ==
$(printf '%s\n' "${summary[@]}")
two at once (whisper.cpp): libgomp default spin $spin_default | GOMP_SPINCOUNT=5000 (peyk-worker's) $spin_short
$decode_long
$decode_wav
SUMMARY
