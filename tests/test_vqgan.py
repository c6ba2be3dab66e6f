from __future__ import annotations

import http.server
import json
import os
import pickle
import sys
import threading
import types
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_cli import assert_one_line_error, run
from vqclip.errors import VqclipError
from vqclip.hub import fetch
from vqclip.vqgan.load import REGISTRY, config_from_params, load_vqgan
from vqclip.vqgan.model import VQGAN, VQGANConfig
from vqclip.vqgan.quantize import VectorQuantizer

FIXTURES = Path(__file__).parent / "fixtures"
TINY_PARAMS = {
    "embed_dim": 8,
    "n_embed": 16,
    "ddconfig": {
        "double_z": False, "z_channels": 32, "resolution": 16, "in_channels": 3, "out_ch": 3,
        "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8],
        "dropout": 0.0,
    },
    "lossconfig": {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fixture"),
    [
        ("imagenet_f16_16384", "taming_imagenet_f16_16384.json"),
        ("gumbel_f8_8192", "taming_gumbel_f8_8192.json"),
    ],
)
def test_full_size_models_have_the_official_names_and_shapes(name, fixture):
    entry = REGISTRY[name]
    with torch.device("meta"):
        model = VQGAN(config_from_params(entry.params, entry.target))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == json.loads((FIXTURES / fixture).read_text())


def _fake_lightning_class():
    """A class that pickles as pytorch_lightning's ModelCheckpoint, as official files hold."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks",
             "pytorch_lightning.callbacks.model_checkpoint"]  # fmt: skip
    for n in names:
        sys.modules.setdefault(n, types.ModuleType(n))
    cls = type("ModelCheckpoint", (), {"__module__": names[-1]})
    sys.modules[names[-1]].ModelCheckpoint = cls
    return cls, names


@pytest.fixture()
def official_tiny(tmp_path):
    """A tiny checkpoint in the official layout: Lightning dict + taming yaml."""
    cfg = config_from_params(TINY_PARAMS, "taming.models.vqgan.VQModel")
    torch.manual_seed(0)
    model = VQGAN(cfg).eval()
    state = dict(model.state_dict())
    state["loss.discriminator.main.0.weight"] = torch.randn(4, 3, 4, 4)
    state["loss.logvar"] = torch.zeros(())
    cls, names = _fake_lightning_class()
    ckpt = {
        "epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.0.8",
        "state_dict": state, "callbacks": {cls: {"best_model_score": torch.tensor(0.5)}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}], "lr_schedulers": [],
    }  # fmt: skip
    torch.save(ckpt, tmp_path / "last.ckpt")
    for n in reversed(names):
        del sys.modules[n]
    config = {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.vqgan.VQModel",
                        "params": TINY_PARAMS}}  # fmt: skip
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(config))
    return model, tmp_path


def test_official_layout_loads_strictly_and_round_trips(official_tiny):
    model, folder = official_tiny
    loaded = load_vqgan(config=folder / "model.yaml", checkpoint=folder / "last.ckpt")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        q1, _, i1 = model.encode(x)
        q2, _, i2 = loaded.encode(x)
        assert torch.equal(i1, i2) and torch.equal(q1, q2)
        assert torch.equal(model.decode(q1), loaded.decode(q2))
        # z + (z_q - z).detach() equals z_q up to rounding
        assert torch.allclose(loaded.decode_indices(i2), loaded.decode(q2), atol=1e-5)
    assert loaded.factor == 2 and loaded.codebook.shape == (16, 8)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/vqclip-vqgan-pwned",))


def test_malicious_checkpoint_is_refused(official_tiny):
    _, folder = official_tiny
    marker = Path("/tmp/vqclip-vqgan-pwned")
    marker.unlink(missing_ok=True)
    with (folder / "evil.ckpt").open("wb") as f:
        pickle.dump({"state_dict": {}, "x": _Evil()}, f)
    with pytest.raises(VqclipError, match="refusing to load"):
        load_vqgan(config=folder / "model.yaml", checkpoint=folder / "evil.ckpt")
    assert not marker.exists()


def test_bad_yaml_and_mismatched_checkpoints(official_tiny, tmp_path, capsys):
    _, folder = official_tiny
    missing = {k: v for k, v in TINY_PARAMS.items() if k != "n_embed"}
    bad = tmp_path / "missing.yaml"
    bad.write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel",
                                             "params": missing}}))  # fmt: skip
    code, _, err = run(capsys, "eval-vqgan", "--vqgan-config", str(bad),
                       "--vqgan-checkpoint", str(folder / "last.ckpt"), "-q")  # fmt: skip
    assert_one_line_error(code, err, "n_embed")
    unknown = tmp_path / "unknown.yaml"
    params = {**TINY_PARAMS, "ddconfig": {**TINY_PARAMS["ddconfig"], "chanel_mult": [1]}}
    unknown.write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel",
                                                 "params": params}}))  # fmt: skip
    with pytest.raises(VqclipError, match="chanel_mult"):
        load_vqgan(config=unknown, checkpoint=folder / "last.ckpt")
    wrong = tmp_path / "wrong.yaml"
    params = {**TINY_PARAMS, "n_embed": 32}
    wrong.write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel",
                                               "params": params}}))  # fmt: skip
    code, _, err = run(capsys, "eval-vqgan", "--vqgan-config", str(wrong),
                       "--vqgan-checkpoint", str(folder / "last.ckpt"), "-q")  # fmt: skip
    assert_one_line_error(code, err, "quantize.embedding.weight", "(16, 8)")


def test_unknown_registry_name_and_offline_missing_file(capsys, tmp_path, monkeypatch):
    code, _, err = run(capsys, "eval-vqgan", "--vqgan", "imagenet_f16_99", "-q")
    assert_one_line_error(code, err, "unknown VQGAN", "imagenet_f16_16384")
    monkeypatch.setenv("VQCLIP_HOME", str(tmp_path))
    with pytest.raises(VqclipError) as e:
        load_vqgan("imagenet_f16_16384", download=False)
    assert REGISTRY["imagenet_f16_16384"].checkpoint_url in str(e.value)
    assert str(tmp_path / "vqgan" / "imagenet_f16_16384.ckpt") in str(e.value)


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves 1000 bytes; the first answer breaks off after 400, later ones honour Range."""

    payload = bytes(range(256)) * 3 + bytes(232)
    first = True

    def do_GET(self):
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.end_headers()
        if _Flaky.first:
            _Flaky.first = False
            self.wfile.write(self.payload[:400])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(self.payload[start:])

    def log_message(self, *args):
        pass


def test_truncated_download_never_passes_as_complete_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("VQCLIP_HOME", str(tmp_path))
    server = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/model.ckpt"
    try:
        with pytest.raises(VqclipError, match=r"run again to resume|cannot download"):
            fetch(url, "vqgan/x.ckpt", timeout=5)
        assert not (tmp_path / "vqgan" / "x.ckpt").exists()
        path = fetch(url, "vqgan/x.ckpt", timeout=5)
        assert path.read_bytes() == _Flaky.payload
    finally:
        server.shutdown()


def test_straight_through_gradient_and_commitment_weighting():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    for legacy in (True, False):
        q = VectorQuantizer(8, 4, beta=0.25, legacy=legacy)
        zq, loss, idx = q(z)
        (zq.sum()).backward(retain_graph=True)
        assert torch.equal(z.grad, torch.ones_like(z))  # straight through
        z.grad = None
        e = q.embedding(idx).permute(0, 3, 1, 2)
        d = torch.mean((e - z) ** 2).item()
        assert loss.item() == pytest.approx(1.25 * d, rel=1e-5)  # same value either way
        _, loss2, _ = q(z)
        loss2.backward()
        enc_grad = z.grad.abs().sum().item()
        z.grad = None
        weight = 1.0 if legacy else 0.25  # the encoder's (commitment) share
        assert enc_grad == pytest.approx(
            weight * 2 * (e - z).abs().sum().item() / e.numel(), rel=1e-4
        )


def test_unknown_config_key_is_an_error():
    with pytest.raises(VqclipError, match="unknown"):
        VQGANConfig.from_dict({"embed_dim": 4, "n_embd": 16})


def test_train_vqgan_and_resume(tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    tiny = config_from_params(TINY_PARAMS, "taming.models.vqgan.VQModel")
    cfg.write_text(json.dumps(tiny.to_dict()))
    out = tmp_path / "run"
    common = ["train-vqgan", "--out", str(out), "--config", str(cfg), "--batch-size", "4",
              "--workers", "0", "--warmup", "1", "--reinit-every", "2", "--disc-start", "0.5",
              "--save-every", "0", "-q"]  # fmt: skip
    assert run(capsys, *common, "--steps", "3")[0] == 0
    first = json.loads((out / "checkpoint" / "state.json").read_text())
    assert first["step"] == 3
    assert run(capsys, *common, "--steps", "4", "--resume")[0] == 0
    second = json.loads((out / "checkpoint" / "state.json").read_text())
    # the run's wall time goes on from where it stopped (what --time-budget counts)
    assert second["step"] == 4 and second["elapsed_s"] > first["elapsed_s"] > 0
    model = load_vqgan(str(out / "model"))
    assert model.config == tiny


def test_shipped_vqgan_reconstructs_scenes_that_pass_the_judge(capsys):
    code, out, _ = run(capsys, "eval-vqgan", "--n", "64", "--json", "-q")
    report = json.loads(out)
    assert code == 0
    assert report["psnr"] > 30 and report["judge_pass"] >= 0.95
    assert report["codes_used"] >= report["codebook_size"] // 2


def test_experiment_configs_build_the_factor_they_are_named_for():
    from vqclip.vqgan.train import load_vqgan_config

    root = Path(__file__).resolve().parents[1] / "configs"
    paths = sorted(root.glob("shapes-vqgan-f*.json"))
    assert paths
    for path in paths:
        model = VQGAN(load_vqgan_config(str(path)))
        factor = int(path.stem.rsplit("-f", 1)[1])
        assert model.factor == factor
        z = model.encode_latent(torch.zeros(1, 3, 64, 64))
        assert z.shape[-2:] == (64 // factor, 64 // factor)
