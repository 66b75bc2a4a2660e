"""Cutout artefacts the embeddings cannot see: hot pixels / cosmic rays and satellite trails.

A contrastive encoder is trained to ignore noise, blur and small shifts, which is exactly what a few hot pixels
or a faint single-band trail look like to it: on the simulated survey its embeddings rank hot pixels no higher
than ordinary galaxies (ROC AUC 0.54, ``benchmarks/RESULTS.md``). These two statistics look at the pixels
instead, in units of each cutout's own noise, and learn what "ordinary" means from the survey itself:

* ``hot_pixel``: each pixel is predicted from its 5x5 neighbourhood in every band *except itself* (a linear
  blind-spot filter, least squares on a sample of the survey's cutouts). Anything the telescope saw is blurred by
  the PSF, so its pixels follow from their neighbours; a hit sharper than the PSF does not. Each residual is
  taken over its expected error: the robust scatter of the band's residuals (the sky) plus :data:`MISMATCH`
  times the predicted value (bright cores are predicted less exactly; the same for ``trail``). A cosmic ray or
  a hot pixel is in one band's exposure, so the statistic is the largest residual *above the largest of the other
  bands' at the same pixel* (``top - max(second, 0)`` over the bands; one band: the residual itself): a compact
  bright core, sharper than the filter expects in every band at once, cancels. On the simulated survey (20k,
  seeds 0 / 1) every hot-pixel cutout stayed in the statistic's top 9, and its share of the combined top 1 %
  fell from 30 / 40 to 18 / 23 (fewer bright galaxies), with 72 / 70 oddities found against 71 / 69.
* ``trail``: each band is predicted from the *other* bands' 5x5 neighbourhoods (a cross-band filter: sources
  have colours, a satellite or a cosmic ray crosses one exposure, one band), and the residual, clipped at
  ±5 sigma and left out where a source is predicted (:data:`SOURCE_MASK`: a star of unusual colour is not a
  line), is summed along every straight line through the frame (a discrete Radon transform, 48 angles,
  one-pixel offsets), in thirds of each line's length. A trail crosses the whole frame, so the statistic is the
  largest, over lines, of the *weakest* third's sum over ``sqrt`` of the sky pixels it counts, times ``sqrt(3)``
  (the signal-to-noise of the whole line when the thirds are equal): a galaxy's arm, bright over a third of a
  line at most, no longer reads as a line. On the simulated survey (20k, seeds 0 / 1) every trail stayed in the
  statistic's top 12 and 10, and its share of the combined top 1 % fell from 40 / 48 to 26 / 21 (mostly face-on
  spirals), one more oddity found on each seed (the sum over the whole line before, ``benchmarks/RESULTS.md``).
  With one band there is no other band to predict from and the noise-scaled image itself is summed.

Pixels are compressed as ``3·asinh(S/3)`` of the signal-to-noise ``S`` (linear below 3 sigma, logarithmic above),
so bright galaxy cores do not dominate the fits. NaN pixels count as background; a band with no finite pixel
gives NaN statistics for that cutout (no evidence either way). scikit-learn dialect: ``fit`` on cutouts, then
``transform`` returns ``(n, 2)`` in the order of :attr:`feature_names_out_`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from explorer.errors import DataError

__all__ = ["CutoutArtefacts", "noise_scaled"]

FEATURES = ("hot_pixel", "trail")
KERNEL = 5
CLIP = 5.0  # sigma: the trail statistic's clip of the cross-band residual
#: Relative error of the blind-spot prediction (in 3·asinh(S/3) units) added to the sky's scatter. On the
#: simulated survey (20k, ``benchmarks/bench_anomaly.py``) 0 / 0.1 / 0.2 / 0.3 put the 9 hot-pixel cutouts at
#: ranks <= 79 / 28 / 10 / 10 and left 65 / 54 / 36 / 26 ordinary cutouts above 3 decades of tail significance.
MISMATCH = 0.3
N_ANGLES = 48
#: The trail statistic sums the cross-band residual only where the prediction is below this (in ``3·asinh(S/3)``
#: units, S/N ~1.6): on the sky, not on sources. A star of unusual colour (a very red LPV) leaves a residual disc
#: that every line through it summed: on the simulated survey (20k, seeds 0 / 1) such stars held 131 / 67 of the
#: trail statistic's top 200 and 54 / 44 of the combined top 1 %; masked, 12 / 14 and 14 / 7, with every trail
#: still in the top 1 % and the oddities found unchanged (48 / 40).
SOURCE_MASK = 1.5


def noise_scaled(cutouts: Any, max_size: int = 128, compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(n, B, H, W)`` cutouts -> ``3·asinh(S/3)`` of their per-band signal-to-noise ``S`` (``S`` itself
    without ``compress``), and the blank mask.

    The central ``max_size`` pixels are kept (artefacts are looked for there); each band's background is its
    median and its noise 1.4826 x the median absolute deviation. NaN pixels become 0 (background). ``blank``
    (``(n,)`` bool) marks cutouts with a band of no finite pixel or no noise at all: constant, or a background
    clipped to one value (thresholded images such as the FIRST sample, where most pixels are exactly 0).
    """
    import torch

    arr = np.asarray(cutouts)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise DataError(f"cutouts must be (n, bands, H, W) or (n, H, W); got shape {arr.shape}")
    h, w = arr.shape[-2:]
    if min(h, w) < 2 * KERNEL:
        raise DataError(f"cutouts of {h}x{w} px are too small to look for artefacts (need at least "
                        f"{2 * KERNEL} px a side)")
    top, left = max(0, (h - max_size) // 2), max(0, (w - max_size) // 2)
    arr = np.array(arr[..., top : top + max_size, left : left + max_size], dtype=np.float32)
    n, b = arr.shape[:2]
    flat = torch.from_numpy(arr.reshape(n, b, -1))  # non-finite pixels become NaN, ignored by nanmedian
    flat = torch.where(torch.isfinite(flat), flat, torch.full_like(flat, float("nan")))
    bg = flat.nanmedian(dim=2, keepdim=True).values
    sigma = 1.4826 * (flat - bg).abs().nanmedian(dim=2, keepdim=True).values
    ok = torch.isfinite(sigma) & (sigma > 0)
    blank = ~ok.all(dim=2).all(dim=1).numpy()
    s = (flat - torch.nan_to_num(bg)) / torch.where(ok, sigma, torch.ones_like(sigma))
    s = torch.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0).reshape(arr.shape)
    return ((3.0 * torch.asinh(s / 3.0)) if compress else s).numpy(), blank


@lru_cache(maxsize=8)
def _radon_thirds(h: int, w: int):
    """Which pixels each straight line (angle, one-pixel offset) crosses, in thirds of its length: a sparse
    ``(3·lines, h·w)`` 0/1 matrix, rows ``k·lines + line`` for the ``k``-th third along the line; lines shorter than
    a quarter of the frame are dropped."""
    from scipy import sparse

    y, x = np.mgrid[:h, :w]
    x, y = (x - (w - 1) / 2).ravel(), (y - (h - 1) / 2).ravel()
    half = int(math.ceil(math.hypot(h, w) / 2)) + 1
    pixels, lines, along = [], [], []
    for a, theta in enumerate(np.linspace(0.0, np.pi, N_ANGLES, endpoint=False)):
        rho = np.rint(x * math.cos(theta) + y * math.sin(theta)).astype(np.int64) + half
        pixels.append(np.arange(h * w))
        lines.append(a * (2 * half + 1) + rho)
        along.append(y * math.cos(theta) - x * math.sin(theta))
    pixels, lines, along = np.concatenate(pixels), np.concatenate(lines), np.concatenate(along)
    n_lines = N_ANGLES * (2 * half + 1)
    lo, hi = np.full(n_lines, np.inf), np.full(n_lines, -np.inf)
    np.minimum.at(lo, lines, along)
    np.maximum.at(hi, lines, along)
    third = np.minimum((3 * (along - lo[lines]) / np.maximum(hi[lines] - lo[lines], 1e-9)).astype(np.int64), 2)
    keep = np.flatnonzero(np.bincount(lines, minlength=n_lines) >= min(h, w) / 4)
    new_index = np.full(n_lines, -1)
    new_index[keep] = np.arange(len(keep))
    used = new_index[lines] >= 0
    rows = third[used] * len(keep) + new_index[lines[used]]
    return sparse.csr_matrix((np.ones(int(used.sum()), np.float32), (rows, pixels[used])),
                             shape=(3 * len(keep), h * w))


class CutoutArtefacts:
    """Hot-pixel and satellite-trail statistics of cutouts, learned from the survey's own cutouts.

    Parameters
    ----------
    max_size : int
        Side of the central square looked at (larger cutouts are cropped, never resampled: resampling would
        blur a hot pixel into a star).
    fit_cutouts : int
        Cutouts (a seeded sample) whose pixels fit the predictors.
    fit_pixels : int
        Pixels (a seeded sample of those cutouts' pixels) per least-squares fit.
    random_state : int

    Attributes
    ----------
    n_bands_ : int
    hot_filter_, cross_filter_ : numpy.ndarray
        ``(B, B, 5, 5)`` linear predictors of each band (blind-spot; other bands only), with ``*_bias_``.
    feature_names_out_ : tuple of str
        ``("hot_pixel", "trail")``.
    """

    feature_names_out_ = FEATURES

    def __init__(self, max_size: int = 128, fit_cutouts: int = 2000, fit_pixels: int = 400_000,
                 random_state: int = 0) -> None:
        self.max_size = max_size
        self.fit_cutouts = fit_cutouts
        self.fit_pixels = fit_pixels
        self.random_state = random_state

    def fit(self, cutouts: Any) -> CutoutArtefacts:
        """Fit the two per-band predictors on (a sample of) ``cutouts``, ``(n, B, H, W)``."""
        arr = np.asarray(cutouts) if not hasattr(cutouts, "shape") else cutouts
        rng = np.random.default_rng(self.random_state)
        n = len(arr)
        if n == 0:
            raise DataError("no cutouts to fit the artefact statistics on")
        take = np.sort(rng.choice(n, min(n, self.fit_cutouts), replace=False))
        y, blank = noise_scaled(np.asarray(arr[take]), self.max_size)
        y = y[~blank]
        if len(y) < max(1, len(blank) // 2):
            raise DataError(f"{int(blank.sum())} of {len(blank)} cutouts given to fit the artefact statistics "
                            "have no measurable noise (a band with no finite pixel, constant, or a background "
                            "clipped to one value): hot pixels and trails cannot be told from the noise")
        m, b, h, w = y.shape
        k = min(self.fit_pixels, m * h * w)  # pixels drawn across the sample, with their neighbourhoods
        i, r, c = rng.integers(0, m, k), rng.integers(0, h, k), rng.integers(0, w, k)
        p = KERNEL // 2
        padded = np.pad(y, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
        dy, dx = np.mgrid[:KERNEL, :KERNEL]
        u = padded[i[:, None, None, None], np.arange(b)[None, :, None, None],
                   (r[:, None, None, None] + dy), (c[:, None, None, None] + dx)]
        u = u.reshape(k, b * KERNEL * KERNEL).astype(np.float64)
        target = y[i, :, r, c].astype(np.float64)
        taps = KERNEL * KERNEL
        self.n_bands_ = b
        self.hot_filter_, self.hot_bias_ = self._fit_filters(u, target, lambda band, c: c != band * taps + taps // 2)
        if b > 1:
            self.cross_filter_, self.cross_bias_ = self._fit_filters(u, target, lambda band, c: c // taps != band)
        else:
            self.cross_filter_, self.cross_bias_ = None, None
        return self

    @staticmethod
    def _fit_filters(u: np.ndarray, target: np.ndarray, use) -> tuple[np.ndarray, np.ndarray]:
        b = target.shape[1]
        filters = np.zeros((b, u.shape[1]), np.float32)
        bias = np.zeros(b, np.float32)
        for band in range(b):
            cols = np.array([c for c in range(u.shape[1]) if use(band, c)])
            design = np.column_stack([u[:, cols], np.ones(len(u))])
            gram = design.T @ design  # normal equations (a few hundred thousand rows, ~80 columns)
            coef = np.linalg.solve(gram + 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram)),
                                   design.T @ target[:, band])
            filters[band, cols], bias[band] = coef[:-1], coef[-1]
        return filters.reshape(b, b, KERNEL, KERNEL), bias

    def transform(self, cutouts: Any, batch: int = 512) -> np.ndarray:
        """``(n, 2)`` float32: ``hot_pixel`` and ``trail`` per cutout (higher = more likely an artefact; NaN for
        a blank cutout)."""
        if not hasattr(self, "n_bands_"):
            raise DataError("CutoutArtefacts is not fitted yet; call fit(cutouts) first")
        arr = cutouts if hasattr(cutouts, "shape") else np.asarray(cutouts)
        out = np.full((len(arr), len(FEATURES)), np.nan, np.float32)
        for a in range(0, len(arr), batch):
            out[a : a + batch] = self._transform_batch(np.asarray(arr[a : a + batch]))
        return out

    def _transform_batch(self, cutouts: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        y, blank = noise_scaled(cutouts, self.max_size)
        if y.shape[1] != self.n_bands_:
            raise DataError(f"cutouts have {y.shape[1]} band(s); the artefact statistics were fitted on "
                            f"{self.n_bands_}: fit them on cutouts of this image set")
        t = torch.from_numpy(y)
        p = KERNEL // 2
        padded = F.pad(t, (p, p, p, p), mode="reflect")
        with torch.no_grad():
            hot = F.conv2d(padded, torch.from_numpy(self.hot_filter_), torch.from_numpy(self.hot_bias_)).numpy()
            cross = None if self.cross_filter_ is None else F.conv2d(
                padded, torch.from_numpy(self.cross_filter_), torch.from_numpy(self.cross_bias_)).numpy()
        n, b, h, w = y.shape
        hot_stat = _one_band(_surprise(y, hot)).reshape(n, -1).max(axis=1)
        # one band: no other band to predict from, the noise-scaled image itself is summed along lines
        flat = np.clip(y if cross is None else _surprise(y, cross), -CLIP, CLIP)
        sky = np.ones_like(flat) if cross is None else (np.abs(cross) <= SOURCE_MASK).astype(np.float32)
        flat = flat * sky  # lines count on the sky, not across sources
        trail_stat = _weakest_third(flat.reshape(n * b, h * w), sky.reshape(n * b, h * w), h, w)
        trail_stat = trail_stat.reshape(n, -1).max(axis=1)
        out = np.column_stack([hot_stat, trail_stat]).astype(np.float32)
        out[blank] = np.nan
        return out


def _weakest_third(pixels: np.ndarray, sky: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(rows, lines)``: ``sqrt(3)`` x the weakest third of each line: its sum of ``pixels`` over ``sqrt`` of the
    sky pixels it counts (``sky``: 1 on the sky, 0 on a source; a third all on sources counts 0)."""
    thirds = _radon_thirds(h, w)
    n = len(pixels)
    sums = thirds @ np.ascontiguousarray(np.vstack([pixels, sky]).T)  # (3·lines, 2·rows): one sparse product
    sums = sums.reshape(3, -1, 2 * n)
    value = sums[..., :n] / np.sqrt(np.maximum(sums[..., n:], 1.0))
    return math.sqrt(3.0) * value.min(axis=0).T


def _one_band(surprise: np.ndarray) -> np.ndarray:
    """``(n, B, H, W)`` -> ``(n, H, W)``: at each pixel the largest band's surprise above the largest of the
    others' (at least 0); the surprise itself with one band."""
    if surprise.shape[1] < 2:
        return surprise[:, 0]
    import torch

    top = torch.from_numpy(np.ascontiguousarray(surprise)).topk(2, dim=1).values.numpy()
    return top[:, 0] - np.maximum(top[:, 1], 0.0)


def _surprise(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``(observed - expected)`` over its expected error: the robust scatter of each band's residuals (the sky)
    plus :data:`MISMATCH` x the expected value (a predictor is never exact on a bright galaxy core)."""
    residual = observed - expected
    n, b = residual.shape[:2]
    sky = _robust_sd(residual.reshape(n * b, -1)).reshape(n, b, 1, 1)
    return residual / np.sqrt(sky**2 + (MISMATCH * expected) ** 2)


def _robust_sd(x: np.ndarray) -> np.ndarray:
    """1.4826 x the median absolute value per row (residuals are centred), at least 1e-6."""
    import torch

    return np.maximum(1.4826 * torch.from_numpy(np.abs(x)).median(dim=1).values.numpy(), 1e-6)
