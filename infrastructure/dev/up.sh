#!/usr/bin/env bash
# README command 1: brings Peyk up on this machine.
# Installs what is missing (Debian packages), starts PostgreSQL and Redis on
# loopback with data under .peyk/dev, builds and migrates, creates a local
# API key, starts the API, a worker, a local webhook receiver and a local
# SMTP sink (emails land in a Maildir), and prints how to submit a job.
# Stop everything with infrastructure/dev/down.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source infrastructure/dev/services.sh

PG_PORT=${PEYK_DEV_PG_PORT:-54329}
REDIS_PORT=${PEYK_DEV_REDIS_PORT:-63799}
API_ADDR=${PEYK_API_ADDR:-127.0.0.1:8080}
WORKER_ADDR=${PEYK_WORKER_ADDR:-127.0.0.1:9091}
RECEIVER_ADDR=127.0.0.1:8099
SMTP_PORT=${PEYK_DEV_SMTP_PORT:-2525}
PROFILE=${PEYK_PROFILE:-release}
state="$root/.peyk/dev"
mkdir -p "$state/logs"

command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
command -v curl >/dev/null || ensure_packages curl
ensure_packages build-tools
# A Whisper model to transcribe with at once: base (multilingual: Persian
# and English), and Silero VAD for long recordings. PEYK_DEV_MODELS="tiny.en
# base base-q8_0 silero-vad" fetches more.
models_dir=${PEYK_MODELS_DIR:-$root/.peyk/models}
# shellcheck disable=SC2086 # one argument per model named
PEYK_MODELS_DIR="$models_dir" infrastructure/models/fetch.sh ${PEYK_DEV_MODELS:-base silero-vad speakers}
# The local SMTP sink (aiosmtpd) runs from the project's Python venv.
venv=${PEYK_VENV:-$root/.peyk/venv}
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import aiosmtpd" 2>/dev/null || "$venv/bin/pip" install -q "aiosmtpd==1.4.6"
echo "==> PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT (data in $state)"
start_postgres "$state" "$PG_PORT"
start_redis "$state" "$REDIS_PORT"
create_database "$PG_PORT" peyk

echo "==> building ($PROFILE; the first build takes several minutes)"
if [ "$PROFILE" = release ]; then cargo build --release --quiet --bins; else cargo build --quiet --bins; fi
bin="$root/target/$PROFILE"

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/peyk" REDIS_URL PEYK_LOG_FORMAT=${PEYK_LOG_FORMAT:-text}
# The key that seals stored secrets (gateway credentials, signing secrets):
# made once, readable by this user only.
if [ ! -s "$state/secrets-key" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 > "$state/secrets-key")
fi
export PEYK_SECRETS_KEY_FILE="$state/secrets-key"
"$bin/peyk-api" migrate

if [ ! -s "$state/api-key" ]; then
  (umask 077; "$bin/peyk-api" create-key --tenant local > "$state/api-key")
fi
KEY=$(cat "$state/api-key")

# Restart whatever an earlier run left.
for name in api worker receiver mail; do
  if [ -f "$state/$name.pid" ]; then kill "$(cat "$state/$name.pid")" 2>/dev/null || true; rm -f "$state/$name.pid"; fi
done
sleep 0.5
nohup "$bin/peyk-bench-sink" "$RECEIVER_ADDR" > "$state/logs/receiver.log" 2>&1 & echo $! > "$state/receiver.pid"
# Every email the worker sends lands in this Maildir (open it with any mail
# client, or read the files under new/).
nohup "$venv/bin/python" tests/smtp_sink.py --port "$SMTP_PORT" --maildir "$state/mail" > "$state/logs/mail.log" 2>&1 & echo $! > "$state/mail.pid"
# The API stores uploads where the worker reads them.
export PEYK_STORAGE_DIR="$state/files"
PEYK_API_ADDR="$API_ADDR" nohup "$bin/peyk-api" serve > "$state/logs/api.log" 2>&1 & echo $! > "$state/api.pid"
# Locally the worker may deliver to loopback (the demo receiver); in
# production leave PEYK_WEBHOOK_ALLOWED_NETWORKS empty.
PEYK_WORKER_ADDR="$WORKER_ADDR" PEYK_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 PEYK_MODELS_DIR="$models_dir" \
  PEYK_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" PEYK_EMAIL_FROM="${PEYK_EMAIL_FROM:-Peyk <noreply@peyk.local>}" \
  nohup "$bin/peyk-worker" > "$state/logs/worker.log" 2>&1 & echo $! > "$state/worker.pid"

for _ in $(seq 1 100); do curl -fs "http://$API_ADDR/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://$API_ADDR/readyz" >/dev/null || { echo "the API did not become ready; see $state/logs/api.log" >&2; exit 1; }

cat <<EOF2

Peyk is up.
  API          http://$API_ADDR   (docs: http://$API_ADDR/docs)
  worker       http://$WORKER_ADDR/metrics
  API key      $KEY   (tenant "local"; also in $state/api-key)
  logs         $state/logs/
  mail         $state/mail/new/   (every email sent: a local SMTP sink on 127.0.0.1:$SMTP_PORT)

Submit a webhook job (delivered to the local demo receiver on $RECEIVER_ADDR):

  curl -s http://$API_ADDR/v1/jobs \\
    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
    -d '{"type":"webhook","payload":{"url":"http://$RECEIVER_ADDR/hook","body":{"hello":"world"}}}'

Then follow it:  curl -s http://$API_ADDR/v1/jobs/<id> -H "Authorization: Bearer $KEY"

Send an email (a built-in Persian template; it lands in $state/mail/new/):

  curl -s http://$API_ADDR/v1/jobs \\
    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
    -d '{"type":"email","payload":{"to":["maryam@example.com"],"template":"appointment-reminder","language":"fa","variables":{"name":"مریم","date":"۱۴۰۵/۰۹/۰۱","time":"۱۰:۳۰"}}}'

Transcribe a recording (model base; any wav, mp3, ogg, opus, flac or m4a),
OpenAI-style, waiting for the text:

  curl -s http://$API_ADDR/v1/audio/transcriptions -H "Authorization: Bearer $KEY" \
    -F file=@recording.mp3 -F language=fa -F response_format=srt

Send an OTP by SMS (no Kavenegar key is set, so it goes to the local outbox,
not to a phone; set PEYK_KAVENEGAR_API_KEY for the worker to send for real):

  curl -s http://$API_ADDR/v1/jobs -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
    -d '{"type":"sms","payload":{"mode":"lookup","receptor":"09121234567","template":"verify","token":"4821"}}'
  curl -s http://$API_ADDR/v1/sms/outbox -H "Authorization: Bearer $KEY"

Stop everything: infrastructure/dev/down.sh
EOF2
