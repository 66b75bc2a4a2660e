"""Morphology the embeddings blur: a ring of light about a galaxy's centre, a companion of its colour beside it.

A contrastive encoder places ring galaxies a little off the ordinary galaxies (ROC AUC 0.91 on the simulated
survey) but never beyond the sparse tail of bright or large ones, so no ring reached the top 1 % of any score on
the embeddings (``benchmarks/RESULTS.md``). What makes a ring is simple to measure instead: at one distance from
the centre, the light is brighter than a little inside *and* a little outside, all the way round. An ordinary
galaxy's light falls with radius (bulge, disc, and spiral arms, which cross a given radius over part of the
angles only: a tightly wound arm for a radian or two).

``ring``: the noise-scaled cutout, summed over bands and smoothed (Gaussian, :data:`SMOOTH` px), is sampled on
ellipses about the light centroid (radii of 2 px to :data:`REACH` of the frame, :data:`N_ANGLES` angles); at
each radius and angle the ridge is the light there minus the brighter of the light :data:`STEP` px inside and
outside (:data:`STEP` px along the ray; positive only at a local maximum along the radius), as a contrast over
that brighter light plus :data:`RING_SOFT` noise units (a faint ring counts in signal-to-noise, a bright one
against the light beside it: a bright spiral's arms are strong ridges in noise units but weak against their
disc), the best within
:data:`WOBBLE` px of that radius (a clump, an inclination the moments missed). The statistic is the ridge that
3 in 4 of the angles reach (the :data:`ALL_ROUND` quantile) at the best radius, and the best of three ellipse
shapes: the second moments of the core (8 px), of the light out to 16 px
(asinh-weighted, so a ring's own light sets its inclination), and a circle. Blank cutouts (no noise to scale
by: :func:`~explorer.analysis.artefacts.noise_scaled`) give NaN. A faint ring on a bright disc or core (a few
per cent of the light) is not a local maximum of the light and is not found.

``companion``: a second galaxy of the host's colour beside it, and more asymmetric light of the same colour (a
merger's companion and tidal tail; a chance neighbour seldom has the host's colour, a star never has its light
spread about). The smoothed bands are reflected through the light centroid and subtracted (what is not
point-symmetric remains); the companion is the brightest residual 3-16 px from the centre, its flux the positive
residual within 3 px of it, and the asymmetric light the positive residual 2-16 px from the centre outside 5 px
of the companion and of its mirror image, both as fractions of the host's core (within 3 px); the companion's
as the fainter of the pair over the brighter (a star far brighter than the galaxy beside it is no merging
partner: on the simulated survey such neighbours held many of the statistic's top places). Each is weighted by
``exp(-(Δc / w)^2)``, ``Δc`` its colour's distance from the core's (adjacent-band colours; no weight with one
band), ``w`` 0.15 mag for the companion and 0.3 for the asymmetric light (tidal tails form stars and are a
little bluer), and the statistic is ``log10`` of the product (plus 1e-4): in decades, so a detector's
exponential tail is drawn on a scale where the products of fractions are not heavy-tailed. Measured on the
simulated survey (20k, seeds 0 / 1; session 10): both changes together found 12 of 13 and 11 of 15 mergers in
the combined top 1 % (11 and 10 before) and 74 / 71 oddities (72 / 70); either alone changed nothing or cost
(the wider colour alone lost 3 mergers on seed 0 to blue-armed spirals beside bright stars).

``arc``: a blue arc with a fainter counter-image about a redder galaxy (a strongly lensed background source;
the lens is most often a massive early-type galaxy). The bands are summed in a bluer and a redder half (g and i
of g, r, i; u+g and i+z of ugriz); the red half scaled to the blue by the core's colour (within 3 px) is
subtracted from the blue: a galaxy of one colour cancels, light bluer than the core remains.
That map is sampled on circles about the centroid (4-16 px, at most :data:`REACH` of the frame, :data:`ARC_ANGLES`
angles) and each circle's median
subtracted (a colour gradient, unequal PSFs). At its brightest point (the arc) the statistic takes the counter-image,
the brightest point within 1 px and 3 angles of the opposite side, in noise units (1.4826 x the median absolute
value of the map) above :data:`ARC_SNR`, times the fraction of the map's positive light within the arc's box
(:data:`ARC_BOX`: blue spiral arms spread theirs), times ``exp(-ARC_SIDE x dip)`` (``dip``: how far the map falls
below 0 a quarter-turn away, as a fraction of the peak: an inclined blue disc about a red bulge is a quadrupole),
times ``1 - exp(-(Δc / ARC_COLOUR)^ARC_COLOUR_POWER)`` (``Δc``: how much bluer the light at the arc is than the
core, in the blue-half minus red-half colour: a difference of colours, so the bands' zero points cancel; 0.8 mag
and a fourth power: a lensed source, a star-forming galaxy behind a red early-type, measured 0.61-1.18 mag bluer
on the simulated survey and the spirals among the statistic's top 60 0.32-0.84, median 0.5, their arms against
their bulge; the weight is 0.14 at 0.5 mag, 0.63 at 0.8 and 0.91 at 1.0 — with 0.6 mag squared, 0.50, 0.83 and
0.94 — and took the lenses in the combined top 1 % from 10 / 11 / 3 to 10 / 11 / 5, seeds 0 / 1 / 2), as ``log10`` (plus
:data:`ARC_FLOOR`). NaN with one band and for frames under 15 px. Bands are taken bluest first
(:func:`~explorer.analysis.data_detectors.blue_to_red` orders an image set's known filters).

Measured on the simulated survey (20k, seeds 0 / 1, ``benchmarks/bench_anomaly.py``): 5 of 5 and 5 of 9 rings
at ranks 0-21 of ~19,700 cutouts (the 4 missed are the most inclined, axis ratio <= 0.55), with 25 and 20
face-on spirals in its top 100 (pseudo-rings, as on the sky). The median over angles kept 2 more inclined rings
but put 87 spirals in its top 100 and 11 in its top 12, ahead of every ring, and found fewer oddities in the
combined top 1 % (59 / 54 against 63 / 55); the 25th percentile without the wobble lost the clumpy rings (4 of 5,
2 of 9). As a contrast (session 9): the same rings, 22 and 16 spirals in the top 100, and the two brightest
face-on spirals of the demo survey fell from 54 and 31 decades of tail significance to 22 and 11 (the softening
1 / 3 / 10 noise units: 69 / 69 / 70 and 63 / 66 / 66 oddities in the combined top 1 %, against 69 / 66 in noise
units). ``companion`` put
12 of 13 mergers in its top 60 and 13 of 15 in its top 90, among galaxies with a neighbour of about their colour
(the colour-weighted companion alone: 12 of 13 in its top 100, behind more such pairs). ``arc`` put 10 of 11
and 11 of 12 lensed arcs in its top 30 (the rest of its top 100: spirals). Measured on seed 0 while choosing
(lenses in the top 100 of ~19,700 cutouts): the arc's own peak instead of the counter-image 0 (stars and
galaxies ahead), counter-image x fraction held 7, with a prior on the core's absolute colour 10 but a tail of
stars and discs that took the combined top 1 % (57 oddities against 66), the colour difference instead 10;
as a plain product (most cutouts 0) its tail took 70 of the top 200 (66 oddities), as ``log10`` 69.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from explorer.analysis.artefacts import noise_scaled

__all__ = ["FEATURES", "arc_statistic", "companion_statistic", "morphology_statistics", "ring_statistic"]

FEATURES = ("ring", "companion", "arc")
SMOOTH = 1.0  # px: Gaussian sigma applied to the summed noise-scaled bands
STEP = 2  # px: the ridge is compared with the light this far inside and outside
REACH = 0.4  # largest radius sampled, as a fraction of the frame's shorter side
N_ANGLES = 48
WOBBLE = 1  # px: how far the ring's ridge may stray from the sampled ellipse, at each angle
ALL_ROUND = 0.25  # the ridge must be there at this quantile of the angles: at 3 in 4 of them
RING_SOFT = 10.0  # noise units added to the light beside the ridge, the contrast's denominator
CORE, OUTER, CENTRE = 8.0, 16.0, 4.0  # px: moment radii of the two ellipse shapes; centroid window
NEAR, FAR = 3.0, 16.0  # px: the companion is looked for between these distances from the centre
APERTURE, MASK = 3.0, 5.0  # px: the companion's (and the host core's) aperture; around it and its mirror image
COLOUR_MATCH = 0.15  # mag: colour distance at which a companion's weight falls to 1/e
TAIL_COLOUR_MATCH = 0.3  # mag: the same for the asymmetric light (tidal tails form stars: a little bluer)
FLOOR = 1e-4  # added to the product of fractions before the log
ARC_NEAR, ARC_STEP, ARC_ANGLES = 4.0, 0.5, 64  # px, px: the blue-excess map's polar grid (out to FAR)
ARC_SNR = 3.0  # the counter-image must stand this many noise units above the ring's median
ARC_BOX = 2.5, 4.0  # px: radial half-height and tangential half-length of the region that counts as the arc
ARC_SIDE = 3.0  # weight exp(-ARC_SIDE x the dip beside the arc, as a fraction of its peak)
ARC_COLOUR, ARC_COLOUR_POWER = 0.8, 4  # mag: how much bluer than the core the arc must be (1 - exp(-(Δc / 0.8)^4))
ARC_FLOOR = 1e-2  # added before the log


def morphology_statistics(cutouts: Any, max_size: int = 128) -> np.ndarray:
    """``(n, 3)`` :data:`FEATURES` of ``(n, B, H, W)`` (or ``(n, H, W)``) cutouts: :func:`ring_statistic`,
    :func:`companion_statistic` and :func:`arc_statistic` from one noise scaling, smoothing and centre; NaN rows
    for blank cutouts."""
    bands, light, cx, cy, blank = _prepared(cutouts, max_size)
    about = _about_centre(bands, cx, cy)
    out = np.column_stack([_ring(light, cx, cy), _companion(bands, cx, cy, about), _arc(bands, cx, cy, about)])
    out[blank] = np.nan
    return out


def ring_statistic(cutouts: Any, max_size: int = 128) -> np.ndarray:
    """``(n,)`` ring statistic of ``(n, B, H, W)`` (or ``(n, H, W)``) cutouts: the radial ridge of light that 3 in
    4 of the angles reach at the best radius, as a contrast (module docstring); NaN for blank cutouts. Higher =
    more ring-like."""
    _, light, cx, cy, blank = _prepared(cutouts, max_size)
    out = _ring(light, cx, cy)
    out[blank] = np.nan
    return out


def companion_statistic(cutouts: Any, max_size: int = 128) -> np.ndarray:
    """``(n,)`` companion statistic (decades) of ``(n, B, H, W)`` (or ``(n, H, W)``) cutouts: ``log10`` of the
    colour-weighted companion and asymmetric-light fractions; NaN for blank cutouts. Higher = more merger-like."""
    bands, _, cx, cy, blank = _prepared(cutouts, max_size)
    out = _companion(bands, cx, cy)
    out[blank] = np.nan
    return out


def arc_statistic(cutouts: Any, max_size: int = 128) -> np.ndarray:
    """``(n,)`` arc statistic (decades) of ``(n, B, H, W)`` cutouts: a blue arc with a counter-image about a
    redder core (a strongly lensed source); NaN for blank cutouts and for one band. Higher = more lens-like."""
    bands, _, cx, cy, blank = _prepared(cutouts, max_size)
    out = _arc(bands, cx, cy)
    out[blank] = np.nan
    return out


def _prepared(cutouts: Any, max_size: int):
    """Smoothed noise-scaled bands ``(n, B, H, W)``, their sum ``(n, 1, H, W)``, its centroid, the blank mask."""
    import torch

    s, blank = noise_scaled(cutouts, max_size=max_size, compress=False)
    s = torch.from_numpy(s)
    bands = _smoothed(s.reshape(-1, 1, *s.shape[-2:]), SMOOTH).reshape(s.shape)
    light = bands.sum(dim=1, keepdim=True)
    cx, cy = _centroid(light, CENTRE)
    return bands, light, cx, cy, blank


def _ring(light, cx, cy) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    shapes = (_shape(light, cx, cy, CORE, compress=False), _shape(light, cx, cy, OUTER, compress=True),
              (torch.ones_like(cx), torch.zeros_like(cx)))
    radii = torch.arange(2.0, max(REACH * min(light.shape[-2:]), 2.0 + 2 * STEP + 1))
    best = torch.full_like(cx, -math.inf)
    theta = torch.arange(N_ANGLES, dtype=torch.float32) * (2 * math.pi / N_ANGLES)
    index = torch.arange(len(radii))[None, :, None]
    for q, pa in shapes:
        profile = _polar(light, cx, cy, q, pa, radii, theta)  # (n, radii, angles)
        # STEP px along each ray: more steps of the ellipse's semi-major axis where the ray is foreshortened
        pixels_per_step = torch.sqrt(torch.cos(theta) ** 2 + (q[:, None] * torch.sin(theta)) ** 2)
        offset = torch.round(STEP / pixels_per_step).clamp(1, len(radii)).long()[:, None, :]  # (n, 1, angles)
        inner, outer = index - offset, index + offset
        valid = (inner >= 0) & (outer < len(radii))
        side = torch.maximum(profile.gather(1, inner.clamp(0, len(radii) - 1).expand_as(profile)),
                             profile.gather(1, outer.clamp(0, len(radii) - 1).expand_as(profile)))
        # as a contrast: over the light beside it plus RING_SOFT noise units (a bright spiral's arms are strong
        # ridges in noise units but weak against the disc they sit on)
        ridge = torch.where(valid, (profile - side) / (side.clamp_min(0) + RING_SOFT), torch.full_like(profile, -math.inf))
        # the ring may wander by WOBBLE px from the ellipse (a clump, an inclination the moments missed)
        ridge = F.max_pool1d(ridge.transpose(1, 2).reshape(-1, 1, len(radii)), 2 * WOBBLE + 1, 1, WOBBLE)
        ridge = ridge.reshape(len(cx), N_ANGLES, len(radii)).transpose(1, 2)
        ridge = torch.nan_to_num(ridge, neginf=float("nan"))
        level = torch.nanquantile(ridge, ALL_ROUND, dim=-1)  # (n, radii)
        best = torch.maximum(best, torch.nan_to_num(level, nan=-math.inf).amax(dim=-1))
    return best.numpy().astype(np.float64)


def _companion(bands, cx, cy, about=None) -> np.ndarray:
    import torch

    n, _, _, w = bands.shape
    xx, yy, dist, core = _about_centre(bands, cx, cy) if about is None else about
    residual = bands - _sample(bands, 2 * cx[:, None, None] - xx, 2 * cy[:, None, None] - yy)  # minus its mirror
    total = residual.sum(dim=1)
    search = torch.where((dist >= NEAR) & (dist <= FAR), total, torch.full_like(total, -math.inf))
    peak = search.reshape(n, -1).argmax(dim=1)
    px, py = (peak % w).float(), (peak // w).float()

    def within(x0, y0, r):
        return ((xx - x0[:, None, None]) ** 2 + (yy - y0[:, None, None]) ** 2) < r**2

    positive = residual.clamp_min(0)
    companion = (positive * within(px, py, APERTURE)[:, None]).sum(dim=(2, 3))
    elsewhere = (dist >= 2) & (dist < FAR) & ~within(px, py, MASK) & ~within(2 * cx - px, 2 * cy - py, MASK)
    spread = (positive * elsewhere[:, None]).sum(dim=(2, 3))
    host = core.sum(dim=1).clamp_min(1.0)
    pair = companion.sum(dim=1) / host
    pair = torch.minimum(pair, 1.0 / pair.clamp_min(1e-12))  # the fainter of the two over the brighter
    product = (pair * _colour_weight(companion, core)
               * spread.sum(dim=1) / host * _colour_weight(spread, core, TAIL_COLOUR_MATCH))
    return torch.log10(product + FLOOR).numpy().astype(np.float64)


def _arc(bands, cx, cy, about=None) -> np.ndarray:
    import torch

    n = bands.shape[0]
    far = min(FAR, REACH * min(bands.shape[-2:]))  # circles inside the frame (the rest would read as 0)
    if bands.shape[1] < 2 or far < ARC_NEAR + 2:
        return np.full(n, np.nan)
    core = (_about_centre(bands, cx, cy) if about is None else about)[3]
    half = bands.shape[1] // 2  # the bluer and the redder half of the bands (g and i of g, r, i; u+g, i+z of ugriz)
    bands = torch.stack([bands[:, :half].sum(dim=1), bands[:, -half:].sum(dim=1)], dim=1)  # (n, 2, H, W)
    core = torch.stack([core[:, :half].sum(dim=1), core[:, -half:].sum(dim=1)], dim=1).clamp_min(1e-3)  # (n, 2)
    # what the blue half holds beyond the core's colour: the host (one colour) cancels, a bluer arc remains
    excess = bands[:, :1] - (core[:, 0] / core[:, 1]).clamp(0, 1e3)[:, None, None, None] * bands[:, 1:]
    radii = torch.arange(ARC_NEAR, far + 1, ARC_STEP)
    theta = torch.arange(ARC_ANGLES, dtype=torch.float32) * (2 * math.pi / ARC_ANGLES)
    circle = (torch.ones_like(cx), torch.zeros_like(cx))
    polar = _polar(excess, cx, cy, *circle, radii, theta)
    polar = polar - polar.median(dim=2, keepdim=True).values  # what is not round (a colour gradient, the PSFs)
    noise = 1.4826 * polar.abs().reshape(n, -1).median(dim=1).values.clamp_min(1e-6)
    peak, where = polar.reshape(n, -1).max(dim=1)
    ri, ai = where // ARC_ANGLES, where % ARC_ANGLES
    rows = torch.arange(n)

    def around(turn, dr, da, reduce):
        """``reduce`` of the map within ``dr`` radius steps and ``da`` angle steps of the peak turned by ``turn``."""
        cells = [polar[rows, (ri + i).clamp(0, len(radii) - 1), (ai + turn + j) % ARC_ANGLES]
                 for i in range(-dr, dr + 1) for j in range(-da, da + 1)]
        return reduce(torch.stack(cells), dim=0).values

    half, quarter = ARC_ANGLES // 2, ARC_ANGLES // 4
    counter = around(half, 2, 3, torch.max)  # the counter-image, opposite the arc
    side = torch.minimum(around(quarter, 0, 2, torch.min), around(-quarter, 0, 2, torch.min))
    dip = (-side).clamp_min(0) / peak.clamp_min(1e-6)  # a quadrupole (an inclined disc's colour) dips here
    r, a = radii[None, :, None], theta[None, None, :]
    turn = torch.remainder(a - theta[ai][:, None, None] + math.pi, 2 * math.pi) - math.pi
    box = ((r - radii[ri][:, None, None]).abs() <= ARC_BOX[0]) & ((r * turn).abs() <= ARC_BOX[1])
    positive = polar.clamp_min(0) * r
    held = (positive * box).sum(dim=(1, 2)) / positive.sum(dim=(1, 2)).clamp_min(1e-12)
    at = _sample(bands, (cx + radii[ri] * torch.cos(theta[ai]))[:, None, None],
                 (cy + radii[ri] * torch.sin(theta[ai]))[:, None, None])[:, :, 0, 0].clamp_min(1e-3)
    bluer = (_colour(core[:, :1], core[:, 1:]) - _colour(at[:, :1], at[:, 1:]))[:, 0].clamp_min(0)
    value = ((counter / noise - ARC_SNR).clamp_min(0) * held * torch.exp(-ARC_SIDE * dip)
             * (1 - torch.exp(-((bluer / ARC_COLOUR) ** ARC_COLOUR_POWER))))
    return torch.log10(value + ARC_FLOOR).numpy().astype(np.float64)


def _about_centre(bands, cx, cy):
    """``(xx, yy, dist, core)``: the pixel grid, each pixel's distance from ``(cx, cy)`` and the light of each
    band within :data:`APERTURE` px of it ``(n, B)``."""
    import torch

    yy, xx = _grid(bands)
    dist = torch.sqrt((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2)
    return xx, yy, dist, (bands * (dist < APERTURE)[:, None]).sum(dim=(2, 3))


def _colour(flux, reference):
    """``-2.5 log10(flux / reference)`` (mag), elementwise."""
    import torch

    return -2.5 * torch.log10(flux / reference)


def _colour_weight(flux, reference, width: float = COLOUR_MATCH):
    """``exp(-(Δc / width)^2)``: ``Δc`` the distance between the adjacent-band colours (mag) of ``flux`` and
    ``reference`` ``(n, B)``; 1 with one band (no colour to compare)."""
    import torch

    if flux.shape[1] < 2:
        return torch.ones(flux.shape[0])
    f, r = flux.clamp_min(1e-3), reference.clamp_min(1e-3)
    delta = torch.sqrt(((_colour(f[:, :-1], f[:, 1:]) - _colour(r[:, :-1], r[:, 1:])) ** 2).sum(dim=1))
    return torch.exp(-((delta / width) ** 2))


def _smoothed(img, sigma: float):
    """``(n, 1, H, W)`` convolved with a Gaussian of ``sigma`` px (separable, zero padding)."""
    import torch
    import torch.nn.functional as F

    half = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-half, half + 1, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    img = F.conv2d(img, k.view(1, 1, 1, -1), padding=(0, half))
    return F.conv2d(img, k.view(1, 1, -1, 1), padding=(half, 0))


def _grid(img):
    import torch

    h, w = img.shape[-2:]
    return torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")


def _centroid(img, radius: float, iterations: int = 3):
    """Light-weighted centroid (positive light only) within ``radius`` px, starting at the frame's centre and
    re-centred ``iterations`` times (a window that cuts an off-centre source pulls its centroid inwards); the
    frame's centre where there is no positive light."""
    import torch

    yy, xx = _grid(img)
    h, w = img.shape[-2:]
    light = img[:, 0].clamp_min(0)
    cx = torch.full((img.shape[0],), (w - 1) / 2)
    cy = torch.full((img.shape[0],), (h - 1) / 2)
    for _ in range(iterations):
        wgt = light * (((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) < radius**2)
        total = wgt.sum(dim=(1, 2))
        empty = total <= 0
        cx = torch.where(empty, cx, (wgt * xx).sum(dim=(1, 2)) / total.clamp_min(1e-12))
        cy = torch.where(empty, cy, (wgt * yy).sum(dim=(1, 2)) / total.clamp_min(1e-12))
    return cx, cy


def _shape(img, cx, cy, radius: float, compress: bool):
    """Axis ratio (floored at 0.3) and position angle from the second moments of the positive light within
    ``radius`` px of ``(cx, cy)``; ``compress`` weights by ``asinh(S/3)`` instead of ``S``."""
    import torch

    yy, xx = _grid(img)
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    light = img[:, 0].clamp_min(0)
    wgt = (torch.asinh(light / 3) if compress else light) * ((dx**2 + dy**2) < radius**2)
    total = wgt.sum(dim=(1, 2)).clamp_min(1e-12)
    mxx, myy, mxy = ((wgt * m).sum(dim=(1, 2)) / total for m in (dx * dx, dy * dy, dx * dy))
    half_trace = (mxx + myy) / 2
    spread = (half_trace**2 - (mxx * myy - mxy**2)).clamp_min(0).sqrt()
    q = ((half_trace - spread).clamp_min(1e-12) / (half_trace + spread).clamp_min(1e-12)).sqrt().clamp(0.3, 1.0)
    return q, 0.5 * torch.atan2(2 * mxy, mxx - myy)


def _polar(img, cx, cy, q, pa, radii, theta):
    """``(n, len(radii), len(theta))`` bilinear samples of ``img`` on ellipses (semi-major axes ``radii``, axis
    ratio ``q``, position angle ``pa``) about ``(cx, cy)``, at angles ``theta``; outside the frame counts as 0."""
    import torch

    u = radii[None, :, None] * torch.cos(theta)[None, None, :]
    v = radii[None, :, None] * torch.sin(theta)[None, None, :] * q[:, None, None]
    c, s = torch.cos(pa)[:, None, None], torch.sin(pa)[:, None, None]
    return _sample(img, cx[:, None, None] + u * c - v * s, cy[:, None, None] + u * s + v * c)[:, 0]


def _sample(img, x, y):
    """``img`` ``(n, C, H, W)`` bilinearly sampled at pixel coordinates ``x``, ``y`` ``(n, h, w)`` (pixel centres
    at integers); outside the frame counts as 0. Returns ``(n, C, h, w)``."""
    import torch
    import torch.nn.functional as F

    h, w = img.shape[-2:]
    grid = torch.stack([(x + 0.5) / w * 2 - 1, (y + 0.5) / h * 2 - 1], dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
