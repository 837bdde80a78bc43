#!/usr/bin/env python3
"""Convert a CTranslate2 (faster-whisper) Whisper model.bin into whisper.cpp's
legacy ggml file (the format of the official ggml-*.bin files).

    ct2_to_ggml.py MODEL_BIN --assets DIR -o OUT.bin [--type f16|q8_0|q5_1]

MODEL_BIN  the CT2 model.bin (already joined when shipped in parts).
--assets   a folder holding openai-whisper's assets: mel_filters.npz,
           multilingual.tiktoken and gpt2.tiktoken (from the openai-whisper
           sdist, whisper/assets/).
--type     the weights' type: f16 (default) or a ggml quantization, q8_0 or
           q5_1, made the way whisper.cpp's own `quantize` tool makes the
           official ggml-*-q8_0.bin / -q5_1.bin files: every 2-D tensor but
           the positional embeddings, in blocks of 32 along each row, with
           ggml's reference rounding (quantize_row_q8_0_ref /
           quantize_row_q5_1_ref), and the header's ftype plus
           GGML_QNT_VERSION * 1000.

Used by fetch.sh (same folder), which pins and verifies every input. Only
numpy is needed. The CT2 file is memory-mapped and tensors are written one at
a time, so the peak memory is about the largest tensor (the token embedding).
The output is a pure function of the inputs (deterministic, byte for byte).

CT2 model.bin layout (little-endian):
  u32 format version; string model name; u32 revision; u32 variable count;
  per variable: string name, u8 rank, u32 x rank dims, u8 dtype
  (0 f32, 1 i8, 2 i16, 3 i32, 4 f16), u32 byte count, raw data;
  then u32 alias count and pairs of strings (alias, target).
  A string is u16 length + bytes, NUL padded.

ggml legacy layout (what whisper.cpp's whisper_model_load reads):
  12 x i32 header: magic 0x67676d6c, n_vocab, n_audio_ctx, n_audio_state,
  n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
  n_text_layer, n_mels, ftype (1 = f16; 2007 = q8_0, 2009 = q5_1);
  i32 n_mel, i32 n_fft, the mel filter bank as f32;
  i32 token count, each token as i32 length + bytes;
  each tensor: i32 n_dims, i32 name length, i32 type (0 f32, 1 f16, 7 q5_1, 8 q8_0),
  the dims in reverse order (i32 each), the name, the data.
  1-D tensors, the conv biases (reshaped to (n, 1)) and both positional
  embeddings are f32; the other 2-D weights f16 or quantized (--type); the
  3-D conv weights f16.
"""

import argparse
import base64
import os
import re
import struct
import sys

import numpy as np

GGML_MAGIC = 0x67676D6C
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
# ggml's tensor types and file types (ggml.h) and its quantization version.
GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0 = 0, 1, 7, 8
FILE_TYPES = {"f16": (1, GGML_TYPE_F16), "q8_0": (7, GGML_TYPE_Q8_0), "q5_1": (9, GGML_TYPE_Q5_1)}
GGML_QNT_VERSION, GGML_QNT_VERSION_FACTOR = 2, 1000
QK = 32  # values per quantization block (QK8_0 = QK5_1 = 32)
F32_NAMES = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}


def die(msg):
    print(f"ct2_to_ggml: error: {msg}", file=sys.stderr)
    sys.exit(1)


class Ct2Model:
    """Index of the variables of a CT2 model.bin, data as memory-mapped views."""

    def __init__(self, path):
        self.path = path
        self.vars = {}  # name -> (offset, dims, dtype)
        with open(path, "rb") as f:

            def unpack(fmt):
                size = struct.calcsize("<" + fmt)
                raw = f.read(size)
                if len(raw) != size:
                    die(f"{path}: truncated CT2 file")
                return struct.unpack("<" + fmt, raw)

            def string():
                (n,) = unpack("H")
                return f.read(n).rstrip(b"\0").decode("utf-8")

            (version,) = unpack("I")
            if version < 4 or version > 6:
                die(f"{path}: unsupported CT2 format version {version}")
            spec = string()
            if spec != "WhisperSpec":
                die(f"{path}: not a Whisper model (spec {spec!r})")
            unpack("I")  # spec revision
            (count,) = unpack("I")
            for _ in range(count):
                name = string()
                (rank,) = unpack("B")
                dims = unpack("I" * rank) if rank else ()
                (dtype,) = unpack("B")
                (nbytes,) = unpack("I")
                if dtype not in CT2_DTYPES:
                    die(f"{path}: {name}: unknown dtype {dtype}")
                expect = int(np.prod(dims, dtype=np.int64)) * np.dtype(CT2_DTYPES[dtype]).itemsize
                if expect != nbytes:
                    die(f"{path}: {name}: {nbytes} bytes for dims {dims}")
                self.vars[name] = (f.tell(), dims, dtype)
                f.seek(nbytes, os.SEEK_CUR)
            (aliases,) = unpack("I")
            for _ in range(aliases):
                alias, target = string(), string()
                if target in self.vars:
                    self.vars.setdefault(alias, self.vars[target])
            if f.read(1):
                die(f"{path}: trailing bytes after the alias table")
        self.mm = np.memmap(path, dtype=np.uint8, mode="r")

    def get(self, name):
        if name not in self.vars:
            die(f"{self.path}: missing variable {name}")
        offset, dims, dtype = self.vars[name]
        dt = np.dtype(CT2_DTYPES[dtype]).newbyteorder("<")
        n = int(np.prod(dims, dtype=np.int64))
        return np.frombuffer(self.mm, dtype=dt, count=n, offset=offset).reshape(dims)

    def scalar(self, name):
        return int(self.get(name).reshape(-1)[0])

    def layers(self, side):
        found = set()
        for name in self.vars:
            m = re.match(rf"{side}/layer_(\d+)/", name)
            if m:
                found.add(int(m.group(1)))
        if not found or sorted(found) != list(range(len(found))):
            die(f"{self.path}: bad {side} layer numbering {sorted(found)}")
        return len(found)


def tensors(m, n_enc, n_dec):
    """(ggml name, array) in the order of openai-whisper's state_dict."""

    def lin(ct2, out, key_no_bias=False):
        yield f"{out}.weight", m.get(f"{ct2}/weight")
        if not key_no_bias:
            yield f"{out}.bias", m.get(f"{ct2}/bias")

    def ln(ct2, out):
        yield f"{out}.weight", m.get(f"{ct2}/gamma")
        yield f"{out}.bias", m.get(f"{ct2}/beta")

    def fused(ct2, outs):
        """Split a fused linear (rows stacked) into len(outs) linears.
        outs: list of (name, has_bias); the key projection has no bias in
        Whisper (CT2 stores zeros there)."""
        w, b = m.get(f"{ct2}/weight"), m.get(f"{ct2}/bias")
        k = len(outs)
        if w.shape[0] % k or b.shape[0] != w.shape[0]:
            die(f"{ct2}: cannot split {w.shape} in {k}")
        n = w.shape[0] // k
        for i, (out, has_bias) in enumerate(outs):
            yield f"{out}.weight", w[i * n:(i + 1) * n]
            if has_bias:
                yield f"{out}.bias", b[i * n:(i + 1) * n]
            elif np.any(b[i * n:(i + 1) * n]):
                print(f"ct2_to_ggml: warning: dropping non-zero bias of {out}", file=sys.stderr)

    def block(side, i, cross):
        src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
        yield from fused(f"{src}/self_attention/linear_0",
                         [(f"{dst}.attn.query", True), (f"{dst}.attn.key", False),
                          (f"{dst}.attn.value", True)])
        yield from lin(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        yield from ln(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        if cross:
            yield from lin(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
            yield from fused(f"{src}/attention/linear_1",
                             [(f"{dst}.cross_attn.key", False), (f"{dst}.cross_attn.value", True)])
            yield from lin(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
            yield from ln(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        yield from lin(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        yield from lin(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
        yield from ln(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")

    yield "encoder.positional_embedding", m.get("encoder/position_encodings/encodings")
    for c in ("conv1", "conv2"):
        yield f"encoder.{c}.weight", m.get(f"encoder/{c}/weight")
        yield f"encoder.{c}.bias", m.get(f"encoder/{c}/bias").reshape(-1, 1)
    for i in range(n_enc):
        yield from block("encoder", i, cross=False)
    yield from ln("encoder/layer_norm", "encoder.ln_post")
    yield "decoder.positional_embedding", m.get("decoder/position_encodings/encodings")
    yield "decoder.token_embedding.weight", m.get("decoder/embeddings/weight")
    for i in range(n_dec):
        yield from block("decoder", i, cross=True)
    yield from ln("decoder/layer_norm", "decoder.ln")


def read_tiktoken(path):
    tokens = []
    with open(path, "rb") as f:
        for line in f.read().splitlines():
            if not line:
                continue
            token, rank = line.split()
            if int(rank) != len(tokens):
                die(f"{path}: ranks are not 0..n-1 in order (rank {int(rank)})")
            tokens.append(base64.b64decode(token))
    return tokens


def round_half_away(x):
    """C's roundf (halves away from zero); numpy's round goes to even."""
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def quantize_q8_0(rows):
    """ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127 as f16,
    then 32 int8 round(x / d) (34 bytes a block)."""
    x = rows.astype(np.float32).reshape(-1, QK)
    d = np.abs(x).max(axis=1) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = round_half_away(x * inv[:, None]).astype(np.int8)
    out = np.empty((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize_q5_1(rows):
    """ggml's quantize_row_q5_1_ref: per block of 32, d = (max - min) / 31 and
    m = min as f16, 5-bit (x - min) / d truncated after + 0.5; low nibbles of
    values j and j + 16 share byte j of qs, the fifth bits go to the u32 qh
    (bit j and bit j + 16). 24 bytes a block: d, m, qh, qs."""
    x = rows.astype(np.float32).reshape(-1, QK)
    lo, hi = x.min(axis=1), x.max(axis=1)
    d = (hi - lo) / np.float32(31)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = ((x - lo[:, None]) * inv[:, None] + np.float32(0.5)).astype(np.uint8)
    qs = (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)
    fifth = ((q >> 4) & 1).astype(np.uint32)
    qh = (fifth << np.arange(QK, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    out = np.empty((x.shape[0], 24), dtype=np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = lo.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = qh.astype("<u4").view(np.uint8).reshape(-1, 4)
    out[:, 8:] = qs.astype(np.uint8)
    return out.tobytes()


QUANTIZERS = {GGML_TYPE_Q8_0: quantize_q8_0, GGML_TYPE_Q5_1: quantize_q5_1}


def write_tensor(fout, name, data, weight_type=GGML_TYPE_F16):
    """One tensor: f32 for 1-D tensors, the conv biases and the positional
    embeddings; the 2-D weights in `weight_type`; anything else (the 3-D conv
    weights) f16 — the types whisper.cpp's loader expects of each."""
    if data.dtype.kind != "f":
        die(f"{name}: unsupported dtype {data.dtype} (quantized CT2 models are not supported)")
    if data.ndim < 2 or name in F32_NAMES:
        ttype, payload = GGML_TYPE_F32, np.ascontiguousarray(data.astype("<f4", copy=False)).tobytes()
    elif data.ndim == 2 and weight_type in QUANTIZERS:
        if data.shape[-1] % QK:
            die(f"{name}: rows of {data.shape[-1]} values are not whole blocks of {QK}")
        ttype, payload = weight_type, QUANTIZERS[weight_type](data)
    else:
        ttype, payload = GGML_TYPE_F16, np.ascontiguousarray(data.astype("<f2", copy=False)).tobytes()
    raw = name.encode("utf-8")
    fout.write(struct.pack("<iii", data.ndim, len(raw), ttype))
    fout.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
    fout.write(raw)
    fout.write(payload)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="CT2 model.bin")
    ap.add_argument("--assets", required=True,
                    help="folder with mel_filters.npz, multilingual.tiktoken, gpt2.tiktoken")
    ap.add_argument("-o", "--output", required=True, help="ggml file to write")
    ap.add_argument("--type", default="f16", choices=sorted(FILE_TYPES),
                    help="weight type: f16, or the ggml quantization q8_0 / q5_1")
    args = ap.parse_args()

    m = Ct2Model(args.model)
    file_type, weight_type = FILE_TYPES[args.type]

    # Architecture sanity checks: whisper.cpp implements exactly this variant.
    for name, want in (("decoder/pre_norm", 1), ("decoder/alibi", 0),
                       ("decoder/scale_embeddings", 0)):
        if name in m.vars and m.scalar(name) != want:
            die(f"{name} = {m.scalar(name)}, expected {want}: not a Whisper model")

    # Hyperparameters, all from the tensors themselves.
    emb = m.get("decoder/embeddings/weight")
    enc_pos = m.get("encoder/position_encodings/encodings")
    dec_pos = m.get("decoder/position_encodings/encodings")
    conv1 = m.get("encoder/conv1/weight")  # (n_audio_state, n_mels, 3)
    n_vocab, n_text_state = emb.shape
    n_audio_ctx, n_audio_state = enc_pos.shape
    n_text_ctx = dec_pos.shape[0]
    n_mels = conv1.shape[1]
    hp = [
        n_vocab,
        n_audio_ctx,
        n_audio_state,
        m.scalar("encoder/num_heads"),
        m.layers("encoder"),
        n_text_ctx,
        n_text_state,
        m.scalar("decoder/num_heads"),
        m.layers("decoder"),
        n_mels,
        file_type if weight_type == GGML_TYPE_F16 else file_type + GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR,
    ]
    multilingual = n_vocab >= 51865  # the same test whisper.cpp uses
    print("ct2_to_ggml: n_vocab=%d n_audio_ctx=%d n_audio_state=%d n_audio_head=%d "
          "n_audio_layer=%d n_text_ctx=%d n_text_state=%d n_text_head=%d "
          "n_text_layer=%d n_mels=%d (%s)"
          % (*hp[:10], "multilingual" if multilingual else "English-only"))

    filters = np.load(os.path.join(args.assets, "mel_filters.npz"))
    key = f"mel_{n_mels}"
    if key not in filters:
        die(f"mel_filters.npz has no {key}")
    mel = filters[key].astype("<f4")
    tokens = read_tiktoken(os.path.join(
        args.assets, "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"))
    if len(tokens) > n_vocab:
        die(f"tokenizer has {len(tokens)} tokens, more than n_vocab {n_vocab}")

    tmp = args.output + ".part"
    count = 0
    with open(tmp, "wb") as fout:
        fout.write(struct.pack("<12i", GGML_MAGIC, *hp))
        fout.write(struct.pack("<ii", *mel.shape))
        fout.write(mel.tobytes())
        fout.write(struct.pack("<i", len(tokens)))
        for t in tokens:
            fout.write(struct.pack("<i", len(t)))
            fout.write(t)
        for name, data in tensors(m, hp[4], hp[8]):
            write_tensor(fout, name, data, weight_type)
            count += 1
    os.replace(tmp, args.output)
    print(f"ct2_to_ggml: wrote {count} tensors, {os.path.getsize(args.output)} bytes to {args.output}")


if __name__ == "__main__":
    main()
