"""Produce dmsparse calibration statistics.

For every 2-D weight W named NAME (shape [out_features, in_features]) the
statistics file holds NAME.act_sqmean, float32 [in_features]: the mean over
the task's calibration data of the squared input activation of each input
feature, E[x_j^2]. `dmbench pack --calib TASK=FILE` uses it for
activation-aware (Wanda-style) block importance and reports the relative
output error E||(W - W_dep) x||^2 / E||W x||^2 under this diagonal model.

Two ways to make it:

1. From PyTorch, inside your own script (torch needed only here):

       from calib_stats import TorchCollector
       col = TorchCollector(model)          # hooks every nn.Linear
       for batch in loader:                 # the task's calibration data
           model(batch)
       col.save("task.calib.safetensors")   # keys: <module>.weight.act_sqmean

2. From recorded input activations, with numpy only:

       python3 tools/calib_stats.py --acts ACTS -o task.calib.safetensors \\
           [--model task.safetensors]

   ACTS is a .npz or .safetensors file whose entry NAME (the weight's name)
   holds input activations of shape [..., in_features]. --model checks that
   each NAME is a 2-D weight of the checkpoint with matching in_features.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dms_safetensors import read, write  # noqa: E402


class Accumulator:
    """Running E[x^2] per input feature, in float64."""

    def __init__(self):
        self.sums = {}
        self.counts = {}

    def add(self, name, x):
        x = np.asarray(x, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        s = (x * x).sum(axis=0)
        if name in self.sums:
            if self.sums[name].shape != s.shape:
                raise ValueError(f"{name}: in_features changed from {self.sums[name].shape[0]} to {s.shape[0]}")
            self.sums[name] += s
            self.counts[name] += x.shape[0]
        else:
            self.sums[name] = s
            self.counts[name] = x.shape[0]

    def stats(self):
        return {n + ".act_sqmean": (self.sums[n] / max(self.counts[n], 1)).astype(np.float32)
                for n in self.sums}

    def save(self, path, metadata=None):
        md = {"format": "dmsparse-calib"}
        md.update(metadata or {})
        md["samples"] = ",".join(f"{n}={c}" for n, c in sorted(self.counts.items()))
        write(path, self.stats(), md)


class TorchCollector(Accumulator):
    """Hooks every torch.nn.Linear of model and accumulates its inputs.
    Weight names follow model.named_modules(): "<module>.weight"."""

    def __init__(self, model):
        super().__init__()
        import torch

        self.handles = []
        for mname, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                key = (mname + "." if mname else "") + "weight"
                self.handles.append(mod.register_forward_hook(self._hook(key)))

    def _hook(self, key):
        def hook(_mod, inputs, _out):
            self.add(key, inputs[0].detach().float().cpu().numpy())
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def load_acts(path):
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    tensors, _ = read(path)
    return tensors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--acts", required=True, help=".npz or .safetensors of input activations per weight name")
    p.add_argument("-o", "--out", required=True, help="statistics file to write (.safetensors)")
    p.add_argument("--model", help="checkpoint to check names and in_features against")
    a = p.parse_args(argv)
    acts = load_acts(a.acts)
    if not acts:
        raise SystemExit(f"{a.acts}: no activations")
    model = read(a.model)[0] if a.model else None
    acc = Accumulator()
    for name in sorted(acts):
        x = acts[name]
        if x.ndim < 1:
            raise SystemExit(f"{a.acts}: {name}: scalar, want [..., in_features]")
        if model is not None:
            w = model.get(name)
            if w is None or w.ndim != 2:
                raise SystemExit(f"{a.acts}: {name}: no 2-D weight of that name in {a.model}")
            if w.shape[1] != x.shape[-1]:
                raise SystemExit(f"{a.acts}: {name}: {x.shape[-1]} input features, weight in {a.model} has {w.shape[1]}")
        acc.add(name, x)
    acc.save(a.out)
    print(f"wrote {len(acc.sums)} statistics to {a.out}")


if __name__ == "__main__":
    main()
