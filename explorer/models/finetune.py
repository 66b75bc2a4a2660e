"""Fine-tuning on the labels people make, then re-embedding into a new version (the old one stays to compare with).

``explorer finetune WS [--head-only]`` runs :func:`finetune_workspace`. It tunes the image encoder of every image
set that holds enough labelled objects (any class names: anomaly / normal / artefact / your own), starting from
the self-supervised encoder the current embeddings came from, and saves it as an ordinary ``explorer-image-cnn``
checkpoint (``WS/checkpoints/finetuned-<set>-NNN``, read by ``load_image_encoder`` like its parent). Two modes:

head-only (``--head-only``, fast)
    The encoder stays frozen. A linear head ``W`` (``widths[-1] -> head_dim``) is trained on the frozen, pooled
    backbone features ``f`` of the labelled objects (the neck's input: richer than the ``d``-long embedding
    ``e = neck(f)``; per object the cutout as it is, the 8 rotations/flips and ``head_views`` random
    augmentations, standardised) with supervised contrastive loss (SupCon, Khosla et al. 2020) + cross-entropy
    through a linear classifier.
    The new embedding is ``[e ; s·W (f - f̄)]`` (then L2-normalised as always): the self-supervised vector is
    kept whole and a label-aware block is appended, centred on the mean ``f̄`` of the labelled objects and up
    to 1,024 others of the image set, with ``s`` set so the block's median norm is ``head_weight`` times that
    of ``e`` -- cosine similarity becomes a weighted mean of the old similarity and the similarity in label
    space (weights 1 : ``head_weight``²). The centring matters: with the head's own bias the block was
    dominated by an offset shared by every object (cosine ~0.85 between objects of different classes on the
    simulated survey), so it added about the same similarity to every pair and the labels had no visible
    effect. Because the head is linear it is folded into the encoder's last linear layer + BatchNorm
    (``neck``), so the checkpoint is a plain ImageCNN with ``embedding_dim = d + head_dim``.
full (default)
    The last ``unfreeze_blocks`` residual stages and the neck are trained (BatchNorm statistics frozen) with a
    hybrid loss in the spirit of Walmsley et al. (2022, "Towards galaxy foundation models with hybrid contrastive
    learning"): a term that keeps the self-supervised structure on two augmented views of a batch of all objects
    (labelled or not), plus ``sup_weight`` × (SupCon + cross-entropy) on the embeddings of a class-balanced
    batch of labelled objects, which pulls the labelled classes apart. The keeping term is NT-Xent through the
    pretraining projection head when the parent saved it (``train_state/``), else a similarity distillation from
    the frozen self-supervised encoder (each view's neighbours in the batch ranked as before; a new random
    projection head would first have to be learnt, and on FIRST NT-Xent through one moved the neighbourhoods
    without separating the classes).

A fine-tune always starts from the *self-supervised* encoder (a fine-tuned parent is traced back to its base), so
tuning again after more labels does not stack heads. The frozen part of the encoder runs as the embedding
pipeline runs it (BatchNorm folded, channels-last, bfloat16 where supported). Only the tuned encoders embed
again; the other encoders' vectors are taken over from the current version. Runs are deterministic for a seed
on a given device and thread count. Light-curve encoders are not tuned yet (their labels are reported and
skipped).
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.errors import DataError, ModelError
from explorer.models.augment import AugmentConfig, ImageAugment, dihedral_all
from explorer.models.checkpoints import build_from_checkpoint, load_checkpoint, save_checkpoint
from explorer.models.finetune_data import (
    ImagePool,
    LabelledSet,
    check_enough_labels,
    compare_versions,
    current_encoders,
    image_pool,
    labelled_subset,
    reembed,
)
from explorer.models.heads import ProjectionHead
from explorer.models.image_encoder import (
    ARCHITECTURE,
    ImageCNN,
    ImageModelConfig,
    bf16_supported,
    fused_for_inference,
)
from explorer.models.losses import nt_xent
from explorer.workspace import Workspace

__all__ = ["FinetuneConfig", "compare_versions", "finetune_image_encoder", "finetune_workspace", "supcon"]

ProgressCallback = Callable[[float, str], None]
_DROP_KEYS = ("created", "explorer_version", "weights_sha256", "extra_sha256", "train", "name", "training")


@dataclass
class FinetuneConfig:
    """Settings of a fine-tune (the defaults finish in a minute or two for ~2,000 cutouts on 2 CPU cores).

    Attributes
    ----------
    epochs : int
        Full mode: passes over the pool of objects (``max_objects`` at most), when ``epochs`` is not given.
    head_epochs : int
        Head-only mode: epochs of the head, each at least ``head_min_steps`` steps (the head is cheap).
    batch_size : int
        Full mode: objects per step drawn from the pool (two views each) for the self-supervised loss.
    labelled_batch : int
        Full mode: labelled objects per step, drawn class-balanced (rare classes such as anomalies are seen as
        often as common ones).
    lr : float
        Full mode: peak AdamW learning rate of the unfrozen encoder blocks (cosine decay, short warm-up).
    head_lr : float
        Learning rate of the heads (projection, classifier, head-only head).
    weight_decay : float
    temperature : float
        NT-Xent temperature (self-supervised part).
    sup_temperature : float
        SupCon temperature.
    sup_weight : float
        Weight λ of the supervised part in the full mode's loss ``NT-Xent + λ (SupCon + CE)``.
    unfreeze_blocks : int
        Full mode: residual stages trained, counted from the last.
    keep : {"auto", "ntxent", "distill"}
        Full mode: the loss that keeps the self-supervised structure. ``ntxent``: the pretraining objective on
        two views of all objects, through the pretraining projection head (Walmsley et al. 2022);
        ``distill``: :func:`similarity_distillation` from the frozen self-supervised encoder. ``auto``: ntxent
        when the parent's projection head was saved (``train_state/``), else distill.
    keep_weight : float
        Full mode: weight of that loss.
    head_dim : int
        Head-only: length of the label-aware block appended to the embedding.
    head_weight : float
        Head-only: median norm of that block relative to the self-supervised embedding (0 = unchanged). On the
        simulated survey's galaxies (benchmarks/bench_finetune.py) 2 raised held-out kNN accuracy and the class
        margin more than 1 (0.839 vs 0.829 5-fold, margin 0.41 vs 0.37, from 0.825 and 0.30).
    head_views : int
        Head-only: random augmented views per labelled object the head is trained on, besides the clean one and
        the 8 rotations/flips.
    head_batch : int
        Head-only: views per step.
    head_min_steps : int
        Head-only: least steps per epoch.
    max_objects : int
        Cutouts per image set used (all labelled ones plus a random sample of the rest).
    threads : int or None
        ``torch.set_num_threads`` while training (None: at most 2).
    """

    epochs: int = 2
    head_epochs: int = 10
    batch_size: int = 64
    labelled_batch: int = 32
    lr: float = 3e-4
    head_lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    sup_temperature: float = 0.1
    sup_weight: float = 1.0
    unfreeze_blocks: int = 1
    keep: str = "auto"
    keep_weight: float = 1.0
    head_dim: int = 32
    head_weight: float = 2.0
    head_views: int = 2
    head_batch: int = 256
    head_min_steps: int = 25
    max_objects: int = 4096
    threads: int | None = None

    def to_dict(self) -> dict:
        """JSON-friendly copy (recorded in the checkpoint)."""
        return asdict(self)


# ----------------------------------------------------------------------------------------------- small pieces
def supcon(z: Tensor, y: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, NeurIPS, arXiv:2004.11362; the "L_out" form).

    Each anchor is pulled towards every other sample of its class and pushed from the rest, by cosine similarity.

    Parameters
    ----------
    z : Tensor
        ``(n, d)`` embeddings or projections (normalised here).
    y : Tensor
        ``(n,)`` integer classes.
    temperature : float

    Returns
    -------
    Tensor
        Scalar; anchors with no other sample of their class are left out (0 when none has one).
    """
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~eye
    npos = pos.sum(1)
    has = npos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    return -(logp.masked_fill(~pos, 0.0).sum(1)[has] / npos[has]).mean()


@contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n if n is not None else min(2, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _Progress:
    """Reports ``(fraction, message)`` to a callback (if any) within ``[lo, hi]`` of the whole run."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback, self.lo, self.hi = callback, 0.0, 1.0

    def span(self, lo: float, hi: float) -> _Progress:
        sub = _Progress(self.callback)
        sub.lo, sub.hi = self.lo + lo * (self.hi - self.lo), self.lo + hi * (self.hi - self.lo)
        return sub

    def __call__(self, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(float(self.lo + min(1.0, max(0.0, fraction)) * (self.hi - self.lo)), message)


def _balanced_draw(y: np.ndarray, n: int, g: torch.Generator) -> np.ndarray:
    """``n`` indices into ``y``: a class chosen uniformly, then one of its members uniformly (with replacement)."""
    classes = np.unique(y)
    members = [np.flatnonzero(y == c) for c in classes]
    which = torch.randint(len(classes), (n,), generator=g).numpy()
    pick = torch.rand(n, generator=g).numpy()
    return np.array([members[c][int(p * len(members[c]))] for c, p in zip(which, pick, strict=True)])


def _lr_factor(step: int, total: int) -> float:
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


# ----------------------------------------------------------------------------------------------- checkpoints
def _base_checkpoint(parent: Path) -> Path:
    """The self-supervised checkpoint a (possibly fine-tuned) ``parent`` comes from."""
    _, config = load_checkpoint(parent)
    base = Path(config.get("finetune", {}).get("base", parent))
    if base != parent and not (base / "config.json").is_file():
        warnings.warn(
            f"{parent} was fine-tuned from {base}, which is gone; fine-tuning {parent} itself", stacklevel=3
        )
        return parent
    return base


def _parent_augment(config: dict) -> AugmentConfig:
    aug = config.get("pretrain", {}).get("pretrain", {}).get("augment")
    if not isinstance(aug, dict):
        return AugmentConfig()
    known = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in aug.items()
        if k in AugmentConfig.__dataclass_fields__
    }
    return AugmentConfig(**known)


def _parent_projector(base: Path, dim: int) -> tuple[ProjectionHead, bool]:
    """The pretraining projection head from ``base/train_state`` (and True), else a new one (and False)."""
    state_dir = base / "train_state"
    if (state_dir / "config.json").is_file():
        try:
            state, _ = load_checkpoint(state_dir)
            proj = {k.removeprefix("projector."): v for k, v in state.items() if k.startswith("projector.")}
            linears = sorted(
                (int(m.group(1)), v)
                for k, v in proj.items()
                if (m := re.fullmatch(r"net\.(\d+)\.weight", k)) and v.ndim == 2
            )
            head = ProjectionHead(dim, linears[0][1].shape[0], linears[-1][1].shape[0], layers=len(linears))
            head.load_state_dict(proj, strict=True)
            return head, True
        except (ModelError, RuntimeError, IndexError, KeyError) as err:
            warnings.warn(
                f"{state_dir}: projection head unreadable ({err}); training a new one", stacklevel=3
            )
    return ProjectionHead(dim, 4 * dim, dim), False


def _fold_head(model: ImageCNN, weight: Tensor, bias: Tensor, scale: float) -> ImageCNN:
    """A copy of ``model`` whose output is ``[e ; scale·(weight f + bias)]``: ``e`` its old output, ``f`` its pooled
    backbone features (the neck's input).

    ``weight`` ``(h, widths[-1])``, ``bias`` ``(h,)``. The neck (linear + BatchNorm in eval mode, an affine map)
    absorbs the head: ``e = D A f + t`` becomes ``[D A ; s W] f + [t ; s b]`` with an identity BatchNorm.
    """
    d, h = model.config.embedding_dim, weight.shape[0]
    lin, bn = model.neck[0], model.neck[1]
    with torch.no_grad():
        D = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        t = bn.bias - D * bn.running_mean
        new = ImageCNN(replace(model.config, embedding_dim=d + h))
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("neck.")}
        new.load_state_dict(state, strict=False)
        nbn = new.neck[1]
        new.neck[0].weight.copy_(torch.cat([D[:, None] * lin.weight, scale * weight]))
        nbn.weight.fill_(1.0)
        nbn.bias.copy_(torch.cat([t, scale * bias]))
        nbn.running_mean.zero_()
        nbn.running_var.fill_(1.0 - nbn.eps)
    return new.eval()


def _save(model: ImageCNN, parent_config: dict, out_dir: Path, provenance: dict) -> Path:
    config = {k: v for k, v in parent_config.items() if k not in _DROP_KEYS}
    config.update(model.config.to_dict(), finetune=provenance)
    return save_checkpoint(out_dir, model, config)


# ----------------------------------------------------------------------------------------------- frozen front
class _Front(nn.Module):
    """The first stages of an :class:`ImageCNN`: ``(n, B, S, S) -> (n, C, s, s)`` (stretch, stem, ``stages[:cut]``)."""

    def __init__(self, model: ImageCNN, cut: int) -> None:
        super().__init__()
        self.stretch, self.stem, self.stages = model.stretch, model.stem, nn.Sequential(*model.stages[:cut])

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(self.stretch(x)))


def _frozen_front(model: ImageCNN, cut: int, device: str) -> Callable[[Tensor], Tensor]:
    """A fast, frozen copy of ``model``'s first stages, run the way the embedding pipeline runs the encoder.

    BatchNorm folded into the convolutions and channels-last (:func:`fused_for_inference`), bfloat16 autocast
    where supported (:func:`bf16_supported`), as :class:`~explorer.models.image_encoder.ImageEncoder` does.
    Returns ``x (n, B, S, S) -> (n, C, s, s)`` float32, without gradients; ``model`` is not changed.
    """
    front = fused_for_inference(_Front(model.eval(), cut)).to(device).requires_grad_(False)
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    bf16 = bf16_supported(device)

    @torch.no_grad()
    def run(x: Tensor) -> Tensor:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            return front(x.to(device).contiguous(memory_format=torch.channels_last)).float()

    return run


# ----------------------------------------------------------------------------------------------- head-only
@torch.no_grad()
def _head_features(
    model: ImageCNN,
    pool: ImagePool,
    views: int,
    augment: ImageAugment,
    g: torch.Generator,
    device: str,
    chunk: int = 128,
    n_others: int = 1024,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Frozen pooled features ``f`` (the neck's input) as the embedding pipeline computes them.

    Returns ``clean`` ``(m, c)``: the labelled cutouts as they are; ``views`` ``(m·(8 + views), c)``: each
    labelled cutout under the 8 rotations/flips (the first is the identity: ``clean`` costs nothing more), then
    ``views`` random augmentations; their classes ``(m·(8 + views),)``; and ``others`` ``(k, c)``: up to
    ``n_others`` unlabelled cutouts of the pool (a seeded sample), which say where the unlabelled objects lie.
    """
    front = _frozen_front(model, len(model.stages), device)
    x = pool.x[torch.from_numpy(pool.labelled)]
    clean, seen, ys = [], [], []
    y = torch.from_numpy(pool.y)
    for a in range(0, len(x), chunk):
        xb = x[a : a + chunk].float()
        rot = front(dihedral_all(xb)).mean((2, 3)).cpu()
        clean.append(rot[: len(xb)])
        seen.append(rot)
        ys.append(y[a : a + chunk].repeat(8))
        for _ in range(views):
            seen.append(front(augment(xb, g)).mean((2, 3)).cpu())
            ys.append(y[a : a + chunk])
    rest = np.setdiff1d(np.arange(len(pool.x)), pool.labelled)
    if len(rest) > n_others:
        rest = np.sort(rest[torch.randperm(len(rest), generator=g)[:n_others].numpy()])
    xo = pool.x[torch.from_numpy(rest)]
    others = [front(xo[a : a + chunk].float()).mean((2, 3)).cpu() for a in range(0, len(xo), chunk)]
    clean_f = torch.cat(clean)
    return clean_f, torch.cat(seen), torch.cat(ys), torch.cat(others) if others else clean_f[:0]


def _train_head(
    model: ImageCNN,
    pool: ImagePool,
    n_classes: int,
    cfg: FinetuneConfig,
    epochs: int,
    seed: int,
    device: str,
    augment: ImageAugment,
    report: _Progress,
    show: bool,
) -> tuple[ImageCNN, dict]:
    from explorer.progress import progress_bar

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = model.eval().to(device)
    report(0.0, "embedding the labelled objects")
    clean, views, vy, others = _head_features(model, pool, cfg.head_views, augment, g, device)
    every = torch.cat([clean, others])  # where the objects lie: the label block is centred on them
    E = torch.cat([clean, views]).to(device)
    Y = torch.cat([torch.from_numpy(pool.y), vy]).to(device)
    c = clean.shape[1]
    mean, std = E.mean(0), E.std(0).clamp_min(1e-6)  # the head sees standardised features (folded in below)
    E = (E - mean) / std
    head, clf = nn.Linear(c, cfg.head_dim).to(device), nn.Linear(cfg.head_dim, n_classes).to(device)
    params = nn.ModuleList([head, clf])
    opt = torch.optim.AdamW(params.parameters(), lr=cfg.head_lr, weight_decay=cfg.weight_decay)
    bs = min(cfg.head_batch, len(E))
    spe = max(cfg.head_min_steps, math.ceil(len(E) / bs))
    total, step, losses = epochs * spe, 0, []
    counts = torch.bincount(Y, minlength=n_classes).float()
    class_w = (counts.sum() / counts.clamp_min(1) / n_classes).to(device)
    with progress_bar(range(epochs), desc="fine-tune head", unit="epoch", disable=not show) as bar:
        for epoch in bar:
            order = torch.randperm(len(E), generator=g).to(device)
            for i in range(spe):
                j = order[(torch.arange(bs, device=device) + i * bs) % len(E)]
                for group in opt.param_groups:
                    group["lr"] = cfg.head_lr * _lr_factor(step, total)
                z = F.normalize(head(E[j]), dim=1)
                loss = supcon(z, Y[j], cfg.sup_temperature) + F.cross_entropy(
                    clf(z) / 0.1, Y[j], weight=class_w
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                losses.append(float(loss.detach()))
            report(
                (epoch + 1) / epochs, f"head epoch {epoch + 1}/{epochs}, loss {np.mean(losses[-spe:]):.3f}"
            )
    with torch.no_grad():
        # The block is centred on the pool: W (f - f̄) / σ. Its learnt bias, an offset shared by every object,
        # would make all objects alike in the block (cosine ~0.85 between classes on the simulated survey)
        # and drown the label signal the block is there to add.
        weight = head.weight.cpu() / std.cpu()
        bias = -(weight @ every.mean(0))
        e_norm = model.neck(every.to(device)).float().cpu().norm(dim=1).median()
        h_norm = (every @ weight.T + bias).norm(dim=1).median().clamp_min(1e-12)
        scale = float(cfg.head_weight * e_norm / h_norm)
    tuned = _fold_head(model.cpu(), weight, bias, scale)
    return tuned, {"loss": round(float(np.mean(losses[-spe:])), 5), "steps": step, "head_scale": scale}


# ----------------------------------------------------------------------------------------------- full
class _Split(nn.Module):
    """The encoder cut in two: a frozen front (run without gradients) and a trainable back."""

    def __init__(self, model: ImageCNN, unfreeze: int) -> None:
        super().__init__()
        self.model = model
        self.cut = max(0, len(model.stages) - max(1, unfreeze))
        self._front = _frozen_front(model, self.cut, str(next(model.parameters()).device))
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.trainable():
            p.requires_grad_(True)

    def trainable(self) -> list[nn.Parameter]:
        return [*self.model.stages[self.cut :].parameters(), *self.model.neck.parameters()]

    def front(self, x: Tensor) -> Tensor:
        """``(n, B, S, S) -> (n, C, s, s)``: the frozen stages, without gradients (see :func:`_frozen_front`)."""
        return self._front(x)

    def back(self, h: Tensor, model: ImageCNN | None = None) -> Tensor:
        """``(n, C, s, s) -> (n, embedding_dim)`` through the trainable stages and neck (of ``model`` if given)."""
        m = model or self.model
        for block in m.stages[self.cut :]:
            h = block(h)
        return m.neck(h.mean((2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        """``(n, B, S, S) -> (n, embedding_dim)``; BatchNorm statistics stay frozen (eval mode)."""
        return self.back(self.front(x))


def similarity_distillation(student: Tensor, teacher: Tensor, temperature: float = 0.1) -> Tensor:
    """Keep the neighbourhoods of a batch: KL divergence from the teacher's to the student's similarity rows.

    ``(n, d)``, ``(n, d')`` -> scalar. Row ``i`` of each is a softmax over the cosine similarities of item ``i`` to
    the other items (as in SEED, Fang et al. 2021, arXiv:2101.04731, within a batch instead of a queue), so the
    student may rotate or rescale its space but must rank each item's neighbours as the teacher does.
    """
    n = student.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=student.device)

    def log_rows(z: Tensor) -> Tensor:
        z = F.normalize(z.float(), dim=1)
        return F.log_softmax((z @ z.T / temperature).masked_fill(eye, -1e4), dim=1)

    target = log_rows(teacher).detach()
    return F.kl_div(log_rows(student), target, log_target=True, reduction="batchmean")


def _train_full(
    model: ImageCNN,
    base: Path,
    pool: ImagePool,
    n_classes: int,
    cfg: FinetuneConfig,
    epochs: int,
    seed: int,
    device: str,
    augment: ImageAugment,
    report: _Progress,
    show: bool,
) -> tuple[ImageCNN, dict]:
    from explorer.progress import progress_bar

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    d = model.config.embedding_dim
    net = _Split(model.to(device).to(memory_format=torch.channels_last).eval(), cfg.unfreeze_blocks)
    keep = cfg.keep if cfg.keep != "auto" else None
    projector, pretrained_proj = _parent_projector(base, d)
    keep = keep or ("ntxent" if pretrained_proj else "distill")
    teacher = copy.deepcopy(net.model).requires_grad_(False) if keep == "distill" else None
    classifier = nn.Linear(d, n_classes)
    heads = nn.ModuleList([projector, classifier]).to(device).train()
    opt = torch.optim.AdamW(
        [
            {"params": net.trainable(), "lr": cfg.lr, "base": cfg.lr},
            {"params": heads.parameters(), "lr": cfg.head_lr, "base": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    n = len(pool.x)
    bs = min(cfg.batch_size, n)
    spe = max(1, math.ceil(n / bs))
    total, step, history = epochs * spe, 0, []
    hold = 0 if pretrained_proj or keep == "distill" else min(total // 2, max(5, total // 5))
    y_all = torch.from_numpy(pool.y)
    with progress_bar(range(epochs), desc="fine-tune encoder", unit="epoch", disable=not show) as epoch_bar:
        for epoch in epoch_bar:
            order = torch.randperm(n, generator=g)
            losses = []
            with progress_bar(range(spe), desc=f"epoch {epoch + 1}", leave=False, disable=not show) as bar:
                for i in bar:
                    rows_u = order[(torch.arange(bs) + i * bs) % n]
                    pick = _balanced_draw(pool.y, min(cfg.labelled_batch, max(2, len(pool.y))), g)
                    rows = torch.cat([rows_u, torch.from_numpy(pool.labelled[pick])])
                    xb = pool.x[rows].float()
                    v = torch.cat([augment(xb, g), augment(xb, g)]).to(device)
                    for group in opt.param_groups:
                        group["lr"] = group["base"] * _lr_factor(step, total)
                    if step < hold:  # a new projection head first learns on the frozen encoder
                        opt.param_groups[0]["lr"] = 0.0
                    h = net.front(v)
                    emb = net.back(h)
                    if teacher is not None:
                        with torch.no_grad():
                            old = net.back(h, teacher)
                        ssl = cfg.keep_weight * similarity_distillation(emb, old, cfg.temperature)
                    else:
                        z1, z2 = projector(emb).float().chunk(2)
                        ssl = cfg.keep_weight * nt_xent(z1, z2, cfg.temperature)
                    e1, e2 = emb.float().chunk(2)
                    e_lab = torch.cat([e1[bs:], e2[bs:]])
                    y_lab = y_all[pick].repeat(2).to(device)
                    z_lab = F.normalize(e_lab, dim=1)
                    sup = supcon(z_lab, y_lab, cfg.sup_temperature) + F.cross_entropy(
                        classifier(z_lab) / 0.1, y_lab
                    )
                    loss = ssl + cfg.sup_weight * sup
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    losses.append((float(ssl.detach()), float(sup.detach())))
                    bar.set_postfix(ssl=f"{losses[-1][0]:.3f}", sup=f"{losses[-1][1]:.3f}")
                    report(step / total, f"epoch {epoch + 1}/{epochs}, step {i + 1}/{spe}")
            ssl_m, sup_m = np.mean(losses, axis=0)
            history.append(
                {"epoch": epoch + 1, keep: round(float(ssl_m), 5), "supervised": round(float(sup_m), 5)}
            )
    for p in net.model.parameters():
        p.requires_grad_(True)
    tuned = net.model.eval().cpu().to(memory_format=torch.contiguous_format)
    return tuned, {"history": history, "steps": step, "keep": keep, "pretrained_projector": pretrained_proj}


def finetune_image_encoder(
    pool: ImagePool,
    parent: Path,
    out_dir: Path,
    *,
    classes: tuple[str, ...],
    head_only: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    config: FinetuneConfig | None = None,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
    provenance: dict | None = None,
) -> Path:
    """Fine-tune the image encoder at ``parent`` (traced back to its self-supervised base) on ``pool``'s labels.

    Parameters
    ----------
    pool : ImagePool
        Normalised cutouts with the rows and classes of the labelled ones (``finetune_data.image_pool``).
    parent : Path
        Checkpoint of the encoder the current embeddings came from.
    out_dir : Path
        New checkpoint folder (must not exist).
    classes : tuple of str
        Class names, indexed by ``pool.y``.
    head_only, epochs, seed, device, config
        See :func:`finetune_workspace`.
    progress : callable, optional
        ``(fraction, message)``.
    show_progress : bool
        tqdm bars.
    provenance : dict, optional
        Recorded under ``finetune`` in the checkpoint's config.

    Returns
    -------
    Path
        ``out_dir``, loadable with ``load_image_encoder``.
    """
    cfg = config or FinetuneConfig()
    epochs = epochs if epochs is not None else (cfg.head_epochs if head_only else cfg.epochs)
    if epochs < 1:
        raise ModelError(f"epochs={epochs}; fine-tune for at least 1 epoch")
    base = _base_checkpoint(Path(parent))
    _, base_config = load_checkpoint(base, architecture=ARCHITECTURE)
    model = build_from_checkpoint(base, architecture=ARCHITECTURE)
    augment = ImageAugment(_parent_augment(base_config))
    report = _Progress(progress)
    t0 = time.perf_counter()
    with _threads(cfg.threads):
        if head_only:
            tuned, info = _train_head(
                model, pool, len(classes), cfg, epochs, seed, device, augment, report, show_progress
            )
        else:
            tuned, info = _train_full(
                model, base, pool, len(classes), cfg, epochs, seed, device, augment, report, show_progress
            )
    record = {
        "mode": "head-only" if head_only else "full",
        "base": str(base),
        "parent": str(parent),
        "classes": list(classes),
        "n_labelled": int(len(pool.labelled)),
        "n_objects": int(len(pool.ids)),
        "epochs": epochs,
        "seed": seed,
        "config": cfg.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
        **info,
        **(provenance or {}),
    }
    return _save(tuned, base_config, Path(out_dir), record)


# ----------------------------------------------------------------------------------------------- the workspace
def _next_checkpoint(ws: Workspace, image_set: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", image_set)[:40]
    i = 1
    while ws.checkpoint_dir(f"finetuned-{stem}-{i:03d}").exists():
        i += 1
    return ws.checkpoint_dir(f"finetuned-{stem}-{i:03d}")


def _image_plan(ws: Workspace, parents: dict[str, Path], current) -> list[tuple[str, str, Path, LabelledSet]]:
    """``(job key, image set, parent checkpoint, labels)`` for every image set with enough labels."""
    cat = ws.catalog
    found = []
    for key, parent in parents.items():
        name = key.removeprefix("image:")
        if not key.startswith("image:") or name not in cat.images:
            continue
        ids = cat.image_set_ids(name)
        found.append((key, name, parent, labelled_subset(current, ids)))
    if not found:
        raise ModelError(
            f"{ws.path}: the current embeddings have no image encoder to fine-tune (fine-tuning "
            "light-curve encoders is not supported yet)"
        )
    ready, short = [], []
    for item in found:
        try:
            check_enough_labels(item[3], f"objects with a cutout in image set {item[1]!r}")
            ready.append(item)
        except DataError as err:
            short.append((item, err))
    if not ready:  # the error about the set closest to having enough labels
        raise max(short, key=lambda t: len(t[0][3]))[1]
    for (_, name, _, lab), err in short:
        if len(lab):
            warnings.warn(f"image set {name!r} is not fine-tuned: {err}", stacklevel=3)
    return ready


def _warn_lightcurve_labels(ws: Workspace, parents: dict[str, Path], current) -> None:
    cat = ws.catalog
    if "lightcurve" not in parents or "has_lightcurve" not in cat.table:
        return
    lc_ids = cat.table.loc[cat.table["has_lightcurve"].astype(bool), "id"].to_numpy(dtype=object)
    n = len(labelled_subset(current, lc_ids))
    if n:
        warnings.warn(
            f"{n} labelled object(s) have light curves: the light-curve encoder is kept as it is "
            "(fine-tuning it is not supported yet)",
            stacklevel=3,
        )


def finetune_workspace(
    ws: Workspace,
    head_only: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool | ProgressCallback = True,
    config: FinetuneConfig | None = None,
) -> str:
    """Fine-tune the workspace's image encoders on its labels, re-embed, and return the new embedding version.

    Every image set of the current embeddings with at least 2 classes of at least 2 labelled objects is tuned
    (see the module docstring for the two modes); the tuned checkpoint goes to
    ``WS/checkpoints/finetuned-<set>-NNN`` with a note of its parent and of the labels (``trained_on.json``).
    Then the objects of the tuned sets are embedded again with their new encoder; the other encoders' vectors
    are taken over from the current version unchanged (not recomputed), and the joint space is rebuilt from
    the blocks, into a new embedding version, made current. Earlier embeddings, maps and scores stay.

    Parameters
    ----------
    ws : Workspace
    head_only : bool
        Train a head on the frozen encoder (fast) instead of the last encoder blocks too.
    epochs : int, optional
        Default :attr:`FinetuneConfig.head_epochs` (head-only) or :attr:`FinetuneConfig.epochs`.
    seed : int
        Fixes sampling, augmentations and initial head weights: the same seed gives the same vectors.
    device : str
        ``"cpu"`` or ``"cuda"``.
    progress : bool or callable
        True: tqdm bars; False: silent; a callable ``(fraction: float, message: str)`` is called as the work
        advances (tqdm bars are shown too).
    config : FinetuneConfig, optional

    Returns
    -------
    str
        The new embedding version, e.g. ``"emb-0002"``.

    Raises
    ------
    DataError
        Too few labels (the message says how many more of which class are needed).
    WorkspaceError, ModelError
        No embeddings yet, imported vectors, or a missing checkpoint.
    """
    from explorer.models.registry import record_training_data

    cfg = config or FinetuneConfig()
    report = _Progress(progress if callable(progress) else None)
    show = progress is not False
    old_version, parents = current_encoders(ws)
    with ws.labels() as store:
        current = store.current()
        event = store.last_event_id()
    plan = _image_plan(ws, parents, current)
    _warn_lightcurve_labels(ws, parents, current)
    tuned: dict[str, Path] = {}
    notes: dict[str, dict] = {}
    for i, (key, name, parent, lab) in enumerate(plan):
        part = report.span(i / len(plan) * 0.85, (i + 1) / len(plan) * 0.85)
        part(0.0, f"reading cutouts of {name!r}")
        _, pconfig = load_checkpoint(parent)
        pool = image_pool(ws, name, lab, ImageModelConfig.from_dict(pconfig), cfg.max_objects, seed)
        if len(pool.labelled) < len(lab):
            check_enough_labels(
                LabelledSet(
                    pool.ids[pool.labelled], np.array(lab.classes, object)[pool.y], lab.classes, pool.y
                ),
                f"usable cutouts of image set {name!r}",
            )
        out = _next_checkpoint(ws, name)
        facts = {"labels_event_id": event, "from_embeddings": old_version, "image_set": name}
        finetune_image_encoder(
            pool,
            parent,
            out,
            classes=lab.classes,
            head_only=head_only,
            epochs=epochs,
            seed=seed,
            device=device,
            config=cfg,
            progress=lambda f, m, n=name, p=part: p(f, f"{n}: {m}"),
            show_progress=show,
            provenance=facts,
        )
        record_training_data(
            out,
            image_set=name,
            finetuned_from=str(parent),
            labels_event_id=event,
            n_labels=len(pool.labelled),
            classes=lab.counts(),
            head_only=head_only,
            workspace=str(ws.path),
            objects=len(pool.ids),
        )
        tuned[key] = out
        notes[key] = {"checkpoint": str(out), "n_labels": int(len(pool.labelled)), "classes": lab.counts()}
    report(0.86, "re-embedding the objects of the tuned image sets")
    meta = {
        "finetune": {
            "from_embeddings": old_version,
            "head_only": head_only,
            "labels_event_id": event,
            "seed": seed,
            "epochs": epochs,
            "tuned": notes,
        }
    }
    version = reembed(ws, {**parents, **tuned}, meta, device=device, progress=show, reuse_from=old_version)
    report(1.0, f"new embeddings {version}")
    return version
