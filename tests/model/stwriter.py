"""stwriter.py: an independent safetensors writer and reader for the tests,
from the format's description (8-byte little-endian header length, JSON
header, data), with json + struct + numpy only: no safetensors package.

write(path, tensors, dtype=..., ...) takes {name: numpy array} and writes
them in the order given; the keyword arguments let a test break one rule
at a time (header, offsets, trailing bytes)."""
import json
import struct

import numpy as np

DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "F64": (np.float64, 8),
          "BF16": (None, 2), "I32": (np.int32, 4), "U8": (np.uint8, 1)}


def to_bf16_bits(a):
    """float32 -> bfloat16 bits, round to nearest even (as torch does)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def encode(a, dtype):
    if dtype == "BF16":
        return to_bf16_bits(a).astype("<u2").tobytes()
    np_type, _ = DTYPES[dtype]
    return np.ascontiguousarray(a, dtype=np.dtype(np_type).newbyteorder("<")).tobytes()


def write(path, tensors, dtype="F32", dtypes=None, metadata=None, header_patch=None,
          raw_header=None, trailing=b"", truncate=0, pad=True):
    """tensors: {name: array}. dtypes: per-name overrides. header_patch(h) may
    edit the header dict before it is written; raw_header replaces its text."""
    header, blobs, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        dt = (dtypes or {}).get(name, dtype)
        b = encode(a, dt)
        header[name] = {"dtype": dt, "shape": list(np.shape(a)), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    if header_patch:
        header_patch(header)
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    data = struct.pack("<Q", len(text)) + text + b"".join(blobs) + trailing
    if truncate:
        data = data[:-truncate]
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    """{name: (dtype, shape, raw bytes)}, metadata, header length."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
           for k, v in header.items()}
    return out, meta, n, list(header.keys())


def decode(dtype, shape, raw):
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype][0]).newbyteorder("<")).reshape(shape)
