"""Seconds per iteration of the generation loop, and where the time goes.

Cases (each in its own process, so that thread counts and peak memory are its own):
the embedded models at 64², 128² and 256² with ``--cutn`` cutouts (default 32), and the
``imagenet`` preset's architectures (imagenet_f16_16384 + ViT-B-32, random weights, no
download) at 256². ``--profile`` prints the top operators of one embedded case
(torch.profiler, CPU time). On a GPU, ``--gpu`` measures the imagenet architectures at
256², 512² and 1024² in fp32 and bf16, with peak memory.

    python benchmarks/bench_generate.py [--threads 1 2] [--cutn 32] [--iterations 10]
    python benchmarks/bench_generate.py --profile
    python benchmarks/bench_generate.py --gpu        # when a GPU is lent
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

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


def one_case(kind: str, size: int, cutn: int, iterations: int, device: str, precision: str,
             profile: bool = False) -> dict:  # fmt: skip
    from vqclip.generation.generator import setup, step
    from vqclip.generation.settings import GenerateSettings

    clips, vq = _models(kind, device)
    extra = {"cut_method": "pooled", "augments": ("affine", "perspective", "jitter", "erase"),
             "augment_p": 0.7} if kind == "imagenet" else {}  # fmt: skip
    s = GenerateSettings(prompts="a red circle", size=(size, size), cutn=cutn, device=device,
                         precision=precision, iterations=iterations + 1, **extra)  # fmt: skip
    loop = setup(s, clips, vq)
    step(loop, 0)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof

        with prof(activities=[ProfilerActivity.CPU]) as p:
            for i in range(1, iterations + 1):
                step(loop, i)
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    t0 = time.perf_counter()
    for i in range(1, iterations + 1):
        step(loop, i)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out = {"models": kind, "size": size, "cutn": cutn, "device": device, "precision": precision,
           "threads": torch.get_num_threads(),
           "s_per_it": round((time.perf_counter() - t0) / iterations, 4)}  # fmt: skip
    if device.startswith("cuda"):
        out["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def _spawn(args: list[str], threads: int, cutn: int, iterations: int) -> dict:
    cmd = [sys.executable, __file__, "--one", *args, "--threads", str(threads),
           "--cutn", str(cutn), "--iterations", str(iterations)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--gpu", action="store_true")
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
    cases = [("shapes", 64), ("shapes", 128), ("shapes", 256)]
    for threads in args.threads:
        for kind, size in cases:
            case = [kind, str(size), "cpu", "auto"]
            print(json.dumps(_spawn(case, threads, args.cutn, args.iterations)))
    case = ["imagenet", "256", "cpu", "auto"]  # a few iterations: seconds each on a CPU
    print(json.dumps(_spawn(case, max(args.threads), args.cutn, 2)))


if __name__ == "__main__":
    main()
