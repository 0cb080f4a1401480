#!/usr/bin/env python3
"""Time scipy.sparse.bsr_matrix products as a peer for `dmbench kernels`.

Same problem as `dmbench kernels`' defaults: a 4096 x 4096 matrix of 32 x 32
fp32 blocks at a given block density times a dense 4096 x N matrix, one
thread, median of 7 runs, GFLOP/s counting nonzero-block flops only.

    python3 tools/scipy_bsr_bench.py [--density 0.5] [--n 1,16,64,256]
"""
import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="4096x4096")
    ap.add_argument("--block", default="32x32")
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--n", default="1,16,64,256")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    M, K = (int(v) for v in a.shape.split("x"))
    R, C = (int(v) for v in a.block.split("x"))
    if M % R or K % C:
        ap.error("shape must be a multiple of the block")
    rng = np.random.default_rng(a.seed)
    br, bc = M // R, K // C
    rows, cols = np.nonzero(rng.random((br, bc)) < a.density)
    nnzb = len(rows)
    data = rng.standard_normal((nnzb, R, C)).astype(np.float32)
    indptr = np.zeros(br + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    A = sp.bsr_matrix((data, cols.astype(np.int32), np.cumsum(indptr).astype(np.int32)), shape=(M, K))
    print(f"scipy {scipy.__version__}, numpy {np.__version__}: {M}x{K}, blocks {R}x{C}, density {nnzb / (br * bc):.3f}")
    print(f"{'N':>5} {'ms':>10} {'GFLOP/s':>9}")
    for n in (int(v) for v in a.n.split(",")):
        X = rng.standard_normal((K, n)).astype(np.float32)
        if n == 1:
            X = X[:, 0]
        times = []
        for _ in range(7):
            t = time.perf_counter()
            A @ X
            times.append(time.perf_counter() - t)
        t = sorted(times)[len(times) // 2]
        print(f"{n:>5} {t * 1e3:>10.2f} {2 * nnzb * R * C * n / t / 1e9:>9.2f}")


if __name__ == "__main__":
    main()
