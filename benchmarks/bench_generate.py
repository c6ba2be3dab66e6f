"""Seconds per iteration of the generation loop, and where the time goes.

Cases (each in its own process, so that thread counts and peak memory are its own):
the embedded models at 64², 128² and 256² with ``--cutn`` cutouts (default 32), and the
``imagenet`` preset's architectures (imagenet_f16_16384 + ViT-B-32, random weights, no
download) at 256². ``--profile`` prints the top operators of one embedded case
(torch.profiler, CPU time). On a GPU, ``--gpu`` measures the imagenet architectures at
256², 512² and 1024² in fp32 and bf16, with peak memory.

    python benchmarks/bench_generate.py [--threads 1 2] [--cutn 32] [--iterations 10]
    python benchmarks/bench_generate.py --before e07fce4   # each case also at that commit
    python benchmarks/bench_generate.py --profile
    python benchmarks/bench_generate.py --gpu        # when a GPU is lent
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from vqclip.errors import run_script

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe


def _models(kind: str, device: str):
    from vqclip.clip.load import load_clip

    if kind == "shapes":
        from vqclip.vqgan.load import load_vqgan

        return [load_clip("shapes")], load_vqgan("shapes")
    import open_clip

    from vqclip.clip.model import make_bundle
    from vqclip.vqgan.load import REGISTRY, config_from_params
    from vqclip.vqgan.model import VQGAN

    torch.manual_seed(0)
    cfg = open_clip.get_model_config("ViT-B-32")
    clip = make_bundle(open_clip.create_model("ViT-B-32"), cfg, None, "ViT-B-32 (random)")
    entry = REGISTRY["imagenet_f16_16384"]
    return [clip], VQGAN(config_from_params(entry.params, entry.target)).eval()


def _peak_gflops(n: int = 1024, reps: int = 20) -> float:
    """This core's rate on one large square fp32 product (best of ``reps``): the ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return round(2 * n**3 / best / 1e9, 1)


def one_case(kind: str, size: int, cutn: int, iterations: int, device: str, precision: str,
             profile: bool = False) -> dict:  # fmt: skip
    from vqclip.generation.generator import setup, step
    from vqclip.generation.settings import GenerateSettings

    clips, vq = _models(kind, device)
    extra = {"cut_method": "pooled", "augments": ("affine", "perspective", "jitter", "erase"),
             "augment_p": 0.7} if kind == "imagenet" else {}  # fmt: skip
    s = GenerateSettings(prompts="a red circle", size=(size, size), cutn=cutn, device=device,
                         precision=precision, iterations=3 * iterations + 1, **extra)  # fmt: skip
    loop = setup(s, clips, vq)
    step(loop, 0)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof

        with prof(activities=[ProfilerActivity.CPU], with_flops=True) as p:
            for i in range(1, iterations + 1):
                step(loop, i)
        events = p.key_averages()
        print(events.table(sort_by="self_cpu_time_total", row_limit=15))
        # the matrix products' share: their FLOPs (counted by the profiler), their time,
        # and so the rate they run at, against the whole iteration
        mm = [e for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
        flops = sum(e.flops for e in mm) / iterations
        mm_s = sum(e.self_cpu_time_total for e in mm) / 1e6 / iterations
        total_s = sum(e.self_cpu_time_total for e in events) / 1e6 / iterations
        print(json.dumps({"matmul_gflop_per_it": round(flops / 1e9, 2),
                          "matmul_s_per_it": round(mm_s, 4),
                          "matmul_gflop_per_s": round(flops / 1e9 / mm_s, 1),
                          "profiled_s_per_it": round(total_s, 4),
                          "peak_gflop_per_s": _peak_gflops()}))  # fmt: skip
    best = float("inf")  # the best of three rounds: this shared VM's timings jitter by ~20%
    for r in range(3):
        t0 = time.perf_counter()
        for i in range(1, iterations + 1):
            step(loop, r * iterations + i)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / iterations)
    out = {"models": kind, "size": size, "cutn": cutn, "device": device, "precision": precision,
           "threads": torch.get_num_threads(), "s_per_it": round(best, 4)}  # fmt: skip
    if device.startswith("cuda"):
        out["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def _spawn(args: list[str], threads: int, cutn: int, iterations: int,
           src: Path | None = None) -> dict:  # fmt: skip
    """One case in a fresh process; with ``src``, vqclip is imported from that folder."""
    cmd = [sys.executable, __file__, "--one", *args, "--threads", str(threads),
           "--cutn", str(cutn), "--iterations", str(iterations)]  # fmt: skip
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _checkout(rev: str) -> Path:
    """``src/`` of a detached worktree at ``rev`` (made once, under the system's temp dir)."""
    import tempfile

    root = Path(__file__).resolve().parent.parent
    sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", rev], check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    tree = Path(tempfile.gettempdir()) / f"vqclip-bench-{sha}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), sha],
                       check=True, capture_output=True)  # fmt: skip
    return tree / "src"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--precision", nargs="+", default=["auto"], help="CPU cases: auto, bf16")
    p.add_argument("--before", metavar="REV", help="also time each case at this git revision")
    p.add_argument("--one", nargs=4, metavar=("KIND", "SIZE", "DEVICE", "PRECISION"))
    args = p.parse_args()
    if args.one:
        torch.set_num_threads(args.threads[0])
        kind, size, device, precision = args.one
        print(json.dumps(one_case(kind, int(size), args.cutn, args.iterations, device,
                                  precision)))  # fmt: skip
        return
    print(f"# {describe()}")
    if args.profile:
        torch.set_num_threads(args.threads[0])
        one_case("shapes", 64, args.cutn, args.iterations, "cpu", "auto", profile=True)
        return
    if args.gpu:
        for size in (256, 512, 1024):
            for precision in ("fp32", "bf16"):
                case = ["imagenet", str(size), "cuda", precision]
                print(json.dumps(_spawn(case, 1, args.cutn, args.iterations)))
        return
    before = _checkout(args.before) if args.before else None
    cases = [("shapes", 64), ("shapes", 128), ("shapes", 256)]
    for precision in args.precision:
        for threads in args.threads:
            for kind, size in cases:
                case = [kind, str(size), "cpu", precision]
                _report(case, threads, args.cutn, args.iterations, before, args.before)
    case = ["imagenet", "256", "cpu", "auto"]  # a few iterations: seconds each on a CPU
    _report(case, max(args.threads), args.cutn, 1, before, args.before)


def _report(case: list[str], threads: int, cutn: int, iterations: int, before: Path | None,
            rev: str | None) -> None:  # fmt: skip
    """One JSON line per case; with ``before``, the old code's time and the speed-up too."""
    now = _spawn(case, threads, cutn, iterations)
    if before is not None:
        old = _spawn(case, threads, cutn, iterations, src=before)
        now["before"] = {"rev": rev, "s_per_it": old["s_per_it"]}
        now["speedup"] = round(old["s_per_it"] / now["s_per_it"], 2)
    print(json.dumps(now), flush=True)


if __name__ == "__main__":
    run_script(main)
