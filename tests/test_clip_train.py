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
