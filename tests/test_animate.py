"""Zoom/pan animations: the move, frames with their settings, story prompts, resuming."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.test_cli import assert_one_line_error, run
from vqclip.generation.animate import Motion, move
from vqclip.generation.outputs import read_meta, read_settings


def _pattern() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))


def test_move_identity_shift_and_zoom():
    im = _pattern()
    assert np.array_equal(np.asarray(move(im, Motion(1.0))), np.asarray(im))
    shifted = np.asarray(move(im, Motion(1.0, 0.0, (3.0, 0.0))))
    assert np.array_equal(shifted[:, 3:], np.asarray(im)[:, :-3])  # 3 pixels to the right
    zoomed = np.asarray(move(im, Motion(2.0))).astype(int)
    centre = np.asarray(im.resize((64, 64), Image.Resampling.BILINEAR))[16:48, 16:48]
    assert np.abs(zoomed - centre.astype(int)).mean() < 20  # the middle half, enlarged
    assert not np.array_equal(zoomed, np.asarray(im))


def test_animate_frames_story_and_resume(tmp_path, capsys):
    out = tmp_path / "frames"
    argv = ("animate", "a red circle ^ a blue square", "--frames", "4", "--iterations", "4",
            "--iterations-per-frame", "2", "--zoom", "1.1", "--rotate", "3", "--cutn", "4",
            "--out-dir", str(out), "-q")  # fmt: skip
    assert run(capsys, *argv, "--sheet", str(tmp_path / "sheet.png"))[0] == 0
    assert Image.open(tmp_path / "sheet.png").size[0] == 8 * (96 + 6) + 6  # eight columns
    frames = sorted(out.glob("*.png"))
    assert [f.name for f in frames] == [f"{i:05d}.png" for i in range(4)]
    settings = [read_settings(f) for f in frames]
    assert [s.prompts for s in settings] == ["a red circle"] * 2 + ["a blue square"] * 2
    assert [s.iterations for s in settings] == [4, 2, 2, 2]
    assert settings[2].init_image == str(out / "inits" / "00002.png")
    assert [read_meta(f)["frame"] for f in frames] == [0, 1, 2, 3]
    whole = [f.read_bytes() for f in frames]
    frames[2].unlink()  # as if stopped after frame 1
    frames[3].unlink()
    assert run(capsys, *argv)[0] == 0
    assert [f.read_bytes() for f in sorted(out.glob("*.png"))] == whole


def test_bad_motion_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "animate", "a red circle", "--zoom", "0", "--out-dir",
                       str(tmp_path))  # fmt: skip
    assert_one_line_error(code, err, "--zoom")
    code, _, err = run(capsys, "animate", "a red circle", "--frames", "0", "--out-dir",
                       str(tmp_path))  # fmt: skip
    assert_one_line_error(code, err, "--frames")
