// whisper-ref: the reference "whisper.cpp itself" for Peyk's transcription
// benchmark. A minimal equivalent of whisper-cli's main path, built by
// build.sh (same folder) against the very whisper.cpp sources that
// whisper-rs-sys vendors (1.8.3 for whisper-rs-sys 0.15.0), with the same
// cmake options whisper-rs-sys uses, so the comparison is like for like.
//
//   whisper-ref -m MODEL.bin -f AUDIO.wav [-t THREADS] [-l LANG|auto]
//               [-r RUNS] [-ts] [-v]
//
// AUDIO must be a 16-bit PCM WAV at 16 kHz, mono (stereo is averaged to
// mono, as whisper-cli does). Decoding is whisper_full with
// whisper_full_default_params(WHISPER_SAMPLING_GREEDY) and only
// n_threads / language changed. The text of each segment goes to stdout;
// the timings go to stderr as "load_ms: X" and "full_ms: X" (one line per
// run with -r), in milliseconds of wall-clock time. whisper.cpp's own log
// is silenced unless -v (which also prints whisper_print_timings).

#include "whisper.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_verbose = 0;

static void log_cb(enum ggml_log_level level, const char *text, void *user) {
    (void)level;
    (void)user;
    if (g_verbose) fputs(text, stderr);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

// Reads a RIFF/WAVE file of 16-bit PCM at 16 kHz, mono or stereo, into
// float samples in [-1, 1). Returns NULL (after printing why) on failure.
static float *read_wav(const char *path, int *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "whisper-ref: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = size > 0 ? malloc((size_t)size) : NULL;
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "whisper-ref: cannot read %s\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);

    float *pcm = NULL;
    int channels = 0, rate = 0, bits = 0, format = 0;
    if (size < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0) {
        fprintf(stderr, "whisper-ref: %s: not a RIFF/WAVE file\n", path);
        goto out;
    }
    for (long pos = 12; pos + 8 <= size;) {
        uint32_t len = le32(buf + pos + 4);
        const unsigned char *body = buf + pos + 8;
        long avail = size - (pos + 8);
        if (memcmp(buf + pos, "fmt ", 4) == 0 && len >= 16 && avail >= 16) {
            format = le16(body);
            channels = le16(body + 2);
            rate = (int)le32(body + 4);
            bits = le16(body + 14);
            if (format == 0xFFFE && len >= 40 && avail >= 40) format = le16(body + 24);  // extensible
        } else if (memcmp(buf + pos, "data", 4) == 0) {
            if (format != 1 || bits != 16 || rate != WHISPER_SAMPLE_RATE ||
                (channels != 1 && channels != 2)) {
                fprintf(stderr,
                        "whisper-ref: %s: need 16-bit PCM at %d Hz, mono or stereo "
                        "(got format %d, %d bits, %d Hz, %d channels); convert with "
                        "ffmpeg -i IN -ar 16000 -ac 1 -c:a pcm_s16le OUT.wav\n",
                        path, WHISPER_SAMPLE_RATE, format, bits, rate, channels);
                goto out;
            }
            // A streamed WAV may say 0 or 0xFFFFFFFF: take what is there.
            long bytes = (len == 0 || (long)len > avail) ? avail : (long)len;
            int n = (int)(bytes / (2 * channels));
            pcm = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
            for (int i = 0; i < n; i++) {
                const unsigned char *s = body + (long)i * 2 * channels;
                float v = (int16_t)le16(s) / 32768.0f;
                if (channels == 2) v = (v + (int16_t)le16(s + 2) / 32768.0f) / 2.0f;
                pcm[i] = v;
            }
            *n_out = n;
            goto out;
        }
        pos += 8 + (long)len + (len & 1);
    }
    fprintf(stderr, "whisper-ref: %s: no data chunk\n", path);
out:
    free(buf);
    return pcm;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s -m MODEL.bin -f AUDIO.wav [-t THREADS] [-l LANG|auto] [-r RUNS] [-ts] [-v]\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *model = NULL, *wav = NULL, *lang = "en";  // whisper-cli's default language
    int threads = 4, runs = 1, timestamps = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "-m") && has) model = argv[++i];
        else if (!strcmp(a, "-f") && has) wav = argv[++i];
        else if (!strcmp(a, "-t") && has) threads = atoi(argv[++i]);
        else if (!strcmp(a, "-l") && has) lang = argv[++i];
        else if (!strcmp(a, "-r") && has) runs = atoi(argv[++i]);
        else if (!strcmp(a, "-ts")) timestamps = 1;
        else if (!strcmp(a, "-v")) g_verbose = 1;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!model || !wav || threads < 1 || runs < 1) {
        usage(argv[0]);
        return 2;
    }
    if (strcmp(lang, "auto") != 0 && whisper_lang_id(lang) < 0) {
        fprintf(stderr, "whisper-ref: unknown language '%s'\n", lang);
        return 2;
    }
    whisper_log_set(log_cb, NULL);

    int n_samples = 0;
    float *pcm = read_wav(wav, &n_samples);
    if (!pcm) return 1;

    double t0 = now_ms();
    struct whisper_context_params cparams = whisper_context_default_params();
    struct whisper_context *ctx = whisper_init_from_file_with_params(model, cparams);
    double load_ms = now_ms() - t0;
    if (!ctx) {
        fprintf(stderr, "whisper-ref: failed to load model %s\n", model);
        free(pcm);
        return 1;
    }
    fprintf(stderr, "audio: %s, %.2f s\n", wav, (double)n_samples / WHISPER_SAMPLE_RATE);
    fprintf(stderr, "threads: %d, language: %s, system: %s\n", threads, lang,
            whisper_print_system_info());
    fprintf(stderr, "load_ms: %.1f\n", load_ms);

    struct whisper_full_params params = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    params.n_threads = threads;
    params.language = lang;
    params.print_progress = false;
    params.print_realtime = false;
    params.print_timestamps = false;
    params.print_special = false;

    int rc = 0;
    for (int r = 0; r < runs; r++) {
        t0 = now_ms();
        int ret = whisper_full(ctx, params, pcm, n_samples);
        double full_ms = now_ms() - t0;
        if (ret != 0) {
            fprintf(stderr, "whisper-ref: whisper_full failed (%d)\n", ret);
            rc = 1;
            break;
        }
        fprintf(stderr, "full_ms: %.1f\n", full_ms);
        if (r + 1 < runs) continue;  // print the text once, after the last run
        if (!strcmp(lang, "auto"))
            fprintf(stderr, "detected language: %s\n", whisper_lang_str(whisper_full_lang_id(ctx)));
        int n = whisper_full_n_segments(ctx);
        for (int i = 0; i < n; i++) {
            const char *text = whisper_full_get_segment_text(ctx, i);
            if (timestamps) {
                int64_t s0 = whisper_full_get_segment_t0(ctx, i) * 10;  // centiseconds -> ms
                int64_t s1 = whisper_full_get_segment_t1(ctx, i) * 10;
                printf("[%02d:%02d.%03d --> %02d:%02d.%03d] ", (int)(s0 / 60000),
                       (int)(s0 / 1000 % 60), (int)(s0 % 1000), (int)(s1 / 60000),
                       (int)(s1 / 1000 % 60), (int)(s1 % 1000));
            }
            printf("%s\n", text);
        }
        fflush(stdout);
    }
    if (g_verbose) whisper_print_timings(ctx);
    whisper_free(ctx);
    free(pcm);
    return rc;
}
