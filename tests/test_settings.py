"""Settings are checked field by field, wherever they come from, with one-line errors."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from tests.test_cli import assert_one_line_error, run
from vqclip.errors import VqclipError
from vqclip.generation.settings import GenerateSettings, SettingError

FIELDS = [f.name for f in dataclasses.fields(GenerateSettings)]
GOOD = GenerateSettings(prompts="a red circle").to_json()
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=2),
    max_leaves=5,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(FIELDS), value=ANY_JSON)
def test_from_json_gives_only_one_line_errors(name, value):
    data = {**GOOD, name: value}
    try:
        GenerateSettings.from_json(data).validate()
    except VqclipError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        if isinstance(e, SettingError):
            assert e.setting in FIELDS


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("prompts", True, ["'prompts'", "string"]),
        ("iterations", "x", ["'iterations'", "integer"]),
        ("size", [64], ["'size'", "list of 2"]),
        ("lr", -1, ["'lr'", "> 0"]),
        ("augments", ["flip", 3], ["'augments'", "string"]),
        ("nonsense", 1, ["unknown setting 'nonsense'"]),
    ],
)
def test_from_json_names_the_setting(name, value, words):
    with pytest.raises(VqclipError) as e:
        GenerateSettings.from_json({**GOOD, name: value}).validate()
    assert all(w in str(e.value) for w in words), str(e.value)


def test_good_settings_round_trip():
    s = GenerateSettings(prompts="a red circle", size=(32, 64), augments=("flip",))
    assert GenerateSettings.from_json(json.loads(json.dumps(s.to_json()))) == s


@pytest.mark.parametrize("bad", [{"prompts": True}, {"iterations": "x"}, {"size": [64]}])
def test_from_png_with_bad_settings_is_one_line(tmp_path, capsys, bad):
    png = tmp_path / "bad.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("vqclip", json.dumps({"settings": {**GOOD, **bad}}))
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    code, _, err = run(capsys, "generate", "--from", str(png), "--out", str(tmp_path / "o.png"))
    assert_one_line_error(code, err, str(png), next(iter(bad)))


def test_offline_arch_tag_fails_fast_in_one_line(tmp_path, capsys, monkeypatch):
    import vqclip.clip.load as load

    monkeypatch.setenv("VQCLIP_HOME", str(tmp_path))
    monkeypatch.setattr(load, "_reachable", lambda host, timeout=3.0: False)  # offline
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    t0 = time.perf_counter()
    code, _, err = run(capsys, "classify", str(tmp_path / "x.png"), "--labels", "a,b",
                       "--clip", "ViT-B-32:openai")  # fmt: skip
    assert time.perf_counter() - t0 < 10
    assert_one_line_error(code, err, "ViT-B-32:openai", "not cached")


def test_unwritable_out_fails_before_the_first_iteration(tmp_path, capsys, monkeypatch):
    import vqclip.generation.generator as generator

    def no_step(*a, **k):
        raise AssertionError("the loop started")

    monkeypatch.setattr(generator, "step", no_step)
    code, _, err = run(capsys, "generate", "a red circle", "--out", "/proc/vqclip-out.png")
    assert_one_line_error(code, err, "--out", "/proc/vqclip-out.png")
    (tmp_path / "dir.png").mkdir()
    code, _, err = run(capsys, "generate", "a red circle", "--out", str(tmp_path / "dir.png"))
    assert_one_line_error(code, err, "is a folder")
    code, _, err = run(capsys, "generate", "a red circle", "--out", str(tmp_path / "o.png"),
                       "--video", "/proc/v.mp4")  # fmt: skip
    assert_one_line_error(code, err, "--video")


def test_the_png_records_the_device(tmp_path, capsys):
    from vqclip.generation.outputs import read_meta

    out = tmp_path / "o.png"
    assert run(capsys, "generate", "a red circle", "--iterations", "1", "--cutn", "1",
               "--out", str(out), "-q")[0] == 0  # fmt: skip
    assert read_meta(out)["device"] == "cpu"
