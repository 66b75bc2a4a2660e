"""The image encoder: cutout preprocessing (crop, resize, robust scaling, asinh stretch), a small residual CNN,
and the :class:`ImageEncoder` that the embedding pipeline calls.

Preprocessing, per cutout and band (:func:`normalise_cutouts`):

1. NaN/inf pixels are replaced by the band's background (median of its finite pixels); a band with no finite
   pixel at all is a *blank* cutout: it becomes all zeros and is reported (``blank`` mask; :func:`embed_images`
   warns naming the ids or raises, never returns a NaN vector).
2. The central ``crop`` pixels are kept (sources sit at the centre of catalogue cutouts; shrinking a 300 px
   FIRST frame to 64 px would erase a 4 px compact source), then resized to ``size`` (area average when
   shrinking, bilinear when enlarging).
3. Robust scaling: ``(x - median) / (peak - median)`` with ``peak`` the brightest pixel of the resized crop,
   so the source's peak is 1 and the background 0 whatever the flux units.

Inside the network the first layer (:class:`AsinhStretch`) maps each band through
``asinh(x / a) / asinh(1 / a)`` for each softening ``a`` in ``stretches`` -- linear below ``a``, logarithmic
above, like the Lupton et al. (1999) magnitudes -- giving ``bands × len(stretches)`` input channels. A small
``a`` (0.02) lifts faint lobes and jets, a large one (0.5) keeps the bright cores apart.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.errors import DataError, ModelError
from explorer.models.augment import dihedral_all
from explorer.models.base import TorchEncoder, l2_normalise
from explorer.models.checkpoints import build_from_checkpoint, load_checkpoint, register_architecture

__all__ = [
    "ARCHITECTURE",
    "AsinhStretch",
    "ImageCNN",
    "ImageEncoder",
    "ImageModelConfig",
    "TorchImageEncoder",
    "bf16_supported",
    "embed_images",
    "fused_for_inference",
    "load_image_encoder",
    "normalise_cutouts",
]

ARCHITECTURE = "explorer-image-cnn"


# ----------------------------------------------------------------------------------------------- preprocessing
def _as_nbhw(images: Any) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise DataError(f"cutouts must be (n, bands, H, W) or (n, H, W); got shape {arr.shape}")
    return arr


def _background(arr: np.ndarray, max_side: int = 96) -> np.ndarray:
    """Per-cutout, per-band median of the finite pixels, from an even subsample of at most ~``max_side²``
    pixels (a median needs a partial sort: 10× cheaper on a 300 px cutout). ``(n, B, H, W) -> (n, B, 1, 1)``;
    0 for a band with no finite pixel."""
    step = max(1, min(arr.shape[-2:]) // max_side)
    sample = np.asarray(arr[..., ::step, ::step], dtype=np.float32)
    if np.isfinite(sample).all():
        return np.median(sample, axis=(2, 3), keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bands
        bg = np.nanmedian(np.where(np.isfinite(sample), sample, np.nan), axis=(2, 3), keepdims=True)
    return np.nan_to_num(bg, nan=0.0, posinf=0.0, neginf=0.0)


def normalise_cutouts(images: Any, size: int = 64, crop: int | None = None) -> tuple[Tensor, np.ndarray]:
    """Raw cutouts to the encoder's input: NaN-filled, centre-cropped, resized, robustly scaled.

    Parameters
    ----------
    images : array-like
        ``(n, B, H, W)`` or ``(n, H, W)`` in any numeric dtype (uint8 PNGs, float FITS with NaNs...).
    size : int
        Side of the output in pixels.
    crop : int, optional
        Side of the central square kept before resizing (clipped to the image; ``None`` keeps it all).

    Returns
    -------
    x : Tensor
        ``(n, B, size, size)`` float32, background ≈ 0, peak = 1 per band.
    blank : numpy.ndarray
        ``(n,)`` bool, True where a cutout has no finite pixel in some band of the kept (cropped) region;
        such a band comes out all 0.
    """
    arr = _as_nbhw(images)
    bg = _background(arr)
    h, w = arr.shape[-2:]
    if crop is not None and (crop < h or crop < w):
        ch, cw = min(crop, h), min(crop, w)
        top, left = (h - ch) // 2, (w - cw) // 2
        arr = arr[..., top : top + ch, left : left + cw]
    arr = arr.astype(np.float32, copy=True)
    finite = np.isfinite(arr)
    blank = ~finite.any(axis=(2, 3)).all(axis=1) if arr.size else np.zeros(len(arr), bool)
    if not finite.all():
        arr = np.where(finite, arr, bg)
    x = torch.from_numpy(arr - bg)
    if x.shape[-2:] != (size, size):
        shrinking = x.shape[-1] >= size and x.shape[-2] >= size
        mode = "area" if shrinking else "bilinear"
        x = F.interpolate(x, size=(size, size), mode=mode, **({} if shrinking else {"align_corners": False}))
    peak = x.flatten(2).amax(2)[..., None, None]
    x = x / torch.where(peak > 0, peak, torch.ones_like(peak))
    return x.contiguous(), blank


# ----------------------------------------------------------------------------------------------- the network
class AsinhStretch(nn.Module):
    """``(n, B, H, W) -> (n, B·S, H, W)``: each band through ``asinh(x/a)/asinh(1/a)`` for each of S softenings."""

    def __init__(self, softenings: Sequence[float]) -> None:
        super().__init__()
        a = torch.tensor([float(s) for s in softenings])
        self.register_buffer("inv_a", 1.0 / a, persistent=False)
        self.register_buffer("norm", 1.0 / torch.asinh(1.0 / a), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Stretch ``x`` ``(n, B, H, W)`` to ``(n, B·S, H, W)``; channel ``b·S + s``: band b, softening s."""
        y = torch.asinh(x.unsqueeze(2) * self.inv_a[:, None, None]) * self.norm[:, None, None]
        return y.flatten(1, 2)


class _Block(nn.Module):
    """Residual block (He et al. 2016): two 3×3 convs, BatchNorm, ReLU; stride-2 with a 1×1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.short(x), inplace=True)


@dataclass
class ImageModelConfig:
    """Architecture and preprocessing of :class:`ImageCNN` (stored in the checkpoint's config.json).

    Attributes
    ----------
    bands : int
        Bands per cutout.
    input_size : int
        Side of the network input in pixels.
    crop : int or None
        Central square (in raw pixels) kept before resizing to ``input_size``; None keeps the whole cutout.
    stretches : tuple of float
        Asinh softenings; each gives one channel per band.
    widths : tuple of int
        Channels of the stem and of each residual stage (each stage halves the resolution).
    embedding_dim : int
        Length of the embedding.
    stem_stride : int
        Stride of the 5×5 stem (2 is 4× cheaper and, per RECIPES §5, ~15× faster on CPU than a full-res stem).
    first_stride : int
        Stride of the first residual stage (2 makes the whole network ~4× cheaper).
    """

    bands: int = 1
    input_size: int = 64
    crop: int | None = None
    stretches: tuple[float, ...] = (0.02, 0.5)
    widths: tuple[int, ...] = (16, 32, 64, 128)
    embedding_dim: int = 128
    stem_stride: int = 2
    first_stride: int = 2

    @classmethod
    def from_dict(cls, d: dict) -> ImageModelConfig:
        """Rebuild from a checkpoint config (unknown keys ignored, lists back to tuples)."""
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("stretches", "widths"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def to_dict(self) -> dict:
        """JSON-friendly dict including ``architecture`` and ``modality``."""
        return {"architecture": ARCHITECTURE, "modality": "image", **asdict(self)}


class ImageCNN(nn.Module):
    """Small residual CNN: ``(n, bands, S, S)`` normalised linear cutouts → ``(n, embedding_dim)`` features.

    Stretch (:class:`AsinhStretch`) → 5×5 stem (stride ``stem_stride``) → one residual block per stage, the
    first at stride ``first_stride`` and the rest at stride 2 → global average pool → linear + BatchNorm to
    ``embedding_dim``. The defaults (widths 16-128, 0.3 M parameters, ~6 M multiply-adds at 64 px) are sized
    for CPU training; the shipped FIRST encoder uses widths 32-256 with ``first_stride=1`` (1.2 M parameters).
    """

    def __init__(self, config: ImageModelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ImageModelConfig()
        self.stretch = AsinhStretch(c.stretches)
        w = c.widths
        self.stem = nn.Sequential(
            nn.Conv2d(c.bands * len(c.stretches), w[0], 5, c.stem_stride, 2, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True),
        )
        blocks = [_Block(w[0], w[1], c.first_stride)] + [
            _Block(w[i], w[i + 1], 2) for i in range(1, len(w) - 1)
        ]
        self.stages = nn.Sequential(*blocks)
        self.neck = nn.Sequential(
            nn.Linear(w[-1], c.embedding_dim, bias=False), nn.BatchNorm1d(c.embedding_dim)
        )

    @property
    def embedding_dim(self) -> int:
        """Length of the output."""
        return self.config.embedding_dim

    def features(self, x: Tensor) -> Tensor:
        """``(n, bands, S, S) -> (n, widths[-1])`` pooled backbone features."""
        return self.stages(self.stem(self.stretch(x))).mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """``(n, bands, S, S) -> (n, embedding_dim)``."""
        return self.neck(self.features(x))


@register_architecture(ARCHITECTURE)
def _build_image_cnn(config: dict) -> ImageCNN:
    return ImageCNN(ImageModelConfig.from_dict(config))


# ----------------------------------------------------------------------------------------------- encoders
class ImageEncoder:
    """Our CNN as an :class:`~explorer.models.base.Encoder`: raw cutouts → L2-normalised embeddings.

    Parameters
    ----------
    module : ImageCNN
    name : str
        Identifier recorded with the embeddings.
    dihedral : bool
        Average the features over the 8 rotations by 90° and flips before normalising: the embedding then
        does not depend on the cutout's orientation at all. Off by default: it costs 8× the compute, and a
        network pretrained with rotation augmentations is already nearly invariant (on FIRST it moved kNN
        accuracy by < 0.01, see benchmarks/RESULTS_image.md); a randomly initialised one gains more.
    device : str
    bf16 : bool or None
        bfloat16 autocast for inference (default: on CPU when supported, on CUDA).
    fuse : bool
        Fold each BatchNorm into the convolution before it for inference (same outputs to ~1e-4;
        1.45× faster on CPU in our measurement). ``module`` itself is left untouched.
    """

    modality = "image"

    def __init__(
        self,
        module: ImageCNN,
        name: str = ARCHITECTURE,
        dihedral: bool = False,
        device: str = "cpu",
        bf16: bool | None = None,
        fuse: bool = True,
    ) -> None:
        self.module = module.eval().to(device).to(memory_format=torch.channels_last)
        self._net = fused_for_inference(self.module) if fuse else self.module
        self.config = module.config
        self.name = name
        self.dihedral = dihedral
        self.device = device
        self.bf16 = bf16_supported(device) if bf16 is None else bf16
        self.last_blank: np.ndarray = np.zeros(0, bool)

    @property
    def embedding_dim(self) -> int:
        """Length of each embedding vector."""
        return self.config.embedding_dim

    def preprocess(self, batch: Any) -> Tensor:
        """Raw ``(n, B, H, W)`` cutouts → ``(n, B, S, S)`` network input; sets :attr:`last_blank`."""
        arr = _as_nbhw(batch)
        if arr.shape[1] != self.config.bands:
            raise DataError(
                f"cutouts have {arr.shape[1]} bands but encoder {self.name!r} expects {self.config.bands}; "
                "select the bands it was trained on or train a new encoder"
            )
        x, self.last_blank = normalise_cutouts(arr, self.config.input_size, self.config.crop)
        return x

    @torch.inference_mode()
    def features(self, x: Tensor) -> Tensor:
        """Network input ``(n, B, S, S)`` → raw features ``(n, embedding_dim)`` (dihedral-averaged if set)."""
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        dev = "cuda" if str(self.device).startswith("cuda") else "cpu"
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=self.bf16):
            if self.dihedral:
                n = x.shape[0]
                out = self._net(dihedral_all(x)).float().reshape(8, n, -1).mean(0)
            else:
                out = self._net(x).float()
        return out

    def embed(self, batch: Any) -> np.ndarray:
        """Raw cutouts ``(n, B, H, W)`` (NaNs allowed) → ``(n, embedding_dim)`` float32, L2-normalised."""
        out = self.features(self.preprocess(batch)).cpu().numpy()
        if not np.isfinite(out).all():
            raise ModelError(f"encoder {self.name!r} produced NaN/inf embeddings; the weights may be corrupt")
        return l2_normalise(out)


def fused_for_inference(module: nn.Module) -> nn.Module:
    """A channels-last copy of ``module`` with Conv+BatchNorm pairs folded (torch.fx), for inference only.

    Same outputs to ~1e-4 and 1.45× faster on CPU for :class:`ImageCNN`; ``module`` itself is untouched.
    Returns ``module`` unchanged when it cannot be traced (an untraceable custom module still works unfused).
    Shared by :class:`ImageEncoder` and the frozen part of fine-tuning (``explorer.models.finetune``).
    """
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its import touches torch.jit.script_method
        from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(module).eval()).to(memory_format=torch.channels_last)
    except Exception:  # noqa: BLE001 -- an untraceable custom module still works unfused
        return module


def bf16_supported(device: str) -> bool:
    """True when bfloat16 autocast is worth using on ``device``: CUDA, or a CPU with native bf16 (oneDNN)."""
    if str(device).startswith("cuda"):
        return True
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TorchImageEncoder(TorchEncoder):
    """Bring-your-own weights: any ``nn.Module`` plus a preprocessing callable, as an image :class:`Encoder`.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``preprocess(batch)`` to ``(n, d)`` features.
    preprocess : callable, optional
        Raw ``(n, B, H, W)`` float32 cutouts → module input tensor; default :func:`normalise_cutouts` at 64 px.
    name : str
        Identifier recorded with the embeddings.

    Examples
    --------
    >>> enc = TorchImageEncoder(my_resnet, lambda b: normalise_cutouts(b, 224)[0].repeat(1, 3, 1, 1), "zoobot-v2")
    """

    def __init__(
        self,
        module: nn.Module,
        preprocess: Callable[[Any], Tensor] | None = None,
        name: str = "custom-image-encoder",
        embedding_dim: int | None = None,
        device: str = "cpu",
    ) -> None:
        if preprocess is None:

            def preprocess(batch: Any) -> Tensor:
                return normalise_cutouts(batch, 64)[0]

        super().__init__(module, preprocess, name, "image", embedding_dim, device)


def load_image_encoder(directory: Path | str, *, dihedral: bool = False, device: str = "cpu") -> ImageEncoder:
    """An :class:`ImageEncoder` from a checkpoint folder; its name is ``<architecture>@<sha256[:8]>``."""
    directory = Path(directory)
    module = build_from_checkpoint(directory, architecture=ARCHITECTURE)
    _, config = load_checkpoint(directory, architecture=ARCHITECTURE)
    name = config.get("name") or f"{ARCHITECTURE}@{config['weights_sha256'][:8]}"
    return ImageEncoder(module, name=name, dihedral=dihedral, device=device)


def embed_images(
    encoder: Any,
    images: Any,
    batch_size: int = 256,
    progress: bool = True,
    *,
    ids: Sequence | None = None,
    on_blank: str = "warn",
) -> np.ndarray:
    """Embed cutouts in batches: ``(N, B, H, W)`` array or memmap → ``(N, d)`` float32, L2-normalised.

    Parameters
    ----------
    encoder : Encoder
        E.g. :class:`ImageEncoder` or :class:`TorchImageEncoder`.
    images : array-like
        Read one batch at a time, so a memmap never loads whole.
    batch_size : int
    progress : bool
        Show a tqdm bar.
    ids : sequence, optional
        Object ids, used to name blank cutouts in the warning or error.
    on_blank : {"warn", "raise"}
        A cutout with no finite pixel is embedded as a blank image (a valid, finite vector) with a warning
        naming it, or raises :class:`DataError`.
    """
    from explorer.progress import progress_bar

    if on_blank not in ("warn", "raise"):
        raise ModelError(f"on_blank={on_blank!r}; use 'warn' or 'raise'")
    n = len(images)
    out: np.ndarray | None = None  # allocated at the first batch: the encoder may learn its length from it
    blank_rows: list[int] = []
    with progress_bar(
        range(0, n, batch_size), disable=not progress, desc="embed images", unit="batch"
    ) as bar:
        for start in bar:
            batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
            if batch.ndim == 3:
                batch = batch[:, None]
            empty = ~np.isfinite(batch).any(axis=(2, 3)).all(axis=1)
            blank_rows.extend((start + np.flatnonzero(empty)).tolist())
            vectors = encoder.embed(batch)
            if out is None:
                out = np.empty((n, vectors.shape[1]), np.float32)
            elif vectors.shape[1] != out.shape[1]:
                raise ModelError(
                    f"encoder {getattr(encoder, 'name', encoder)!r} returned {vectors.shape[1]} features for rows "
                    f"{start}-{start + len(batch) - 1}, {out.shape[1]} before; an encoder must keep one length"
                )
            out[start : start + len(batch)] = vectors
    if out is None:  # no images: the length is only known if the encoder says it
        try:
            dim = int(encoder.embedding_dim)
        except ModelError:
            dim = 0
        out = np.empty((0, dim), np.float32)
    if blank_rows:
        names = [str(ids[i]) if ids is not None else f"row {i}" for i in blank_rows[:10]]
        more = f" and {len(blank_rows) - 10} more" if len(blank_rows) > 10 else ""
        msg = (
            f"{len(blank_rows)} cutout(s) have no finite pixel in some band: {', '.join(names)}{more}; "
            "they were embedded as blank images"
        )
        if on_blank == "raise":
            raise DataError(msg.replace("they were embedded as blank images", "drop them or fill the NaNs"))
        warnings.warn(msg, stacklevel=2)
    return out


def weights_digest(module: nn.Module) -> str:
    """Short sha256 of a module's parameters (a version tag for untrained or in-memory models)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:8]
