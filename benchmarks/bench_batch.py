"""Items per minute of batch generation: one process vs two under torchrun, on this CPU.

A 32-prompt file (ShapesEval's single-object prompts) is made with ``vqclip generate
--prompts-file`` three ways: one process with 1 thread, one process with 2 threads, and
``torchrun --nproc_per_node 2`` with 1 thread each. Wall time includes loading the models.

    python benchmarks/bench_batch.py [--n 32] [--iterations 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vqclip.errors import run_script

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe


def main() -> None:
    from vqclip.evaluate.generate_eval import prompts_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--iterations", type=int, default=20)
    args = p.parse_args()
    print(f"# {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text("\n".join(prompts_for("single", args.n)) + "\n")
        gen = ["-m", "vqclip", "generate", "--prompts-file", str(prompts), "--iterations",
               str(args.iterations), "-q"]  # fmt: skip
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", "29571"]  # fmt: skip
        runs = {
            "1 process, 1 thread": ([sys.executable, *gen], "1"),
            "1 process, 2 threads": ([sys.executable, *gen], "2"),
            "torchrun 2 processes, 1 thread each": ([*torchrun, *gen], "1"),
        }
        for k, (name, (cmd, threads)) in enumerate(runs.items()):
            out = Path(tmp) / f"out{k}"
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            t0 = time.perf_counter()
            subprocess.run([*cmd, "--out-dir", str(out)], env=env, check=True)
            wall = time.perf_counter() - t0
            made = len((out / "manifest.jsonl").read_text().splitlines())
            row = {
                "run": name,
                "items": made,
                "iterations": args.iterations,
                "wall_s": round(wall, 1),
                "items_per_min": round(made / wall * 60, 2),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    run_script(main)
