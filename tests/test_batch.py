"""Batch generation: prompt files, seeds, the manifest, --resume and torchrun sharding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.test_cli import assert_one_line_error, run
from vqclip.errors import VqclipError
from vqclip.generation.batch import make_items, parse_seeds, read_prompts_file

FAST = ("--iterations", "3", "--cutn", "4", "-q")


def _file(tmp_path, text):
    path = tmp_path / "prompts.txt"
    path.write_text(text)
    return path


def test_prompts_file_skips_comments_and_blanks(tmp_path):
    path = _file(tmp_path, "# a comment\na red circle\n\n  a blue square | a star:-1  \n#x\n")
    assert read_prompts_file(path) == [(2, "a red circle"), (4, "a blue square | a star:-1")]


def test_malformed_line_names_file_and_line_and_makes_nothing(tmp_path, capsys):
    path = _file(tmp_path, "a red circle\na blue square:x:y:z\n")
    out = tmp_path / "out"
    code, _, err = run(capsys, "generate", "--prompts-file", str(path), "--out-dir", str(out))
    assert_one_line_error(code, err, f"{path}:2")
    assert not out.exists() or not any(out.iterdir())


def test_empty_and_missing_files_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "generate", "--prompts-file", str(_file(tmp_path, "# x\n\n")),
                       "--out-dir", str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "holds no prompts")
    code, _, err = run(capsys, "generate", "--prompts-file", str(tmp_path / "nope.txt"),
                       "--out-dir", str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "not found")


def test_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5") == [5]
    assert parse_seeds("0-1,7,1") == [0, 1, 7]
    for bad in ("", "a", "3-1", "-2", "1-"):
        with pytest.raises(VqclipError, match="--seeds"):
            parse_seeds(bad)


def test_batch_manifest_and_resume(tmp_path, capsys):
    path = _file(tmp_path, "a red circle\na blue square\n")
    out = tmp_path / "out"
    argv = ("generate", "--prompts-file", str(path), "--out-dir", str(out), "--seeds", "0-1")
    assert run(capsys, *argv, *FAST)[0] == 0
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    items = make_items(read_prompts_file(path), [0, 1])
    assert [r["id"] for r in records] == [it.id for it in items]
    assert [(r["prompt"], r["seed"]) for r in records] == [(it.prompt, it.seed) for it in items]
    for r in records:
        assert (out / r["file"]).is_file() and r["seconds"] > 0 and "score" in r
    code, _, err = run(capsys, *argv, *FAST)  # again without --resume: refused
    assert_one_line_error(code, err, "--resume")
    # a lost PNG and a cut-off manifest line: those items are made again, the rest kept
    first = out / records[0]["file"]
    kept = out / records[3]["file"]
    before = kept.stat().st_mtime_ns
    first.unlink()
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20] + "\n"
                                        + lines[3] + "\n")  # fmt: skip
    assert run(capsys, *argv, "--resume", *FAST)[0] == 0
    assert first.is_file() and kept.stat().st_mtime_ns == before
    again = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in again) == [it.id for it in items]


def test_batch_flags_need_a_batch(tmp_path, capsys):
    code, _, err = run(capsys, "generate", "a red circle", "--seeds", "0-3")
    assert_one_line_error(code, err, "--prompts-file")
    code, _, err = run(capsys, "generate", "--out-dir", str(tmp_path))
    assert_one_line_error(code, err, "--prompts-file")


def test_torchrun_two_processes_match_one(tmp_path):
    path = _file(tmp_path, "a red circle\na blue square\na green triangle\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = ["generate", "--prompts-file", str(path), "--seeds", "0-1", *FAST]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "vqclip", *base, "--out-dir", str(one)], env=env,
                   check=True, timeout=300)  # fmt: skip
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", "29561", "-m", "vqclip", *base, "--out-dir", str(two)],
                   env=env, check=True, timeout=300, capture_output=True)  # fmt: skip
    records = [json.loads(x) for x in (two / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 6 and len({r["id"] for r in records}) == 6  # each exactly once
    assert {r["rank"] for r in records} == {0, 1}
    assert not list(two.glob("manifest.rank*.jsonl"))  # merged
    for r in records:
        assert (two / r["file"]).read_bytes() == (one / r["file"]).read_bytes(), r["file"]
