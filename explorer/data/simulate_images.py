"""Cutouts of the simulated survey: Sérsic galaxies with bulges, arms, rings and arcs, stars, neighbours, PSF and noise.

Each cutout is rendered from its catalogue row alone (see :mod:`explorer.data.simulate`), vectorised over a
batch of objects on a ``(batch, H, W)`` grid:

1. extended light (Sérsic components, spiral arms, ring / arc / tidal tail, satellite trail) is sampled at
   pixel centres on a grid padded by :data:`PAD` pixels and blurred by the PSF core (a circular Gaussian per
   band, separable) as Toeplitz matrix products, ``K @ image @ K.T``, which beat FFTs at these sizes;
2. point-like sources (the central star, neighbour stars, small Gaussian neighbour galaxies, and the light of
   each Sérsic cusp that pixel-centre sampling misses) are added analytically with the full PSF, a Gaussian
   core plus a 2.5x wider Gaussian wing holding ``p_psf_wing`` of the flux, exact at any sub-pixel position;
3. noise: the sky level and the source add Poisson noise (a Gaussian of variance ``flux / GAIN``) plus read
   noise; the cutouts are sky-subtracted, in nanomaggies per pixel, with a small residual sky pedestal;
4. artefacts: hot pixels and cosmic-ray tracks are added after the noise, unblurred.

Noise is drawn from a fixed bank of Gaussian numbers (built once per process): each object and band sums two
windows of the bank at offsets hashed from the row's ``p_key`` and the render seed. This gives every object its
own noise, identical whether rendered alone or in a batch, at a fraction of the cost of a generator per object.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

from explorer.data.simulate import IMAGE_BANDS, ZEROPOINT, hash_normal, hash_uniform, mix64, seed_salt
from explorer.errors import DataError

GAIN = np.array([1500.0, 1800.0, 1600.0], dtype=np.float32)  # counts per nanomaggy in g, r, i
READ_NOISE = 0.004  # nanomaggies per pixel
PAD = 4  # extra pixels around the cutout where extended light is sampled before the blur
WING_SCALE = 2.5  # PSF wing sigma / core sigma
BATCH = 64  # objects rendered together (arrays of BATCH x 3 x 72 x 72 stay in cache)
MAX_NEIGHBOURS = 6
_EPS2 = 0.1  # squared softening (px^2) of the Sérsic cusp at the centre
_CUSP = 2.0  # semi-major axis (px) inside which the flux missed by pixel sampling is restored
_BANK_SIZE = 1 << 22

IMAGE_COLUMNS = tuple(
    (
        "p_key p_fwhm_g p_fwhm_r p_fwhm_i p_psf_wing p_sky_g p_sky_r p_sky_i p_n_nb "
        "p_gal_x p_gal_y p_gal_n p_gal_re p_gal_q p_gal_pa p_gal_mag_g p_gal_mag_r p_gal_mag_i "
        "p_s2_x p_s2_y p_s2_n p_s2_re p_s2_q p_s2_pa p_s2_mag_g p_s2_mag_r p_s2_mag_i "
        "p_arm_m p_arm_pitch p_arm_phase p_arm_sharp p_arm_frac_g p_arm_frac_r p_arm_frac_i "
        "p_arc_r p_arc_w p_arc_theta p_arc_len p_arc_curl p_arc_q p_arc_counter p_arc_clump p_arc_m "
        "p_arc_mag_g p_arc_mag_r p_arc_mag_i p_star_x p_star_y p_star_mag_g p_star_mag_r p_star_mag_i "
        "p_art_kind p_art_band p_art_n p_art_amp p_art_angle p_art_offset p_art_width"
    ).split()
)


def render_cutouts(params: pd.DataFrame, seed: int = 0, size: int = 64) -> np.ndarray:
    """Render g, r, i cutouts of simulated objects from their catalogue rows.

    Parameters
    ----------
    params : pandas.DataFrame
        Rows of :func:`explorer.data.simulate.simulate_parameters`, all with ``has_image``.
    seed : int
        Noise realisation: the same object and seed give the same pixels, alone or in any batch.
    size : int
        Cutout side in pixels (at :data:`explorer.data.simulate.PIXEL_SCALE`); the scene does not scale.

    Returns
    -------
    numpy.ndarray
        ``(len(params), 3, size, size)`` float32, bands in :data:`IMAGE_BANDS` order, sky-subtracted
        nanomaggies per pixel.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 8:
        raise DataError(f"size={size!r} must be an integer of at least 8 pixels")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed={seed!r} must be a non-negative integer")
    missing = [c for c in ("id", "has_image", *IMAGE_COLUMNS) if c not in params.columns]
    if missing:
        raise DataError(f"params lack the columns {missing}; pass rows of simulate_parameters()")
    has = params["has_image"].to_numpy(dtype=bool)
    if not has.all():
        bad = params["id"].iloc[int(np.flatnonzero(~has)[0])]
        raise DataError(
            f"object {bad} has no image (has_image=False; {int((~has).sum())} such rows); "
            "render only params[params.has_image]"
        )
    cols = {c: params[c].to_numpy() for c in IMAGE_COLUMNS}
    cols["p_key"] = cols["p_key"].astype(np.int64).view(np.uint64)
    for c in IMAGE_COLUMNS[1:]:
        cols[c] = cols[c].astype(np.float32)
    size = int(size)
    out = np.zeros((len(params), 3, size, size), dtype=np.float32)
    for a in range(0, len(params), BATCH):
        batch = {c: v[a : a + BATCH] for c, v in cols.items()}
        _render_batch(batch, int(seed), size, out[a : a + BATCH])
    return out


def _band_columns(p: dict, prefix: str, rows=slice(None)) -> np.ndarray:
    """The ``(n, 3)`` float32 values of ``prefix_g``, ``prefix_r``, ``prefix_i``."""
    return np.stack([p[f"{prefix}_{b}"][rows] for b in IMAGE_BANDS], axis=1).astype(np.float32)


def _flux(mag: np.ndarray) -> np.ndarray:
    return np.power(np.float32(10.0), np.float32(-0.4) * (mag - np.float32(ZEROPOINT)))


def _sky_sigma(p: dict) -> np.ndarray:
    """Sky noise per pixel ``(n, 3)``."""
    return np.sqrt(_band_columns(p, "p_sky") / GAIN)


def _render_batch(p: dict, seed: int, size: int, out: np.ndarray) -> None:
    """Render one batch of rows ``p`` (dict of column arrays) into ``out`` (zeros, ``(n, 3, size, size)``)."""
    trail = p["p_art_kind"] == 1
    extended = np.isfinite(p["p_gal_re"]) | np.isfinite(p["p_s2_re"]) | np.isfinite(p["p_arc_r"]) | trail
    rows = np.flatnonzero(extended)
    cusp_pos, cusp_flux = np.zeros((len(out), 2, 2)), np.zeros((len(out), 2, 3))
    if len(rows):
        sub = {c: v[rows] for c, v in p.items()}
        light, cusp_pos[rows], cusp_flux[rows] = _extended_light(sub, size)
        out[rows] = _blur(light, _band_columns(sub, "p_fwhm"), size)  # out is still zero here
    _add_point_sources(out, p, size, cusp_pos, cusp_flux)
    _add_noise(out, p, seed, size)
    _add_hot_pixels(out, p, size)


# --- extended light ----------------------------------------------------------------------------------------


def _grid(size: int) -> np.ndarray:
    """Pixel-centre coordinates of the padded grid, relative to the cutout centre."""
    return np.arange(size + 2 * PAD, dtype=np.float32) - np.float32(PAD + (size - 1) / 2)


def _offsets(x0, y0, size):
    g = _grid(size)
    return g[None, None, :] - x0[:, None, None], g[None, :, None] - y0[:, None, None]


def _extended_light(p: dict, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(n, 3, P, P)`` unblurred extended light of rows that have some, and their Sérsic cusps.

    Unit-flux components (main Sérsic, its arm pattern, second Sérsic, arc, trail) are stacked as
    ``(n, 5, P, P)`` and mixed into the bands by one batched matrix product with their ``(n, 3, 5)`` fluxes.
    The light of each Sérsic cusp that pixel-centre sampling misses is returned as point sources: positions
    ``(n, 2, 2)`` and fluxes ``(n, 2, 3)``.
    """
    n, side = len(p["p_key"]), size + 2 * PAD
    stack = np.zeros((n, 5, side, side), dtype=np.float32)
    weight = np.zeros((n, 3, 5), dtype=np.float32)
    cusp_pos, cusp_flux = np.zeros((n, 2, 2)), np.zeros((n, 2, 3))
    for slot, prefix in ((0, "p_gal"), (2, "p_s2")):
        rows = np.flatnonzero(np.isfinite(p[f"{prefix}_re"]))
        if len(rows) == 0:
            continue
        args = [p[f"{prefix}_{f}"][rows] for f in ("x", "y", "n", "re", "q", "pa")]
        stack[rows, slot], missing = _sersic(*args, size)
        weight[rows, :, slot] = _flux(_band_columns(p, f"{prefix}_mag", rows))
        cusp_pos[rows, slot // 2] = np.stack(args[:2], axis=1)
        cusp_flux[rows, slot // 2] = weight[rows, :, slot] * missing[:, None]
    rows = np.flatnonzero(p["p_arm_m"] > 0)
    if len(rows):
        stack[rows, 1] = stack[rows, 0] * _arm_pattern(p, rows, size)
        weight[rows, :, 1] = weight[rows, :, 0] * _band_columns(p, "p_arm_frac", rows)
    rows = np.flatnonzero(np.isfinite(p["p_arc_r"]))
    if len(rows):
        stack[rows, 3] = _arc(p, rows, size)
        weight[rows, :, 3] = _flux(_band_columns(p, "p_arc_mag", rows))
    rows = np.flatnonzero(p["p_art_kind"] == 1)
    if len(rows):
        stack[rows, 4], weight[rows, :, 4] = _trail(p, rows, size)
    return (weight @ stack.reshape(n, 5, side * side)).reshape(n, 3, side, side), cusp_pos, cusp_flux


def _sersic(x0, y0, n, re, q, pa, size) -> tuple[np.ndarray, np.ndarray]:
    """Unit-flux Sérsic profiles ``(k, P, P)`` (re along the major axis, cusp softened by ``_EPS2``).

    Also returns the flux fraction ``(k,)`` that sampling at pixel centres misses inside the ellipse of
    semi-major axis ``_CUSP`` px (analytic enclosed flux minus the pixel sum there), to be added as a point.
    """
    n64, re64 = n.astype(np.float64), re.astype(np.float64)
    bn = (
        2.0 * n64 - 1.0 / 3.0 + 4.0 / (405.0 * n64) + 46.0 / (25515.0 * n64**2) + 131.0 / (1148175.0 * n64**3)
    )
    log_norm = -np.log(2.0 * np.pi * n64 * q * re64**2) + 2.0 * n64 * np.log(bn) - special.gammaln(2.0 * n64)
    coefficients = _ellipse(q, pa, re)
    z = _radius2(*_offsets(x0, y0, size), *coefficients)  # (r / re)^2
    _sersic_from_radius2(z, n, bn, log_norm)
    # the cusp: the same profile on the 8 x 8 pixels around the centre, where the ellipse r < _CUSP lies
    g = _grid(size)
    first = (
        np.clip(np.searchsorted(g, x0) - 4, 0, len(g) - 8),
        np.clip(np.searchsorted(g, y0) - 4, 0, len(g) - 8),
    )
    box = first[0][:, None] + np.arange(8), first[1][:, None] + np.arange(8)
    near = _radius2(
        g[box[0]][:, None, :] - x0[:, None, None], g[box[1]][:, :, None] - y0[:, None, None], *coefficients
    )
    inner = near < (_CUSP**2 / re**2)[:, None, None]
    _sersic_from_radius2(near, n, bn, log_norm)
    enclosed = special.gammainc(2.0 * n64, bn * (_CUSP / re64) ** (1.0 / n64))
    return z, np.maximum(enclosed - np.sum(near * inner, axis=(1, 2), dtype=np.float64), 0.0)


def _ellipse(q, pa, re) -> tuple[np.ndarray, ...]:
    """Coefficients ``a, b, c, eps`` with ``(r / re)^2 = a dx^2 + b dx dy + c dy^2 + eps`` (softened)."""
    c, s = np.cos(pa), np.sin(pa)
    inv_q2, inv_re2 = 1.0 / q**2, 1.0 / re**2
    a = (c**2 + s**2 * inv_q2) * inv_re2
    cc = (s**2 + c**2 * inv_q2) * inv_re2
    b = 2.0 * c * s * (1.0 - inv_q2) * inv_re2
    return tuple(v.astype(np.float32)[:, None, None] for v in (a, b, cc, _EPS2 * inv_re2))


def _radius2(dx, dy, a, b, c, eps) -> np.ndarray:
    z = dx * dy
    z *= b
    z += a * dx**2
    z += c * dy**2 + eps
    return z


def _sersic_from_radius2(z, n, bn, log_norm) -> None:
    """Turn ``(r / re)^2`` into the unit-flux Sérsic surface brightness, in place."""
    np.power(z, (0.5 / n).astype(np.float32)[:, None, None], out=z)  # (r / re)^(1 / n)
    z *= (-bn).astype(np.float32)[:, None, None]
    z += log_norm.astype(np.float32)[:, None, None]  # log_norm = ln I_e + b_n
    _exp(z)


def _disc_coordinates(x0, y0, q, pa, size):
    """Radius squared and angle in the plane of an inclined disc (``(k, P, P)`` each)."""
    dx, dy = _offsets(x0, y0, size)
    c, s = np.cos(pa)[:, None, None], np.sin(pa)[:, None, None]
    u = dx * c + dy * s
    w = (dy * c - dx * s) / q[:, None, None]
    return u * u + w * w + np.float32(_EPS2), np.arctan2(w, u)


def _arm_pattern(p: dict, rows: np.ndarray, size: int) -> np.ndarray:
    """Flux-conserving logarithmic-spiral modulation ``M`` (mean 0 around each ellipse) of disc light."""
    get = {f: p[f"p_gal_{f}"][rows] for f in ("x", "y", "q", "pa", "re")}
    r2, theta = _disc_coordinates(get["x"], get["y"], get["q"], get["pa"], size)
    m = p["p_arm_m"][rows].astype(np.float32)
    wind = (0.5 * m / np.tan(np.radians(p["p_arm_pitch"][rows]))).astype(np.float32)[:, None, None]
    arg = m[:, None, None] * theta
    arg -= wind * np.log(r2)
    arg -= (m * p["p_arm_phase"][rows])[:, None, None]
    shape = np.cos(arg)
    shape += 1.0
    shape *= 0.5
    k = p["p_arm_sharp"][rows].astype(np.float64)
    mean = np.exp(special.gammaln(k + 0.5) - special.gammaln(k + 1.0)) / np.sqrt(np.pi)
    np.power(shape, k.astype(np.float32)[:, None, None], out=shape)
    shape *= (1.0 / mean).astype(np.float32)[:, None, None]
    shape -= 1.0
    taper = 1.0 - _exp(-r2 / ((0.6 * get["re"]) ** 2)[:, None, None])
    return shape * taper


def _arc(p: dict, rows: np.ndarray, size: int) -> np.ndarray:
    """Unit-flux rings, lensed arcs (with a counter-image) and tidal tails ``(k, P, P)``."""
    get = {
        f: p[f"p_arc_{f}"][rows].astype(np.float32)
        for f in ("r", "w", "theta", "len", "curl", "q", "counter", "clump", "m")
    }
    r2, theta = _disc_coordinates(p["p_gal_x"][rows], p["p_gal_y"][rows], get["q"], p["p_gal_pa"][rows], size)
    radius = np.sqrt(r2)
    full = get["len"] >= 2 * np.pi
    spread = np.where(full, 1e3, get["len"] / 4.0).astype(np.float32)

    def one(sel, centre, sigma):
        dtheta = np.mod(theta[sel] - centre[:, None, None] + np.pi, 2 * np.pi) - np.pi
        grow = np.exp(get["curl"][sel, None, None] * dtheta)
        ridge = (radius[sel] - get["r"][sel, None, None] * grow) / (get["w"][sel, None, None] * grow)
        light = _exp(-0.5 * ridge**2 - 0.5 * (dtheta / sigma[:, None, None]) ** 2)
        light *= 1.0 + get["clump"][sel, None, None] * np.cos(get["m"][sel, None, None] * dtheta)
        return light / np.maximum(light.sum(axis=(1, 2), keepdims=True), 1e-30)

    light = one(slice(None), get["theta"], spread)
    counter = np.flatnonzero(get["counter"] > 0)
    if len(counter):
        extra = one(counter, get["theta"][counter] + np.float32(np.pi), spread[counter] / 2)
        c = get["counter"][counter][:, None, None]
        light[counter] = (light[counter] + c * extra) / (1.0 + c)
    return light


def _trail(p: dict, rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A satellite trail: a thin straight line across the frame in one band; profile and band weights."""
    g = _grid(size)
    angle, offset = p["p_art_angle"][rows], p["p_art_offset"][rows]
    dist = g[None, None, :] * np.cos(angle)[:, None, None] + g[None, :, None] * np.sin(angle)[:, None, None]
    dist -= offset[:, None, None]
    band = p["p_art_band"][rows].astype(np.int64)
    weight = np.zeros((len(rows), 3), dtype=np.float32)
    weight[np.arange(len(rows)), band] = p["p_art_amp"][rows] * _sky_sigma(p)[rows, band]
    return _exp(-0.5 * (dist / p["p_art_width"][rows][:, None, None]) ** 2), weight


# --- PSF ----------------------------------------------------------------------------------------------------


def _exp(z: np.ndarray) -> np.ndarray:
    """``exp(z) - exp(-30)`` in place, floored at 0.

    Exact zeros instead of tiny values: subnormal floats in the matrix products would slow them 10-100x.
    """
    np.maximum(z, np.float32(-30.0), out=z)
    np.exp(z, out=z)
    z -= np.float32(np.exp(-30.0))
    return z


def _gauss(d: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return _exp(-0.5 * (d / sigma) ** 2) / (np.float32(np.sqrt(2 * np.pi)) * sigma)


def _psf_sigmas(fwhm: np.ndarray, extra: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Core and wing sigmas (px) of the PSF convolved with a Gaussian of sigma ``extra`` and the pixel."""
    core2 = (fwhm / np.float32(2.3548)) ** 2
    base = extra**2 + np.float32(1 / 12)
    return np.sqrt(core2 + base), np.sqrt(WING_SCALE**2 * core2 + base)


def _blur_matrix(fwhm: np.ndarray, size: int) -> np.ndarray:
    """``(k, 3, size, P)`` matrices K with ``K @ padded @ K.T`` = the padded image blurred and cropped."""
    side = size + 2 * PAD
    d = np.arange(-(side - 1), side, dtype=np.float32)
    kernel = _gauss(d, _psf_sigmas(fwhm[..., None])[0])  # symmetric: K[i, j] = kernel[P - 1 - PAD - i + j]
    windows = sliding_window_view(kernel, side, axis=-1)  # windows[s] = kernel[s : s + P]
    return np.ascontiguousarray(windows[..., side - 1 - PAD : PAD - 1 if PAD else None : -1, :])


def _blur(light: np.ndarray, fwhm: np.ndarray, size: int) -> np.ndarray:
    """Blur ``(k, 3, P, P)`` light by each row's PSF core and crop it to ``(k, 3, size, size)``.

    A Gaussian is the only circular separable kernel, so extended light skips the faint wing (it shows only
    around bright point sources, which get the full PSF in :func:`_add_point_sources`).
    """
    k = _blur_matrix(fwhm, size)
    return k @ (light @ np.ascontiguousarray(np.swapaxes(k, -1, -2)))


# --- point sources -------------------------------------------------------------------------------------------


def _neighbours(p: dict, size: int) -> tuple[np.ndarray, ...]:
    """Hashed neighbour stars and galaxies: positions ``(n, K, 2)``, fluxes ``(n, K, 3)``, sizes ``(n, K, 2)``."""
    k = MAX_NEIGHBOURS
    u = hash_uniform(p["p_key"][:, None], 100 + np.arange(8 * k)).reshape(-1, k, 8)
    star = u[..., 0] < 0.55
    half = size / 2 + PAD
    x, y = (2 * u[..., 1] - 1) * half, (2 * u[..., 2] - 1) * half
    x = np.where((np.abs(x) < 5) & (np.abs(y) < 5), x + np.sign(x) * 10.0, x)  # keep the centre clear
    lo, hi = np.where(star, 16.0, 18.0), 23.0
    alpha = np.where(star, 0.3, 0.35) * np.log(10.0)
    mag_r = lo + np.log1p(u[..., 3] * np.expm1(alpha * (hi - lo))) / alpha
    gr = np.where(star, 0.2 + 1.3 * u[..., 4], 0.4 + 0.7 * u[..., 4])
    ri = np.where(star, 0.38 * gr - 0.05, 0.3 * gr + 0.05)
    present = np.arange(k) < p["p_n_nb"][:, None]
    flux = (
        10.0 ** (-0.4 * (np.stack([mag_r + gr, mag_r, mag_r - ri], axis=-1) - ZEROPOINT)) * present[..., None]
    )
    sig = np.where(star[..., None], 0.0, 0.6 + 2.4 * u[..., 5:7])
    return np.stack([x, y], axis=-1), flux, sig


def _add_point_sources(
    out: np.ndarray, p: dict, size: int, cusp_pos: np.ndarray, cusp_flux: np.ndarray
) -> None:
    """Add the central star, the neighbours and the Sérsic cusps as PSF-convolved Gaussians, exactly.

    The PSF is ``(1 - wing)`` of a circular Gaussian core plus ``wing`` of a 2.5x wider circular Gaussian,
    each separable: two rank-1 terms per source and band.
    """
    n = len(out)
    pos, flux, sig = _neighbours(p, size)
    star = np.isfinite(p["p_star_mag_r"])
    star_flux = np.where(star[:, None], _flux(np.nan_to_num(_band_columns(p, "p_star_mag"), nan=99.0)), 0.0)
    star_pos = np.nan_to_num(np.stack([p["p_star_x"], p["p_star_y"]], 1))[:, None]
    pos = np.concatenate([star_pos, cusp_pos, pos], axis=1).astype(np.float32)  # (n, S, 2)
    flux = np.concatenate([star_flux[:, None], cusp_flux, flux], axis=1).astype(np.float32)  # (n, S, 3)
    sig = np.concatenate([np.zeros((n, 1 + cusp_pos.shape[1], 2)), sig], axis=1).astype(np.float32)
    coords = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    fwhm = _band_columns(p, "p_fwhm")[:, :, None, None]  # (n, 3, 1, 1)
    wing = p["p_psf_wing"].astype(np.float32)[:, None, None, None]
    cx, wx = _psf_sigmas(fwhm, sig[:, None, :, 0, None])  # (n, 3, S, 1)
    cy, wy = _psf_sigmas(fwhm, sig[:, None, :, 1, None])
    dx, dy = coords - pos[:, None, :, 0, None], coords - pos[:, None, :, 1, None]  # (n, 1, S, size)
    gx = np.concatenate([_gauss(dx, cx), _gauss(dx, wx)], axis=2)  # (n, 3, 2S, size)
    gy = np.concatenate([_gauss(dy, cy) * (1.0 - wing), _gauss(dy, wy) * wing], axis=2)
    gy *= np.tile(np.swapaxes(flux, 1, 2), 2)[..., None]
    out += np.swapaxes(gy, -1, -2) @ gx


# --- noise and artefacts ----------------------------------------------------------------------------------------


@functools.cache
def _noise_bank() -> np.ndarray:
    """A fixed bank of standard-normal float32 numbers shared by all renders."""
    return np.random.Generator(np.random.SFC64(0x5EED_C0DE)).standard_normal(_BANK_SIZE, dtype=np.float32)


def _add_noise(out: np.ndarray, p: dict, seed: int, size: int) -> None:
    """Add sky + source Poisson noise, read noise and a residual sky pedestal, per object and band."""
    n, area = len(out), size * size
    bank = _noise_bank()
    windows = sliding_window_view(bank, area)
    count = len(windows)
    if count <= 3 * area:
        raise DataError(f"size={size} is too large for the noise bank; use cutouts of at most 1024 pixels")
    key = mix64(p["p_key"] ^ seed_salt(seed, 1))
    sky = _band_columns(p, "p_sky")
    sigma_sky = np.sqrt(sky / GAIN)
    for band in range(3):
        first = np.floor(hash_uniform(key, 10 + band) * count).astype(np.int64)
        second = (
            first + area + np.floor(hash_uniform(key, 20 + band) * (count - 2 * area)).astype(np.int64)
        ) % count
        noise = windows[first]
        noise += windows[second]  # a sum of two normals: the 1/2 of its variance is folded into sigma below
        image = out[:, band]
        sigma = np.maximum(image, 0.0).reshape(n, area)
        sigma *= np.float32(0.5 / GAIN[band])
        sigma += (0.5 * (sky[:, band] / GAIN[band] + READ_NOISE**2)).astype(np.float32)[:, None]
        np.sqrt(sigma, out=sigma)
        sigma *= noise
        sigma += (0.1 * hash_normal(key, 30 + band) * sigma_sky[:, band]).astype(np.float32)[
            :, None
        ]  # pedestal
        image += sigma.reshape(n, size, size)


def _add_hot_pixels(out: np.ndarray, p: dict, size: int) -> None:
    """Hot pixels and cosmic-ray tracks (1-4 px, one band each), sharper than any PSF."""
    rows = np.flatnonzero(p["p_art_kind"] == 2)
    if len(rows) == 0:
        return
    key, hits = p["p_key"][rows], p["p_art_n"][rows]
    sigma = _sky_sigma({c: v[rows] for c, v in p.items() if c.startswith("p_sky")})
    steps = np.array([[1, 0], [0, 1], [1, 1], [1, -1]])
    for k in range(int(hits.max())):
        u = [hash_uniform(key, 300 + 8 * k + f) for f in range(6)]
        band = np.minimum((3 * u[0]).astype(np.int64), 2)
        x, y = (size * u[1]).astype(np.int64), (size * u[2]).astype(np.int64)
        length = 1 + (4 * u[3]).astype(np.int64)
        step = steps[np.minimum((4 * u[4]).astype(np.int64), 3)]
        amp = p["p_art_amp"][rows] * sigma[np.arange(len(rows)), band] * (0.3 + 0.7 * u[5])
        for s in range(4):
            xs, ys = x + s * step[:, 0], y + s * step[:, 1]
            ok = (k < hits) & (s < length) & (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
            np.add.at(out, (rows[ok], band[ok], ys[ok], xs[ok]), amp[ok].astype(np.float32))
