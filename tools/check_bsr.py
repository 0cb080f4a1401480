"""Check a `dmbench export --bsr` file against the `--dense` export of the
same task with scipy: every blocked tensor, loaded as a scipy sparse matrix,
must equal the dense tensor exactly, and every other tensor must match too.

    python3 tools/check_bsr.py TASK.bsr.safetensors TASK.dense.safetensors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dms_safetensors import load_bsr, read  # noqa: E402


def main(bsr_path, dense_path):
    dense, _ = read(dense_path)
    mats = load_bsr(bsr_path)
    plain, _ = read(bsr_path)
    if not mats:
        raise SystemExit(f"{bsr_path}: no blocked tensors")
    for name, m in mats.items():
        d = dense[name]
        if m.shape != d.shape:
            raise SystemExit(f"{name}: scipy shape {m.shape}, dense export {d.shape}")
        if not np.array_equal(m.toarray(), d):
            raise SystemExit(f"{name}: scipy matrix differs from the dense export")
    n_plain = 0
    for name, a in plain.items():
        if ".bsr_" in name:
            continue
        if not np.array_equal(a, dense[name]):
            raise SystemExit(f"{name}: whole tensor differs from the dense export")
        n_plain += 1
    print(f"ok {len(mats)} bsr tensors, {n_plain} whole tensors")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
