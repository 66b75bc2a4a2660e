"""Astronomy-aware image augmentations as batched plain-torch ops (no torchvision).

Every function takes a float tensor ``(n, C, H, W)`` of *normalised linear* images (background ≈ 0, peak ≈ 1,
see :func:`explorer.models.image_encoder.normalise_cutouts`) and a ``torch.Generator`` so that a seed fixes the
result; shape and dtype are preserved. The stretch (asinh) is applied after augmenting, so brightness and
noise act on linear flux as a telescope would. :class:`ImageAugment` chains them into the two random "views"
a contrastive objective (SimCLR, Chen et al. 2020) compares.

- dihedral: the 8 rotations by 90° and flips (exact, no interpolation) -- the sky has no preferred orientation
- affine: any rotation angle, a small zoom and a few pixels' shift, in one bilinear ``grid_sample``
- psf_blur: a Gaussian point-spread function of random width (grouped ``conv2d``)
- add_noise: Gaussian noise at a random fraction of the image's own noise level (or of its peak if noiseless)
- brightness: multiply the linear flux, i.e. a shift of the asinh-stretched image's zero point
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AugmentConfig",
    "ImageAugment",
    "add_noise",
    "affine",
    "brightness",
    "dihedral",
    "dihedral_all",
    "psf_blur",
    "robust_sigma",
]


def _uniform(n: int, low: float, high: float, g: torch.Generator | None, device) -> Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def dihedral(x: Tensor, k: Tensor, flip: Tensor) -> Tensor:
    """Rotate each image by ``k * 90°`` and then mirror it left-right where ``flip``.

    Parameters
    ----------
    x : Tensor
        ``(n, C, H, W)`` with ``H == W``.
    k : Tensor
        ``(n,)`` integers in 0..3.
    flip : Tensor
        ``(n,)`` booleans.
    """
    out = x.clone()
    for r in range(1, 4):
        sel = k == r
        if sel.any():
            out[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
    if flip.any():
        out[flip] = torch.flip(out[flip], dims=(-1,))
    return out


def dihedral_all(x: Tensor) -> Tensor:
    """All 8 dihedral transforms, stacked group-major: ``(n, C, H, W) -> (8 n, C, H, W)``."""
    rots = [torch.rot90(x, r, dims=(-2, -1)) for r in range(4)]
    return torch.cat(rots + [torch.flip(r, dims=(-1,)) for r in rots], dim=0)


def affine(
    x: Tensor,
    angle: Tensor,
    scale: Tensor,
    shift: Tensor,
    flip: Tensor | None = None,
) -> Tensor:
    """Rotate by ``angle`` (radians), zoom by ``scale`` (>1 enlarges), shift by ``shift`` pixels, bilinearly.

    ``angle``, ``scale``: ``(n,)``; ``shift``: ``(n, 2)`` in pixels (x, y); ``flip``: ``(n,)`` booleans
    (mirror before rotating). Pixels from outside the frame are 0 (background).
    """
    n, _, h, w = x.shape
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    sx = torch.ones_like(cos) if flip is None else 1.0 - 2.0 * flip.to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos
    theta[:, 0, 2] = -2.0 * shift[:, 0] / w
    theta[:, 1, 2] = -2.0 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _blur_matrices(sigma: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    """``(n,)`` widths -> ``(n, size, size)`` row-normalised 1-D Gaussian blur matrices (zero padding)."""
    t = torch.arange(size, dtype=dtype, device=sigma.device)
    d = t[:, None] - t[None, :]
    s = sigma.clamp_min(1e-3).to(dtype)[:, None, None]
    k = torch.exp(-0.5 * (d[None] / s) ** 2)
    return k / k.sum(2, keepdim=True)


def psf_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Convolve each image with a circular Gaussian of width ``sigma`` pixels (``(n,)``; 0 leaves it as is).

    The separable kernel is applied as two batched matrix products (``K_y X K_xᵀ``), several times faster on a
    CPU than a grouped ``conv2d`` with one kernel per image. Flux is conserved away from the edges.
    """
    n, c, h, w = x.shape
    if n == 0 or float(sigma.max()) <= 1e-3:
        return x
    ky = _blur_matrices(sigma, h, x.dtype)[:, None]  # (n, 1, h, h)
    kx = ky if w == h else _blur_matrices(sigma, w, x.dtype)[:, None]
    y = ky @ x @ kx.transpose(-1, -2)
    keep = sigma <= 1e-3
    if keep.any():
        y[keep] = x[keep]
    return y


def robust_sigma(x: Tensor, max_pixels: int = 1024) -> Tensor:
    """Per-image noise level: 1.4826 × median absolute deviation. ``(n, C, H, W) -> (n,)``.

    Uses an even subsample of at most ``max_pixels`` pixels per image (the median needs a sort).
    """
    flat = x.flatten(1)
    step = max(1, flat.shape[1] // max_pixels)
    flat = flat[:, ::step]
    med = flat.median(dim=1, keepdim=True).values
    return 1.4826 * (flat - med).abs().median(dim=1).values


def add_noise(x: Tensor, level: Tensor, g: torch.Generator | None = None, floor: float = 0.01) -> Tensor:
    """Add Gaussian noise of ``level × σ`` per image, σ the image's :func:`robust_sigma`.

    Images with no measurable noise (e.g. FIRST cutouts, clipped at 3σ to exactly 0) use ``floor`` × peak
    as their σ instead, so the augmentation still perturbs them.
    """
    sigma = robust_sigma(x)
    peak = x.flatten(1).amax(1).clamp_min(1e-6)
    sigma = torch.where(sigma > 1e-6 * peak, sigma, floor * peak)
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return x + noise * (level * sigma)[:, None, None, None]


def brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Multiply each image's linear flux by ``factor`` (``(n,)``): after the asinh stretch this moves bright
    structure up or down the curve while faint structure crosses the linear/log knee."""
    return x * factor[:, None, None, None]


@dataclass
class AugmentConfig:
    """Strengths of the augmentations (all per image, drawn uniformly).

    Attributes
    ----------
    rotate : bool
        Any rotation angle plus random mirror flips (the sky has no orientation).
    max_shift : float
        Largest shift, in pixels of the model input.
    scale : tuple of float
        Zoom range (``1.0, 1.0`` keeps the angular scale: sizes separate classes of radio galaxies).
    blur_sigma : tuple of float
        Gaussian PSF width range in pixels; applied with probability ``blur_prob``.
    blur_prob : float
    noise_level : tuple of float
        Added noise as a multiple of the image's own noise (or of 1% of its peak if noiseless).
    brightness : tuple of float
        Linear flux factor range.
    """

    rotate: bool = True
    max_shift: float = 3.0
    scale: tuple[float, float] = (0.9, 1.1)
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    blur_prob: float = 0.5
    noise_level: tuple[float, float] = (0.0, 1.0)
    brightness: tuple[float, float] = (0.7, 1.4)

    def to_dict(self) -> dict:
        """JSON-friendly copy (for checkpoint configs)."""
        return asdict(self)


class ImageAugment:
    """One random view per image: affine (rotation/flip/zoom/shift) → PSF blur → brightness → noise.

    Parameters
    ----------
    config : AugmentConfig

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> view = ImageAugment()(torch.rand(4, 1, 32, 32), g)   # (4, 1, 32, 32)
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, x: Tensor, g: torch.Generator | None = None) -> Tensor:
        """``(n, C, H, W) -> (n, C, H, W)``, same dtype; deterministic for a given generator state."""
        c, n, dev = self.config, x.shape[0], x.device
        if c.rotate:
            angle = _uniform(n, 0.0, 2 * math.pi, g, dev)
            flip = torch.rand(n, generator=g, device=dev) < 0.5
        else:
            angle, flip = torch.zeros(n, device=dev), torch.zeros(n, dtype=torch.bool, device=dev)
        scale = torch.exp(_uniform(n, math.log(c.scale[0]), math.log(c.scale[1]), g, dev))
        shift = (torch.rand(n, 2, generator=g, device=dev) * 2 - 1) * c.max_shift
        y = affine(x, angle.to(x.dtype), scale.to(x.dtype), shift.to(x.dtype), flip)
        sigma = _uniform(n, *c.blur_sigma, g, dev) * (torch.rand(n, generator=g, device=dev) < c.blur_prob)
        y = psf_blur(y, sigma.to(x.dtype))
        y = brightness(y, _uniform(n, *c.brightness, g, dev).to(x.dtype))
        y = add_noise(y, _uniform(n, *c.noise_level, g, dev).to(x.dtype), g)
        return y
