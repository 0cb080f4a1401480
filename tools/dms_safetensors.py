"""Minimal safetensors I/O and BSR loading for dmsparse, needing only numpy
(scipy for the BSR loader). No torch or safetensors package required.

    from dms_safetensors import read, write, load_bsr
    tensors, metadata = read("model.safetensors")          # name -> numpy array
    write("out.safetensors", {"w": arr}, {"format": "pt"})
    mats = load_bsr("task.bsr.safetensors")                # name -> scipy sparse
"""
import json
import os
import struct

import numpy as np

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAMES = {(np.dtype(v).kind, np.dtype(v).itemsize): k for k, v in _DTYPES.items()}


def read(path):
    """Return ({name: numpy array}, metadata dict) of a safetensors file.
    BF16 tensors are widened to float32."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    buf = memoryview(data)[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = buf[b:end]
        if e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(e["shape"])
    return out, meta


def write(path, tensors, metadata=None):
    """Write {name: numpy array} (float32/16/64, int, uint8, bool) as
    safetensors, header padded to 8 bytes."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = _NAMES.get((a.dtype.kind, a.dtype.itemsize))
        if dt is None:
            raise ValueError(f"tensor {name!r}: unsupported dtype {a.dtype}")
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_bsr(path):
    """Load a `dmbench export --bsr` file: {name: scipy.sparse matrix}.
    Tensors whose shape the block size divides come back as bsr_matrix;
    others are built padded and cropped to their true shape (csr)."""
    import scipy.sparse as sp

    tensors, meta = read(path)
    out = {}
    for key in tensors:
        if not key.endswith(".bsr_values"):
            continue
        name = key[: -len(".bsr_values")]
        values = tensors[key]
        cols = tensors[name + ".bsr_col_indices"]
        crow = tensors[name + ".bsr_crow_indices"]
        rows_true, cols_true = json.loads(meta[name + ".shape"])
        R, C = values.shape[1], values.shape[2]
        br = len(crow) - 1
        bc = -(-cols_true // C)
        m = sp.bsr_matrix((values, cols, crow), shape=(br * R, bc * C))
        if (br * R, bc * C) != (rows_true, cols_true):
            m = m.tocsr()[:rows_true, :cols_true]
        out[name] = m
    return out
