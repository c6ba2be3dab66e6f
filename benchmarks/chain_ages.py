"""How old the persistent chains of a critic's training run are, against the loop's length.

A critic trained with ``--samples`` learns from the states of its replay buffer's chains;
the generator's picture is a chain's state at its last step (``--iterations``, times
``--pair-steps`` for a laid-out pair). With ``--sample-reinit`` p, each time a chain is
picked it starts again with chance p, so few chains live to the loop's length and the
critic mostly sees young, blobby states. This reads the buffers of a training run's
checkpoint (safetensors: no code runs) and prints, per buffer, how many chains it holds,
their mean age, how many are in each band of ten steps, and how many are at least
``--late`` steps old (default: the generator's iterations minus ten).

    python benchmarks/chain_ages.py runs/critic_rtw [--late 50]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vqclip.errors import run_script
from vqclip.generation.settings import GenerateSettings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a train-clip output folder (with checkpoint/)")
    p.add_argument("--late", type=int, default=GenerateSettings.iterations - 10,
                   help="the age from which a chain counts as late")  # fmt: skip
    args = p.parse_args()
    files = sorted((args.run / "checkpoint").glob("buffer_*.safetensors"))
    if not files:
        raise SystemExit(
            f"error: no replay buffers in {args.run / 'checkpoint'}; "
            "pass the folder of a train-clip run made with --samples"
        )
    for f in files:
        try:
            age = load_file(f)["age"]
        except (SafetensorError, OSError, KeyError) as e:
            raise SystemExit(
                f"error: cannot read chain ages from {f} ({type(e).__name__}: {e}); "
                "pass a train-clip run whose checkpoint finished writing"
            ) from None
        print(json.dumps(ages(age, args.late) | {"buffer": f.stem}))


def ages(age: torch.Tensor, late: int) -> dict[str, object]:
    """Summary of one buffer's chain ages (train-clip refuses an empty buffer): count, mean,
    ten-step bands, late chains."""
    bands = torch.bincount(age.long() // 10).tolist()
    return {
        "chains": age.numel(),
        "mean_age": round(float(age.float().mean()), 1),
        "per_ten_steps": {f"{10 * i}-{10 * i + 9}": n for i, n in enumerate(bands) if n},
        f"at_least_{late}": int((age >= late).sum()),
    }


if __name__ == "__main__":
    run_script(main)
