#!/usr/bin/env python3
"""faster-whisper, the reference Peyk's transcription is compared with.

    run.py MODEL_DIR AUDIO --threads N --runs R [--language LANG]

Loads the CTranslate2 model once (int8 on the CPU, as speaches and most
self-hosted faster-whisper set-ups run it), then transcribes AUDIO R times
with greedy decoding (beam_size=1), timing each run from the call to the
last segment (faster-whisper decodes lazily, so the segments are consumed
inside the timed span). Without --language it detects the language, reusing
the first window's encoder output as faster-whisper does.

Prints one JSON object: {"seconds": [...], "text": "...", "language": ...}.
"""

import argparse
import json
import time

from faster_whisper import WhisperModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("audio")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--language", default=None)
    ap.add_argument("--vad", action="store_true", help="faster-whisper's own Silero VAD filter")
    args = ap.parse_args()

    model = WhisperModel(args.model_dir, device="cpu", compute_type="int8",
                         cpu_threads=args.threads, num_workers=1)
    seconds, text, language = [], "", None
    for _ in range(args.runs):
        started = time.perf_counter()
        segments, info = model.transcribe(args.audio, language=args.language, beam_size=1,
                                          vad_filter=args.vad)
        text = "".join(segment.text for segment in segments).strip()
        seconds.append(time.perf_counter() - started)
        language = info.language
    print(json.dumps({"seconds": seconds, "text": text, "language": language}))


if __name__ == "__main__":
    main()
