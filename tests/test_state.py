"""Resumable single runs: --save-state / --resume-state, through a SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from safetensors import safe_open

from tests.test_cli import assert_one_line_error, run

ARGS = ("generate", "a red circle", "--iterations", "30", "--cutn", "8", "-q")


def _next(path):
    try:
        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()["vqclip_state"])["next"]
    except Exception:  # not there yet, or being replaced
        return 0


def test_killed_run_resumes_to_the_same_png(tmp_path):
    killed, whole = tmp_path / "k.png", tmp_path / "u.png"
    state = killed.with_suffix(".state.safetensors")
    cmd = [sys.executable, "-m", "vqclip", *ARGS, "--out", str(killed), "--save-state", "5"]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 120
    while _next(state) < 10 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and _next(state) >= 10
    subprocess.run([*cmd, "--resume-state", str(state)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "vqclip", *ARGS, "--out", str(whole)], check=True,
                   timeout=120)  # fmt: skip
    assert killed.read_bytes() == whole.read_bytes()
    assert not state.exists()  # a finished run leaves no state behind


def test_state_of_other_settings_is_refused(tmp_path, capsys):
    from vqclip.generation.generator import save_state, setup
    from vqclip.generation.settings import GenerateSettings

    loop = setup(GenerateSettings(prompts="a red circle", iterations=30, cutn=8))
    state = tmp_path / "s.state.safetensors"
    save_state(loop, 3, state)
    code, _, err = run(capsys, *ARGS[:-1], "--lr", "0.05", "--out", str(tmp_path / "x.png"),
                       "--resume-state", str(state))  # fmt: skip
    assert_one_line_error(code, err, "lr", "same flags")
    code, _, err = run(capsys, *ARGS, "--out", str(tmp_path / "x.png"), "--resume-state",
                       str(tmp_path / "missing.safetensors"))  # fmt: skip
    assert_one_line_error(code, err, "not found")
    (tmp_path / "junk.safetensors").write_bytes(b"not a state")
    code, _, err = run(capsys, *ARGS, "--out", str(tmp_path / "x.png"), "--resume-state",
                       str(tmp_path / "junk.safetensors"))  # fmt: skip
    assert_one_line_error(code, err, "not a vqclip state file")
