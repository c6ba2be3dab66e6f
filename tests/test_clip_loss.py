from __future__ import annotations

import math
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from vqclip.clip.loss import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE, clip_loss, logit_scale_value
from vqclip.clip.model import build_model

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
}


def naive_loss(img: torch.Tensor, txt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The CLIP loss written row by row, straight from the paper's pseudocode."""
    i_e = img / img.norm(dim=1, keepdim=True)
    t_e = txt / txt.norm(dim=1, keepdim=True)
    scale = min(math.exp(float(t)), MAX_LOGIT_SCALE)
    n = img.shape[0]
    rows = cols = 0.0
    for i in range(n):
        logits_i = torch.stack([scale * (i_e[i] @ t_e[j]) for j in range(n)])
        rows = rows - torch.log_softmax(logits_i, 0)[i]
        logits_c = torch.stack([scale * (i_e[j] @ t_e[i]) for j in range(n)])
        cols = cols - torch.log_softmax(logits_c, 0)[i]
    return (rows / n + cols / n) / 2


def test_loss_matches_naive_rows_and_columns():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    t = torch.tensor(INIT_LOGIT_SCALE)
    loss, acc = clip_loss(img, txt, t)
    assert torch.allclose(loss, naive_loss(img, txt, t), atol=1e-5)
    assert 0.0 <= float(acc) <= 1.0


def test_hard_negatives_join_the_text_to_image_direction_only():
    g = torch.Generator().manual_seed(2)
    img, txt, neg = (torch.randn(6, 5, generator=g) for _ in range(3))
    t = torch.tensor(INIT_LOGIT_SCALE)
    loss, _ = clip_loss(img, txt, t, negatives=neg)
    i_e, t_e, n_e = (F.normalize(x, dim=1) for x in (img, txt, neg))
    scale = math.exp(INIT_LOGIT_SCALE)
    rows = F.cross_entropy(scale * i_e @ t_e.T, torch.arange(6))
    cols = torch.stack([
        -torch.log_softmax(scale * torch.cat([i_e @ t_e[j], n_e @ t_e[j]]), 0)[j]
        for j in range(6)
    ]).mean()  # fmt: skip
    assert torch.allclose(loss, (rows + cols) / 2, atol=1e-5)
    plain, _ = clip_loss(img, txt, t)
    assert float(loss) > float(plain)  # more competitors can only raise the loss


def test_matched_pairs_give_low_loss_and_full_accuracy():
    x = F.normalize(torch.randn(8, 16), dim=1)
    loss, acc = clip_loss(x, x, torch.tensor(math.log(100.0)))
    shuffled, _ = clip_loss(x, x[torch.randperm(8)], torch.tensor(math.log(100.0)))
    assert float(acc) == 1.0 and float(loss) < float(shuffled)


def test_temperature_is_clamped_at_100():
    assert float(logit_scale_value(torch.tensor(10.0))) == MAX_LOGIT_SCALE
    assert math.isclose(float(logit_scale_value(torch.tensor(1.0))), math.e, rel_tol=1e-6)
    g = torch.Generator().manual_seed(1)
    img, txt = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    big, _ = clip_loss(img, txt, torch.tensor(10.0))
    at_100, _ = clip_loss(img, txt, torch.tensor(math.log(100.0)))
    assert torch.allclose(big, at_100)
    assert math.isclose(INIT_LOGIT_SCALE, math.log(1 / 0.07))


def _batch(n: int):
    g = torch.Generator().manual_seed(42)
    images = torch.randn(n, 3, 16, 16, generator=g)
    tokens = torch.randint(1, 100, (n, 8), generator=g)
    return images, tokens


def _model():
    torch.manual_seed(0)
    return build_model(TINY)


def _worker(rank: int, world: int, port: int, q) -> None:  # pragma: no cover - runs in a child
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = torch.nn.parallel.DistributedDataParallel(_model())
    images, tokens = _batch(8)
    per = 8 // world
    sl = slice(rank * per, (rank + 1) * per)
    img_f, txt_f, _ = model(images[sl], tokens[sl])
    loss, _ = clip_loss(img_f, txt_f, model.module.logit_scale)
    loss.backward()
    if rank == 0:
        # numpy arrays travel by value; tensors would travel as shared memory that
        # vanishes when this process exits
        grads = {k: p.grad.numpy().copy() for k, p in model.module.named_parameters()}
        q.put((float(loss), grads))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_equals_one_process_on_the_whole_batch():
    model = _model()
    images, tokens = _batch(8)
    img_f, txt_f, _ = model(images, tokens)
    loss, _ = clip_loss(img_f, txt_f, model.logit_scale)
    loss.backward()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    dist_loss, dist_grads = q.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert abs(dist_loss - loss.item()) < 1e-5
    for name, p in model.named_parameters():
        assert torch.allclose(torch.from_numpy(dist_grads[name]), p.grad, atol=1e-5), name
