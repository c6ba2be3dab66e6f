from __future__ import annotations

import json

from tests.test_cli import run
from vqclip.evaluate.generate_eval import CATEGORIES, prompts_for, wilson
from vqclip.shapes import HELD_OUT, parse_prompt


def test_prompts_fall_in_their_categories():
    for category in CATEGORIES:
        prompts = prompts_for(category, 12)
        assert len(prompts) == 12 and prompts == prompts_for(category, 12)
        for text in prompts:
            p = parse_prompt(text)
            pairs = {(o.color, o.shape) for o in p.objects}
            if category in ("single", "position", "held-out"):
                assert p.kind == "single" and p.objects[0].color and p.objects[0].shape
                assert (p.objects[0].cell is not None) == (category == "position")
                assert bool(pairs & HELD_OUT) == (category == "held-out")
            else:
                assert p.kind == category


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and lo > 0.39 and hi < 0.61
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_eval_generate_cli_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "se"
    code, stdout, _ = run(capsys, "eval-generate", "--n", "1", "--iterations", "2",
                          "--ablate", "--out", str(out), "--json", "-q")  # fmt: skip
    assert code == 0
    report = json.loads(stdout)
    assert set(report) == {"defaults", "defaults unpruned", "plain"}  # plain: no pruning
    assert set(report["defaults"]) == set(CATEGORIES)
    assert all(r["n"] == 1 and 0 <= r["pass_rate"] <= 1 for r in report["defaults"].values())
    assert (out / "shapeseval.md").read_text().startswith("| category |")
    assert json.loads((out / "shapeseval.json").read_text()) == report
    assert (out / "sheet.png").exists()


def test_eval_generate_under_torchrun_matches_one_process(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = ["-m", "vqclip", "eval-generate", "--per-category", "2", "--iterations", "2",
            "--categories", "single,pair", "--json", "-q"]  # fmt: skip
    one = subprocess.run([sys.executable, *argv, "--out", str(tmp_path / "one")], env=env,
                         check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "29563"]  # fmt: skip
    two = subprocess.run([*torchrun, *argv, "--out", str(tmp_path / "two")], env=env,
                         check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # only rank 0 prints
    for cat in ("single", "pair"):
        for key in ("pass_rate", "lenient_rate", "attributes", "clip_score", "n"):
            assert a["defaults"][cat][key] == b["defaults"][cat][key], (cat, key)
    assert (tmp_path / "two" / "sheet.png").read_bytes() == (
        tmp_path / "one" / "sheet.png"
    ).read_bytes()


def test_eval_generate_settings_are_applied_and_checked(tmp_path, capsys):
    out = tmp_path / "se"
    args = ["eval-generate", "--n", "1", "--categories", "single", "--out", str(out), "-q",
            "--json"]  # fmt: skip
    code, a, _ = run(capsys, *args, "--settings", '{"iterations": 1}')
    code2, b, _ = run(capsys, *args, "--settings", '{"iterations": 1, "init_noise": "codes"}')
    assert code == code2 == 0
    score = json.loads(a)["defaults"]["single"]["clip_score"]
    assert score != json.loads(b)["defaults"]["single"]["clip_score"]
    for bad, named in [("nope", "not JSON"), ('{"lr": "a"}', "'lr'"), ('{"seed": 1}', "seed"),
                       ('{"cutn": 0}', "--cutn")]:  # fmt: skip
        code, _, err = run(capsys, *args, "--settings", bad)
        assert code != 0 and named in err and len(err.strip().splitlines()) == 1, err


def test_the_unpruned_row_is_the_same_loop_before_pruning(tmp_path, capsys):
    args = ["eval-generate", "--n", "2", "--iterations", "20", "--categories", "single,count",
            "--out", str(tmp_path / "se"), "-q", "--json"]  # fmt: skip
    code, pruned, _ = run(capsys, *args)
    code2, off, _ = run(capsys, *args, "--settings", '{"prune": null}')
    assert code == code2 == 0
    pruned, off = json.loads(pruned), json.loads(off)
    assert set(off) == {"defaults"}  # pruning off: no paired row
    for cat in ("single", "count"):
        before = pruned["defaults unpruned"][cat]
        for key in ("pass_rate", "lenient_rate", "attributes", "n"):
            assert before[key] == off["defaults"][cat][key], (cat, key)
        assert before["clip_score"] is None
