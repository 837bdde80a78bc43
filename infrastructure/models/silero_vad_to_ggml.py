#!/usr/bin/env python3
"""Converts Silero VAD (the TorchScript file of PyPI's `silero-vad` wheel) to
the ggml file whisper.cpp's VAD loads (`whisper_vad_init_from_file_with_params`).

    silero_vad_to_ggml.py silero_vad.jit --version 6.2.0 -o ggml-silero-v6.2.0.bin

Without torch: a TorchScript archive is a zip whose data.pkl pickles the
module tree, each tensor a `torch._utils._rebuild_tensor_v2` call on a storage
kept as raw little-endian bytes under data/<key>. The unpickler below builds
plain objects for every class and numpy arrays for the tensors, so only
numpy is needed (the fetch venv's). The layout written is exactly that of
whisper.cpp's own models/convert-silero-vad-to-ggml.py (which needs torch and
the silero_vad package): the 16 kHz model's tensors, conv weights and the STFT
basis as f16, the rest f32, dimensions reversed for ggml.
"""

import argparse
import collections
import pickle
import struct
import zipfile

import numpy as np

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "BoolStorage": np.bool_,
}

# The architecture whisper.cpp's loader reads from the header (silero v5/v6).
WINDOW, CONTEXT = 512, 64
ENCODER = [(129, 128), (128, 64), (64, 64), (64, 128)]  # (in, out) channels
KERNEL = 3
LSTM_IN = LSTM_HIDDEN = 128
FINAL_IN, FINAL_OUT = 128, 1


class _Object:
    """Any pickled class: keeps its state, nothing else."""

    def __init__(self, *args, **kwargs):
        self._state = None

    def __setstate__(self, state):
        self._state = state


class _StorageType:
    def __init__(self, name):
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    if not size:
        return storage[offset : offset + 1].reshape(())
    strides = [s * storage.itemsize for s in stride]
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=strides).copy()


def load_tensors(path):
    """name -> numpy array, for every tensor of the TorchScript module."""
    with zipfile.ZipFile(path) as archive:
        prefix = archive.namelist()[0].split("/")[0]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if module == "torch" and name.endswith("Storage"):
                    return _StorageType(name)
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                return type(name, (_Object,), {})

            def persistent_load(self, pid):
                _kind, storage_type, key, _location, _numel = pid
                return np.frombuffer(archive.read(f"{prefix}/data/{key}"), dtype=storage_type.dtype)

        with archive.open(f"{prefix}/data.pkl") as pkl:
            root = Unpickler(pkl).load()

    tensors = {}

    def walk(obj, path):
        if isinstance(obj, np.ndarray):
            tensors[path] = obj
        elif isinstance(getattr(obj, "_state", None), dict):
            for key, value in obj._state.items():
                walk(value, f"{path}.{key}" if path else key)

    walk(root, "")
    return tensors


def tensor_order():
    names = []
    for i in range(len(ENCODER)):
        names += [f"_model.encoder.{i}.reparam_conv.weight", f"_model.encoder.{i}.reparam_conv.bias"]
    names += [f"_model.decoder.rnn.{n}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    names += ["_model.decoder.decoder.2.weight", "_model.decoder.decoder.2.bias"]
    names.append("_model.stft.forward_basis_buffer")
    return names


def write_ggml(tensors, version, out):
    major, minor, patch = (int(p) for p in version.split("."))
    i32 = lambda *values: out.write(struct.pack(f"<{len(values)}i", *values))  # noqa: E731
    i32(0x67676D6C)
    kind = b"silero-16k"
    i32(len(kind))
    out.write(kind)
    i32(major, minor, patch, WINDOW, CONTEXT, len(ENCODER))
    for channels_in, channels_out in ENCODER:
        i32(channels_in, channels_out, KERNEL)
    i32(LSTM_IN, LSTM_HIDDEN, FINAL_IN, FINAL_OUT)

    for name in tensor_order():
        if name not in tensors:
            raise SystemExit(f"tensor {name} not found in the TorchScript file (another Silero version?)")
        data = tensors[name]
        if name == "_model.stft.forward_basis_buffer":
            shape = [data.shape[2], data.shape[1], data.shape[0]]  # kept 3-D
            half = True
        else:
            data = data.squeeze()
            shape = list(reversed(data.shape))
            half = name.endswith("weight") and ("encoder" in name or "decoder.decoder.2" in name)
        data = np.ascontiguousarray(data, dtype=np.float16 if half else np.float32)
        encoded = name.encode()
        i32(len(shape), len(encoded), 1 if half else 0, *shape)
        out.write(encoded)
        out.write(data.astype("<f2" if half else "<f4").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jit", help="silero_vad.jit from the silero-vad wheel")
    ap.add_argument("--version", required=True, help="the wheel's version, written into the header")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    tensors = load_tensors(args.jit)
    with open(args.output, "wb") as out:
        write_ggml(tensors, args.version, out)


if __name__ == "__main__":
    main()
