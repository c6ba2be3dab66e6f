"""VQGAN decode speed and peak memory, forward and forward+backward.

For the shipped Shapes VQGAN and the imagenet_f16_16384 architecture (random
weights), at 128², 256² and 512² output. Each case runs in its own process so
that peak memory is its own: on a GPU ``torch.cuda.max_memory_allocated``, on the
CPU the growth of the process's peak RSS over the model's footprint.

    python benchmarks/bench_vqgan.py [--sizes 128 256 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from vqclip.errors import run_script

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe


def _model(name: str):
    from vqclip.vqgan.load import REGISTRY, config_from_params, load_vqgan
    from vqclip.vqgan.model import VQGAN

    if name == "shapes":
        return load_vqgan("shapes")
    entry = REGISTRY[name]
    torch.manual_seed(0)
    return VQGAN(config_from_params(entry.params, entry.target)).eval()


def one_case(name: str, size: int, backward: bool, repeats: int, device: str) -> dict:
    model = _model(name).to(device)
    f = model.factor
    z = torch.randn(1, model.config.embed_dim, size // f, size // f, device=device)
    z.requires_grad_(backward)

    def step() -> None:
        with torch.set_grad_enabled(backward):
            out = model.decode(z)
            if backward:
                out.mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    seconds = (time.perf_counter() - t0) / repeats
    if device == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base_gpu) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {
        "model": name, "size": size, "pass": "forward+backward" if backward else "forward",
        "seconds": round(seconds, 4), "peak_mb": round(peak_mb, 1),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--case", nargs=3, help=argparse.SUPPRESS)  # internal: one case
    args = p.parse_args()
    if args.case:
        name, size, backward = args.case
        print(json.dumps(one_case(name, int(size), backward == "1", args.repeats, args.device)))
        return
    rows = []
    for name in ("shapes", "imagenet_f16_16384"):
        for size in args.sizes:
            for backward in ("0", "1"):
                cmd = [sys.executable, __file__, "--case", name, str(size), backward,
                       "--repeats", str(args.repeats), "--device", args.device]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"machine": describe(), "device": args.device, "results": rows}, indent=2))


if __name__ == "__main__":
    run_script(main)
