"""Self-supervised pretraining of the image encoder (SimCLR-style two-view contrastive learning), resumable.

:func:`pretrain_images` normalises the cutouts once, then for every step draws a batch, makes two random views
(:class:`~explorer.models.augment.ImageAugment`), and pulls each pair together through the projection head
(NT-Xent; NNCLR, which pulls each view towards the nearest *other* image seen recently; or VICReg). A
checkpoint is written after every epoch::

    out_dir/model.safetensors, config.json   the encoder alone: what `load_image_encoder(out_dir)` reads
    out_dir/train_state/                     encoder + projector + AdamW state + epoch: what resuming reads

Runs are deterministic for a seed on a given device and thread count: the batch order and the augmentations
of epoch ``e`` come from a generator seeded with ``(seed, e)``, so a resumed run continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from explorer.errors import DataError, ModelError
from explorer.models.augment import AugmentConfig, ImageAugment
from explorer.models.checkpoints import load_checkpoint, load_extra_tensors, save_checkpoint
from explorer.models.heads import ProjectionHead
from explorer.models.image_encoder import ARCHITECTURE, ImageCNN, ImageModelConfig, normalise_cutouts
from explorer.models.losses import SupportSet, nnclr, nt_xent, vicreg

__all__ = ["ImagePretrainConfig", "pretrain_images", "prepare_cutouts"]

STATE_DIR = "train_state"
STATE_ARCH = "explorer-image-pretrain-state"


@dataclass
class ImagePretrainConfig:
    """Everything that defines a pretraining run except the data, the epochs and the seed.

    The defaults are sized for a user's own survey on a laptop: 10,000 cutouts, 64 px, 2 CPU cores,
    10 epochs finish in about 12 minutes (see benchmarks/RESULTS_image.md).

    Attributes
    ----------
    model : ImageModelConfig
        Architecture and preprocessing of the encoder.
    augment : AugmentConfig
        Strength of the augmentations that make the two views.
    loss : {"ntxent", "nnclr", "vicreg"}
        ``"nnclr"`` trains with plain NT-Xent until the support set is full, then with
        :func:`~explorer.models.losses.nnclr`.
    temperature : float
        NT-Xent / NNCLR temperature.
    support_size : int
        NNCLR support set: projections of this many recent images (about the data set's size on small
        data sets; an image is never its own neighbour).
    batch_size : int
        Images per step (each gives two views).
    lr : float
        Peak AdamW learning rate, reached after ``warmup_epochs`` (linear) and decayed by a cosine to 0.
    weight_decay : float
    warmup_epochs : float
    projector_hidden, projector_dim : int
        Projection head sizes.
    threads : int or None
        ``torch.set_num_threads`` during training (None: at most 2).
    bf16 : bool or None
        bfloat16 autocast for forward/backward; None: on GPUs only (on CPUs its backward pass was slower
        than float32 in our measurements).
    """

    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: str = "ntxent"
    temperature: float = 0.2
    support_size: int = 4096
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    projector_hidden: int = 512
    projector_dim: int = 128
    threads: int | None = None
    bf16: bool | None = None

    def to_dict(self) -> dict:
        """JSON-friendly nested dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ImagePretrainConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        model = ImageModelConfig.from_dict(d.pop("model", {}))
        aug = d.pop("augment", {})
        aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()})
        return cls(model=model, augment=aug, **{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ----------------------------------------------------------------------------------------------- data
def prepare_cutouts(
    images: Any, model: ImageModelConfig, chunk: int = 1024, progress: bool = False
) -> tuple[Tensor, np.ndarray]:
    """Normalise all cutouts once (read in chunks, so a memmap is never loaded whole).

    Returns ``(x, keep)``: ``x`` float16 ``(n_kept, B, S, S)`` and ``keep`` ``(N,)`` bool (False for blank
    cutouts, which are left out of training with a warning).
    """
    from explorer.progress import progress_bar

    n = len(images)
    if n == 0:
        raise DataError("no cutouts to train on; pass an (N, B, H, W) array with N > 0")
    parts, keep = [], np.ones(n, bool)
    with progress_bar(range(0, n, chunk), disable=not progress, desc="normalise cutouts", leave=False) as bar:
        for s in bar:
            arr = np.asarray(images[s : s + chunk], dtype=np.float32)
            if arr.ndim == 3:
                arr = arr[:, None]
            if arr.ndim != 4 or arr.shape[1] != model.bands:
                raise DataError(
                    f"cutouts have shape {arr.shape[1:]} per object; expected ({model.bands}, H, W) for a "
                    f"{model.bands}-band encoder (set ImageModelConfig(bands=...))"
                )
            x, blank = normalise_cutouts(arr, model.input_size, model.crop)
            keep[s : s + len(arr)] = ~blank
            parts.append(x[~torch.from_numpy(blank)].half())
    if not keep.all():
        warnings.warn(
            f"{(~keep).sum()} blank cutout(s) (no finite pixel) left out of training, e.g. rows "
            f"{np.flatnonzero(~keep)[:5].tolist()}",
            stacklevel=3,
        )
    x = torch.cat(parts)
    if len(x) < 2:
        raise DataError("fewer than 2 usable cutouts; contrastive training needs at least a pair")
    return x, keep


# ----------------------------------------------------------------------------------------------- state I/O
def _flatten_optimizer(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    out = {}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def _unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def _run_signature(config: ImagePretrainConfig, seed: int, n: int) -> dict:
    return {"pretrain": json.loads(json.dumps(config.to_dict())), "seed": seed, "n_images": n}


@contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n if n is not None else min(2, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


# ----------------------------------------------------------------------------------------------- training
class _Trainer:
    """Holds the model, projector, optimiser and data of one run (one epoch per :meth:`epoch`)."""

    def __init__(self, x: Tensor, config: ImagePretrainConfig, epochs: int, seed: int, device: str) -> None:
        self.c, self.seed, self.device = config, seed, device
        torch.manual_seed(seed)
        self.model = ImageCNN(config.model).to(device).to(memory_format=torch.channels_last)
        self.proj = ProjectionHead(
            config.model.embedding_dim, config.projector_hidden, config.projector_dim
        ).to(device)
        self.params = nn.ModuleDict({"encoder": self.model, "projector": self.proj})
        self.opt = torch.optim.AdamW(self.params.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.x = x.to(device)
        self.augment = ImageAugment(config.augment)
        bs = min(config.batch_size, len(x))
        self.batch_size = bs
        self.steps_per_epoch = max(1, len(x) // bs)  # drop the ragged last batch (BatchNorm, equal negatives)
        self.total_steps = self.steps_per_epoch * epochs
        self.warmup = max(1, round(config.warmup_epochs * self.steps_per_epoch))
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.support = None
        if config.loss == "nnclr":
            self.support = SupportSet(config.support_size, config.projector_dim, device)

    def loss(self, v1: Tensor, v2: Tensor, ids: Tensor) -> Tensor:
        dev = "cuda" if str(self.device).startswith("cuda") else "cpu"
        bf16 = self.c.bf16 if self.c.bf16 is not None else dev == "cuda"
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            z = self.proj(self.model(torch.cat([v1, v2]).contiguous(memory_format=torch.channels_last)))
        z1, z2 = z.float().chunk(2)
        if self.c.loss == "vicreg":
            return vicreg(z1, z2)
        if self.support is None:
            return nt_xent(z1, z2, self.c.temperature)
        if len(self.support) < len(self.support.z):
            loss = nt_xent(z1, z2, self.c.temperature)
        else:
            nn1, nn2 = self.support.nearest(z1, ids), self.support.nearest(z2, ids)
            loss = nnclr(z1, z2, nn1, nn2, self.c.temperature)
        self.support.add(z1, ids)
        return loss

    def run_epoch(self, progress: bool) -> float:
        from explorer.progress import progress_bar

        g = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.x), generator=g, device=self.device)
        self.params.train()
        losses = []
        with progress_bar(
            range(self.steps_per_epoch), disable=not progress, leave=False, desc=f"epoch {self.epoch + 1}"
        ) as bar:
            for i in bar:
                lr = _lr_at(self.step, self.total_steps, self.warmup, self.c.lr)
                for group in self.opt.param_groups:
                    group["lr"] = lr
                ids = order[i * self.batch_size : (i + 1) * self.batch_size]
                xb = self.x[ids].float()
                loss = self.loss(self.augment(xb, g), self.augment(xb, g), ids)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.step += 1
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{lr:.1e}")
        self.epoch += 1
        return float(np.mean(losses))

    def save(self, out_dir: Path, signature: dict, epochs: int, seconds: float) -> None:
        self.history.append({"epoch": self.epoch, "loss": self._last_loss, "seconds": round(seconds, 1)})
        train = {"epoch": self.epoch, "step": self.step, "epochs": epochs, "history": self.history}
        state_cfg = {
            "architecture": STATE_ARCH, "modality": "image", "embedding_dim": self.c.model.embedding_dim,
            "signature": signature, "train": train,
        }  # fmt: skip
        save_checkpoint(
            out_dir / STATE_DIR,
            self.params,
            state_cfg,
            extra_tensors=_flatten_optimizer(self.opt) | (self.support.state() if self.support else {}),
            overwrite=True,
        )
        summary = {k: train[k] for k in ("epoch", "step", "epochs")} | {
            "loss": self._last_loss, "seconds": round(sum(h["seconds"] for h in self.history), 1),
            "device": str(self.device),
        }  # fmt: skip
        model_cfg = self.c.model.to_dict() | {"pretrain": signature, "train": summary}
        save_checkpoint(out_dir, self.model, model_cfg, overwrite=True, keep=(STATE_DIR,))

    def restore(self, state_dir: Path) -> None:
        state, cfg = load_checkpoint(state_dir, architecture=STATE_ARCH)
        self.params.load_state_dict(state)
        extra = load_extra_tensors(state_dir)
        _unflatten_optimizer(self.opt, extra)
        if self.support is not None:
            self.support.load(extra)
        self.epoch, self.step = cfg["train"]["epoch"], cfg["train"]["step"]
        self.history = cfg["train"]["history"]


def _load_sha(directory: Path) -> str:
    return load_checkpoint(directory, architecture=ARCHITECTURE)[1]["weights_sha256"]


def _init_encoder(model: ImageCNN, directory: Path, expected: ImageModelConfig) -> None:
    state, cfg = load_checkpoint(directory, architecture=ARCHITECTURE)
    theirs = ImageModelConfig.from_dict(cfg)
    if theirs != expected:
        raise ModelError(
            f"{directory}: its model config {theirs} differs from the training config {expected}; "
            "train with the checkpoint's model config (ImageModelConfig.from_dict(its config.json))"
        )
    model.load_state_dict(state)


def pretrain_images(
    images: Any,
    config: ImagePretrainConfig | None = None,
    out_dir: Path | str = "image_encoder",
    *,
    epochs: int = 10,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = True,
    progress: bool = True,
    init_from: Path | str | None = None,
    stop_after: int | None = None,
) -> Path:
    """Pretrain an image encoder on unlabelled cutouts and save it to ``out_dir``.

    Parameters
    ----------
    images : array-like
        ``(N, B, H, W)`` or ``(N, H, W)`` cutouts (NaNs allowed), an array or a memmap.
    config : ImagePretrainConfig, optional
        Defaults to :class:`ImagePretrainConfig` ().
    out_dir : Path
        Checkpoint folder (see module docstring); created if needed.
    epochs : int
        Passes over the data; the learning-rate schedule spans them.
    seed : int
        Fixes the initial weights, batch order and augmentations.
    device : str
        ``"cpu"`` or ``"cuda"``.
    resume : bool
        Continue from ``out_dir/train_state`` when it holds a run with the same config, seed and data size;
        False starts afresh (overwriting it).
    progress : bool
        tqdm bars per epoch.
    init_from : Path, optional
        Start from the encoder weights of this checkpoint (e.g. the shipped FIRST encoder, to adapt it to
        your survey) instead of random ones; its architecture config must equal ``config.model``. The
        projection head starts afresh, so keep ``warmup_epochs`` ≥ 1.
    stop_after : int, optional
        Return once this many epochs (of the ``epochs``-long schedule) are done, e.g. to split a long run
        across sessions; calling again with ``resume=True`` continues it.

    Returns
    -------
    Path
        ``out_dir``, loadable with :func:`~explorer.models.image_encoder.load_image_encoder`.
    """
    from explorer.progress import progress_bar

    config = config or ImagePretrainConfig()
    if config.loss not in ("ntxent", "nnclr", "vicreg"):
        raise ModelError(f"loss {config.loss!r} is not known; use 'ntxent', 'nnclr' or 'vicreg'")
    if epochs < 1:
        raise ModelError(f"epochs={epochs}; train for at least 1 epoch")
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "config.json").is_file():
        raise ModelError(
            f"{out_dir}: exists and is not a checkpoint folder; choose an empty or new out_dir "
            "(its contents would be replaced)"
        )
    with _threads(config.threads):
        x, _ = prepare_cutouts(images, config.model, progress=progress)
        trainer = _Trainer(x, config, epochs, seed, device)
        signature = _run_signature(config, seed, len(x))
        if init_from is not None:
            _init_encoder(trainer.model, Path(init_from), config.model)
            signature["init_from"] = _load_sha(Path(init_from))
        state_dir = out_dir / STATE_DIR
        if resume and (state_dir / "config.json").is_file():
            _, cfg = load_checkpoint(state_dir, architecture=STATE_ARCH)
            if cfg.get("signature") != signature:
                raise ModelError(
                    f"{state_dir}: holds a run with another config, seed or data size; pass resume=False to "
                    "start afresh there, or choose another out_dir"
                )
            if cfg["train"]["epochs"] != epochs:
                warnings.warn(
                    f"{state_dir}: resuming a run planned for {cfg['train']['epochs']} epochs with epochs={epochs}; "
                    "the learning-rate schedule changes from here",
                    stacklevel=2,
                )
            trainer.restore(state_dir)
        last = epochs if stop_after is None else min(epochs, stop_after)
        with progress_bar(
            total=last, initial=trainer.epoch, disable=not progress, desc="pretrain images", unit="epoch"
        ) as bar:
            while trainer.epoch < last:
                t0 = time.perf_counter()
                trainer._last_loss = round(trainer.run_epoch(progress), 5)
                trainer.save(out_dir, signature, epochs, time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix(loss=trainer._last_loss)
    return out_dir
