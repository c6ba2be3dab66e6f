from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from vqclip import cli
from vqclip.shapes import files

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vqclip: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0]


def test_sample_writes_a_contact_sheet(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    code, _, _ = run(capsys, "shapes", "sample", "--n", "6", "--seed", "0", "--out", str(out))
    assert code == 0
    with Image.open(out) as im:
        assert im.size[0] > 4 * 64 and im.size[1] > 2 * 64


def test_export_then_judge_scenes(tmp_path, capsys):
    out = tmp_path / "ds"
    code, _, _ = run(
        capsys, "shapes", "export", "--split", "eval", "--n", "30", "--out", str(out), "-q"
    )
    assert code == 0
    lines = (out / "scenes.jsonl").read_text().splitlines()
    assert len(lines) == 30
    first = json.loads(lines[0])
    assert first["seed"] == 10_000_000 and first["image"] == "images/10000000.png"
    assert (out / first["image"]).exists()
    with (out / "captions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and rows[0]["title"] == first["captions"][0]
    assert rows[0]["filepath"] == first["image"]
    code, stdout, _ = run(capsys, "judge", "--scenes", str(out / "scenes.jsonl"), "--json",
                          "--mutations", "-q")  # fmt: skip
    report = json.loads(stdout)
    assert code == 0 and report["scenes"] == 30
    assert report["pass_rate"]["overall"] == 1.0
    assert report["mutations_rejected"]["overall"] == 1.0


def test_judge_one_image_exit_status(tmp_path, capsys):
    out = tmp_path / "ds"
    run(capsys, "shapes", "export", "--split", "eval", "--n", "2", "--out", str(out), "-q")
    scene = json.loads((out / "scenes.jsonl").read_text().splitlines()[1])
    o = scene["objects"][0]
    image = str(out / scene["image"])
    good = f"a {o['color']} {o['shape']}".replace("a o", "an o")
    code, stdout, _ = run(capsys, "judge", image, "--prompt", good)
    assert code == 0 and stdout.strip().endswith("PASS")
    code, stdout, _ = run(capsys, "judge", image, "--prompt", "three red crosses", "--json")
    assert code == 1 and json.loads(stdout)["passed"] is False


def test_bad_prompt_words(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 64), "white").save(img)
    code, _, err = run(capsys, "judge", str(img), "--prompt", "a mauve circle")
    assert_one_line_error(code, err, "mauve")
    code, _, err = run(capsys, "judge", str(img), "--prompt", "a red hexagon")
    assert_one_line_error(code, err, "hexagon")


def test_malformed_json_line_names_the_line(tmp_path, capsys):
    f = tmp_path / "scenes.jsonl"
    f.write_text('{"objects": []}\n{oops\n')
    code, _, err = run(capsys, "judge", "--scenes", str(f), "-q")
    assert_one_line_error(code, err, "scenes.jsonl:2", "malformed JSON")


def test_missing_image_file(tmp_path, capsys):
    code, _, err = run(capsys, "judge", str(tmp_path / "nope.png"), "--prompt", "a red circle")
    assert_one_line_error(code, err, "nope.png")
    f = tmp_path / "scenes.jsonl"
    f.write_text('{"objects": [], "image": "images/gone.png"}\n')
    code, _, err = run(capsys, "judge", "--scenes", str(f), "-q")
    assert_one_line_error(code, err, "gone.png")


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    code, _, err = run(capsys, "judge", str(bad), "--prompt", "a red circle")
    assert_one_line_error(code, err, "bad.png")


def test_unwritable_output_folder(capsys):
    # /proc refuses new folders even to root, so this holds wherever the tests run.
    code, _, err = run(capsys, "shapes", "export", "--split", "train", "--n", "2",
                       "--out", "/proc/vqclip-test/ds")  # fmt: skip
    assert_one_line_error(code, err, "/proc/vqclip-test")
    code, _, err = run(capsys, "shapes", "sample", "--n", "1", "--out", "/proc/vqclip.png")
    assert_one_line_error(code, err, "/proc")


def test_output_path_blocked_by_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "shapes", "export", "--split", "train", "--n", "2",
                       "--out", str(blocker / "ds"))  # fmt: skip
    assert_one_line_error(code, err, "cannot create folder")


@pytest.mark.parametrize(
    "argv",
    [
        ["shapes", "export", "--split", "train", "--n", "-1", "--out", "x"],
        ["shapes", "sample", "--n", "-5"],
        ["shapes", "export", "--split", "test", "--n", "1", "--out", "x"],
        ["shapes", "sample", "--size", "2"],
        ["judge"],
        ["nonsense"],
    ],
)
def test_bad_arguments_are_one_line_errors(argv, capsys):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err)


def test_interrupted_export_keeps_complete_files_only(tmp_path, capsys, monkeypatch):
    real_save = files.save_image
    calls = {"n": 0}

    def flaky_save(image, path, **kw):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        real_save(image, path, **kw)

    monkeypatch.setattr(files, "save_image", flaky_save)
    out = tmp_path / "ds"
    code, _, err = run(capsys, "shapes", "export", "--split", "train", "--n", "20",
                       "--out", str(out), "-q")  # fmt: skip
    assert code == 130 and "interrupted" in err
    names = sorted(p.name for p in out.rglob("*"))
    assert not [n for n in names if n.endswith(".tmp")]
    lines = (out / "scenes.jsonl").read_text().splitlines()
    assert len(lines) == 5 and len(list((out / "images").iterdir())) == 5
    for line in lines:
        with Image.open(out / json.loads(line)["image"]) as im:
            im.load()


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "vqclip", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "vqclip" in proc.stdout


@pytest.mark.parametrize("script", ["clip_gap.py", "right_renders.py", "from_render.py"])
def test_a_benchmark_given_an_unknown_clip_says_so_in_one_line(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--clip", str(tmp_path / "no-such-clip")],
        capture_output=True,
        text=True,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: no CLIP")
