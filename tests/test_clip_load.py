from __future__ import annotations

import json
import os
import pickle
import zipfile

import open_clip
import pytest
import torch
from PIL import Image

from tests.test_cli import assert_one_line_error, run
from vqclip.clip.load import load_clip, shapes_clip_dir
from vqclip.clip.model import build_model
from vqclip.errors import VqclipError
from vqclip.shapes import EVAL_SEED_START, render, sample_scene

OPENAI_TINY = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 64},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_openai(tmp_path_factory):
    """A tiny OpenAI-layout CLIP written as a state dict and as a TorchScript archive."""
    folder = tmp_path_factory.mktemp("openai")
    torch.manual_seed(0)
    model = build_model(OPENAI_TINY).eval()
    state = dict(model.state_dict())
    # OpenAI's files carry these sizes as tensors beside the weights.
    state["input_resolution"] = torch.tensor(32)
    torch.save(state, folder / "tiny.pt")
    image, text = torch.randn(2, 3, 32, 32), torch.randint(0, 49408, (2, 16))
    with torch.no_grad():
        traced = torch.jit.trace(model, (image, text), check_trace=False)
    traced.save(str(folder / "tiny_jit.pt"))
    return model, folder, image, text


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_openai_state_dict_and_torchscript_give_identical_embeddings(tiny_openai):
    model, folder, image, text = tiny_openai
    plain = load_clip(str(folder / "tiny.pt"))
    script = load_clip(str(folder / "tiny_jit.pt"))
    assert plain.image_size == 32 and plain.model.visual.patch_size == (8, 8)
    with torch.no_grad():
        ref_i, ref_t = model.encode_image(image), model.encode_text(text)
        for bundle in (plain, script):
            assert torch.equal(bundle.model.encode_image(image), ref_i)
            assert torch.equal(bundle.model.encode_text(text), ref_t)


def test_shipped_model_loads_in_plain_open_clip_with_the_same_embeddings():
    ours = load_clip("shapes")
    theirs = open_clip.create_model(f"local-dir:{shapes_clip_dir()}")
    theirs.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{shapes_clip_dir()}")
    images = [render(sample_scene(EVAL_SEED_START + i)) for i in range(4)]
    x = torch.stack([ours.preprocess(im) for im in images])
    texts = ["a red circle", "two blue stars on a white background"]
    with torch.no_grad():
        assert torch.allclose(
            theirs.encode_image(x, normalize=True), ours.encode_images(images), atol=1e-6
        )
        assert torch.allclose(
            theirs.encode_text(tokenizer(texts), normalize=True),
            ours.encode_texts(texts),
            atol=1e-6,
        )


def test_shipped_model_classifies_rendered_scenes():
    clip = load_clip("shapes")
    from vqclip.clip.zeroshot import TEMPLATE_SETS, ZeroShotClassifier

    scenes = [sample_scene(EVAL_SEED_START + i, kind="single") for i in range(40)]
    labels = sorted({f"{s.objects[0].color} {s.objects[0].shape}" for s in scenes})
    clf = ZeroShotClassifier.build(clip, labels, TEMPLATE_SETS["shapes"])
    pred = clf.predict(clip.encode_images([render(s) for s in scenes]))
    truth = [labels.index(f"{s.objects[0].color} {s.objects[0].shape}") for s in scenes]
    assert (pred == torch.tensor(truth)).float().mean() >= 0.95


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/vqclip-pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = "/tmp/vqclip-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(VqclipError, match="refusing to load"):
        load_clip(str(path))
    assert not os.path.exists(marker)


def test_a_torchscript_archive_asking_for_other_globals_is_refused(tmp_path):
    path = tmp_path / "evil_jit.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Evil(), protocol=2))
        zf.writestr("archive/constants.pkl", pickle.dumps(()))
    with pytest.raises(VqclipError, match="refusing to load"):
        load_clip(str(path))
    assert not os.path.exists("/tmp/vqclip-pwned")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("NoSuchArch:openai", ["unknown open_clip architecture"]),
        ("ViT-B-32:no_such_tag", ["unknown tag", "laion2b"]),
        ("missing-file.pt", ["no CLIP"]),
    ],
)
def test_bad_model_specs(spec, words, capsys, tmp_path):
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 64)).save(img)
    code, _, err = run(capsys, "classify", str(img), "--labels", "a,b", "--clip", spec)
    assert_one_line_error(code, err, *words)


def test_corrupt_and_mismatched_checkpoints(tmp_path, tiny_openai, capsys):
    _, folder, _, _ = tiny_openai
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes((folder / "tiny.pt").read_bytes()[:5000])
    with pytest.raises(VqclipError, match="cannot read checkpoint"):
        load_clip(str(truncated))
    with pytest.raises(VqclipError, match="does not match"):
        load_clip(str(folder / "tiny.pt"), arch="ViT-B-32")
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 64)).save(img)
    code, _, err = run(capsys, "classify", str(img), "--labels", "a,b", "--clip", str(truncated))
    assert_one_line_error(code, err, "cut.pt")


def test_classify_cli(tmp_path, capsys):
    scenes = [sample_scene(EVAL_SEED_START + i, kind="single") for i in range(3)]
    paths = []
    for i, s in enumerate(scenes):
        paths.append(tmp_path / f"{i}.png")
        render(s).save(paths[-1])
    labels = sorted({f"{s.objects[0].color} {s.objects[0].shape}" for s in scenes} | {"green star"})
    code, out, _ = run(capsys, "classify", *map(str, paths), "--labels", ",".join(labels),
                       "--templates", "shapes", "--top-k", "2", "--json", "-q")  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    for s, row in zip(scenes, rows, strict=True):
        assert row["top"][0]["label"] == f"{s.objects[0].color} {s.objects[0].shape}"
        assert len(row["top"]) == 2


def test_classify_bad_inputs(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 64)).save(img)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    code, _, err = run(capsys, "classify", str(bad), "--labels", "a,b")
    assert_one_line_error(code, err, "bad.png")
    code, _, err = run(capsys, "classify", str(img), "--labels", " , ")
    assert_one_line_error(code, err, "no labels")
    code, _, err = run(capsys, "classify", str(img))
    assert_one_line_error(code, err, "--labels")
    code, _, err = run(capsys, "classify", str(img), "--labels", "a", "--templates", "nope")
    assert_one_line_error(code, err, "unknown templates")


def test_eval_clip_cli_small(capsys):
    code, out, _ = run(capsys, "eval-clip", "--n", "60", "--json", "-q")
    report = json.loads(out)
    assert code == 0 and report["n"] == 60
    assert set(report["zero_shot"]) == {
        "colour", "shape", "position", "colour+shape seen", "colour+shape held-out"
    }  # fmt: skip
    assert report["zero_shot"]["colour"]["ensemble"] > 0.9
    assert 0.0 <= report["retrieval"]["text-to-image R@1"] <= 1.0


def test_cached_pretrained_lists_exactly_the_models_in_the_cache(tmp_path, monkeypatch, capsys):
    """The UI's CLIP picker and `vqclip models` offer the open_clip models that load
    offline: those whose weights sit in vqclip's cache where open_clip's download looks."""
    from vqclip.clip.load import _in_cache, cached_pretrained
    from vqclip.ui import _cached_models

    monkeypatch.setenv("VQCLIP_HOME", str(tmp_path))
    assert cached_pretrained() == []
    cache = tmp_path / "open_clip"
    # ViT-B-32:openai's hub entry (timm/vit_base_patch32_clip_224.openai/) as hf_hub_download
    # leaves it: refs/main names the snapshot that holds the safetensors file
    repo = cache / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    # ViT-B-16:openai's OpenAI file under its URL's name: open_clip prefers its hub entry,
    # so this file alone does not make it load offline
    url = open_clip.get_pretrained_cfg("ViT-B-16", "openai")["url"]
    (cache / url.rsplit("/", 1)[-1]).write_bytes(b"x")
    assert cached_pretrained() == ["ViT-B-32:openai", "ViT-B-32-quickgelu:openai"]  # same file
    assert _cached_models("clip") == cached_pretrained()
    code, out, _ = run(capsys, "models")  # `vqclip models` names them too
    assert code == 0 and "ViT-B-32:openai" in out and "ViT-B-16:openai" not in out
    assert _in_cache({"url": url}, cache)  # an entry with no hub: the URL's file counts
    assert not _in_cache({"url": url.replace("ViT-B-16", "ViT-L-14")}, cache)
    (snapshot / "open_clip_model.safetensors").unlink()  # a snapshot without the weights
    assert cached_pretrained() == []
