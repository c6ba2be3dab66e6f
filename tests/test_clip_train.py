from __future__ import annotations

import json

from safetensors.torch import load_file

from tests.test_cli import assert_one_line_error, run
from tests.test_clip_loss import TINY
from vqclip.clip.load import load_clip
from vqclip.shapes import render, sample_scene


def _config(tmp_path):
    path = tmp_path / "tiny.json"
    cfg = dict(TINY)
    cfg["text_cfg"] = {**TINY["text_cfg"], "vocab_size": 49408, "context_length": 32}
    path.write_text(json.dumps(cfg))
    return path


def test_train_then_resume_then_load(tmp_path, capsys):
    cfg, out = _config(tmp_path), tmp_path / "run"
    common = ["train-clip", "--out", str(out), "--model-config", str(cfg), "--batch-size", "8",
              "--workers", "0", "--eval-every", "0", "--warmup", "2", "-q"]  # fmt: skip
    code, _, _ = run(capsys, *common, "--steps", "3", "--save-every", "2")
    assert code == 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3 and state["settings"]["batch_size"] == 8
    before = load_file(out / "checkpoint" / "model.safetensors")
    code, _, _ = run(capsys, *common, "--steps", "5", "--resume")
    assert code == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 5
    after = load_file(out / "checkpoint" / "model.safetensors")
    assert any(not (before[k] == after[k]).all() for k in before)
    clip = load_clip(str(out / "model"))
    emb = clip.encode_images([render(sample_scene(1), 16)])
    assert emb.shape == (1, 16)


def test_time_budget_counts_the_runs_time_across_resumes(tmp_path, capsys):
    """A resumed run goes on with the time it had used: a run whose checkpoint says it has
    spent its budget stops at once, where one that starts its clock afresh trains on."""
    cfg, out = _config(tmp_path), tmp_path / "run"
    common = ["train-clip", "--out", str(out), "--model-config", str(cfg), "--batch-size", "4",
              "--workers", "0", "--eval-every", "0", "--warmup", "1", "-q",
              "--time-budget", "3600"]  # fmt: skip
    assert run(capsys, *common, "--steps", "2")[0] == 0
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    assert state["step"] == 2 and 0 < state["elapsed_s"] < 3600
    path.write_text(json.dumps({**state, "elapsed_s": 3600.0}))  # as if the hour were used
    assert run(capsys, *common, "--steps", "50", "--resume")[0] == 0
    assert json.loads(path.read_text())["step"] == 2
    path.write_text(json.dumps({**state, "elapsed_s": 10.0}))  # ten seconds of the hour used
    assert run(capsys, *common, "--steps", "4", "--resume")[0] == 0
    after = json.loads(path.read_text())
    assert after["step"] == 4 and 10.0 < after["elapsed_s"] < 3600


def test_run_clock_counts_the_time_spent_before():
    from vqclip.training import RunClock, cosine_lr

    fresh, resumed = RunClock(1000, 100.0, 10), RunClock(1000, 100.0, 10, spent=50.0)
    assert fresh.progress(10) < 0.1 and 0.5 <= resumed.progress(10) < 0.6
    # half-way through the budget the learning rate is half-way down its cosine
    lr = cosine_lr(10, lr=1.0, min_lr=0.0, warmup=1, progress=resumed.progress(10))
    assert 0.3 < lr <= 0.5
    assert RunClock(1000, 100.0, 10, spent=100.0).done(10) and not fresh.done(10)


def test_train_on_a_csv(tmp_path, capsys):
    run(capsys, "shapes", "export", "--split", "train", "--n", "12", "--size", "16",
        "--out", str(tmp_path / "ds"), "-q")  # fmt: skip
    code, _, _ = run(capsys, "train-clip", "--data", str(tmp_path / "ds" / "captions.csv"),
                     "--out", str(tmp_path / "run"), "--model-config", str(_config(tmp_path)),
                     "--steps", "2", "--batch-size", "4", "--workers", "0", "--eval-every", "0",
                     "-q")  # fmt: skip
    assert code == 0
    assert (tmp_path / "run" / "model" / "open_clip_model.safetensors").exists()


def test_csv_with_missing_files_and_bad_resume(tmp_path, capsys):
    csv = tmp_path / "c.csv"
    csv.write_text("filepath,title\nnope.png,a red circle\n")
    code, _, err = run(capsys, "train-clip", "--data", str(csv), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "missing", "nope.png")
    code, _, err = run(capsys, "train-clip", "--out", str(tmp_path / "empty"), "--resume",
                       "--model-config", str(_config(tmp_path)), "--workers", "0")  # fmt: skip
    assert_one_line_error(code, err, "nothing to resume")


def test_init_copies_weights_and_hard_negatives_train(tmp_path, capsys):
    import torch

    from vqclip.clip.model import SHAPES_CLIP_CONFIG, build_model
    from vqclip.clip.train import _load_init

    model = build_model(SHAPES_CLIP_CONFIG)
    _load_init(model, "shapes")
    shipped = load_clip("shapes").model.state_dict()
    assert all(torch.equal(v, shipped[k].float()) for k, v in model.state_dict().items())
    tiny = str(_config(tmp_path))
    code, _, err = run(capsys, "train-clip", "--init", "shapes", "--model-config", tiny,
                       "--out", str(tmp_path / "r"), "--workers", "0")  # fmt: skip
    assert_one_line_error(code, err, "--init shapes", "do not fit")
    code, _, _ = run(capsys, "train-clip", "--hard-negatives", "--model-config", tiny,
                     "--out", str(tmp_path / "hn"), "--steps", "2", "--batch-size", "4",
                     "--workers", "0", "--eval-every", "0", "-q")  # fmt: skip
    assert code == 0
    state = json.loads((tmp_path / "hn" / "checkpoint" / "state.json").read_text())
    assert state["settings"]["hard_negatives"] is True
