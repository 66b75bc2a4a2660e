"""Light curves of the simulated survey: a ZTF-like cadence and the magnitudes of each light-curve model.

Each object is rendered from its catalogue row alone (see :mod:`explorer.data.simulate`), vectorised over all
points of a block of objects:

- cadence: ``p_n_g`` and ``p_n_r`` epochs spread over the observing seasons of the object's sky position inside
  ``[p_t_start, p_t_start + p_baseline]`` (2-3 years, or the detectable weeks of a supernova), one epoch per
  night at a time near local midnight; epochs are hashed from ``p_key``, so they do not depend on the batch;
- each epoch has its own 5-sigma depth (median ``p_depth_*``, scatter 0.3 mag); errors grow with magnitude as
  ``err^2 = 0.01^2 + (0.217 x)^2 + 0.0217^2 x`` with ``x = 10^(0.4 (mag - depth))`` (systematic floor, sky and
  source noise), and the observed magnitude is the model plus ``err`` times a normal number hashed from
  ``p_key`` and the render seed;
- models (``p_lc_model``, see :data:`explorer.data.simulate.LC_MODELS`): flat; Fourier series of pulsators
  (sawtooth RRab, near-sinusoidal RRc, Cepheids, Miras with cycle-to-cycle wander); detached and contact
  eclipsing binaries; Bazin transients with colour evolution; Paczyński microlensing; M-dwarf flares;
  dust dippers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.data.simulate import (
    LC_BANDS,
    LC_MODELS,
    bazin_mag,
    hash_bits,
    hash_normal,
    hash_uniform,
    place_in_seasons,
    season_intervals,
    seed_salt,
)
from explorer.errors import DataError

LC_COLUMNS = (
    "p_key p_lc_model p_mean_g p_mean_r p_amp_g p_amp_r p_period p_t0 p_lc_a p_lc_b p_lc_c "
    "p_n_g p_n_r p_t_start p_baseline p_depth_g p_depth_r"
).split()
BLOCK = 4096  # objects rendered together
_HARMONICS = 5


def render_lightcurves(params: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Render the light curves of the simulated objects in ``params`` that have one.

    Parameters
    ----------
    params : pandas.DataFrame
        Rows of :func:`explorer.data.simulate.simulate_parameters`; rows without ``has_lightcurve`` are skipped.
    seed : int
        Noise realisation: the same object and seed give the same points, alone or in any batch.

    Returns
    -------
    pandas.DataFrame
        Long form, one row per point: ``id`` (str), ``time`` (float64, MJD), ``mag`` (float32), ``err``
        (float32, 1-sigma), ``band`` (str, one of :data:`LC_BANDS`), sorted by ``id`` then ``time``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed={seed!r} must be a non-negative integer")
    missing = [c for c in ("id", "ra", "dec", "has_lightcurve", *LC_COLUMNS) if c not in params.columns]
    if missing:
        raise DataError(f"params lack the columns {missing}; pass rows of simulate_parameters()")
    rows = params[params["has_lightcurve"].to_numpy(dtype=bool)]
    ids = rows["id"].to_numpy(dtype=str)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(np.unique(ids)) != len(ids):
        raise DataError("params hold the same id twice; drop duplicate rows before rendering light curves")
    cols = {c: rows[c].to_numpy()[order] for c in ("ra", "dec", *LC_COLUMNS)}
    cols["p_key"] = cols["p_key"].astype(np.int64).view(np.uint64)
    parts = [
        _render_block({c: v[a : a + BLOCK] for c, v in cols.items()}, int(seed), a)
        for a in range(0, len(ids), BLOCK)
    ]
    obj, time, mag, err, band = (
        np.concatenate([part[k] for part in parts]) if parts else np.empty(0) for k in range(5)
    )
    return _frame(ids, obj.astype(np.int64), time, mag, err, band.astype(np.int8))


def _frame(ids, obj, time, mag, err, band) -> pd.DataFrame:
    import pyarrow as pa

    id_col = pd.Series(pa.array(ids, type=pa.string()).take(pa.array(obj)), dtype="str")
    bands = pa.DictionaryArray.from_arrays(pa.array(band), pa.array(list(LC_BANDS))).cast(pa.string())
    return pd.DataFrame(
        {
            "id": id_col,
            "time": time.astype(np.float64),
            "mag": mag.astype(np.float32),
            "err": err.astype(np.float32),
            "band": pd.Series(bands, dtype="str"),
        }
    )


def _render_block(p: dict, seed: int, first_object: int) -> tuple[np.ndarray, ...]:
    """Points of a block of objects, sorted by object then time: (object, time, mag, err, band code)."""
    n_g, n_r = p["p_n_g"].astype(np.int64), p["p_n_r"].astype(np.int64)
    counts = n_g + n_r
    obj = np.repeat(np.arange(len(counts)), counts)
    start = np.cumsum(counts) - counts
    j = np.arange(len(obj)) - start[obj]
    band = (j >= n_g[obj]).astype(np.int8)  # 0: g, 1: r
    key = hash_bits(p["p_key"][obj], j)  # one key per point
    time = _cadence(p, obj, key)
    mean = np.where(band == 0, p["p_mean_g"][obj], p["p_mean_r"][obj]).astype(np.float64)
    mag = mean + _model(p, obj, band, time, start, counts)
    depth = np.where(band == 0, p["p_depth_g"][obj], p["p_depth_r"][obj]) + 0.3 * hash_normal(key, 3)
    x = 10.0 ** (0.4 * (mag - depth))
    err = np.sqrt(0.01**2 + (0.2171 * x) ** 2 + 0.0217**2 * x)
    mag = mag + err * hash_normal(key ^ seed_salt(seed, 2), 4)
    # sort by object then time (one float key: epochs lie within 2048 days of the object's window start)
    order = np.argsort(obj * 2048.0 + (time - p["p_t_start"][obj]), kind="stable")
    return obj[order] + first_object, time[order], mag[order], err[order], band[order]


def _cadence(p: dict, obj: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Epoch times (MJD): evenly over the visible seasons, one night each, near local midnight."""
    t_start = p["p_t_start"].astype(np.float64)
    begin, length = season_intervals(p["ra"], p["dec"], t_start, t_start + p["p_baseline"])
    t = place_in_seasons(hash_uniform(key, 1), begin, length, obj)
    return np.floor(t) + np.clip(0.333 + 0.1 * hash_normal(key, 2), 0.15, 0.5)


def _model(p: dict, obj, band, time, start, counts) -> np.ndarray:
    """Magnitude offsets from the mean (or peak, or quiescent) magnitude, per point."""
    delta = np.zeros(len(obj))
    code = p["p_lc_model"][obj]
    for name, model in _MODELS.items():
        pts = np.flatnonzero(code == LC_MODELS[name])
        if len(pts):
            delta[pts] = model(p, obj[pts], band[pts], time[pts], start=start, counts=counts, all_time=time)
    return delta


def _pick(p: dict, column: str, obj, band=None) -> np.ndarray:
    """Per-point values of a per-object column; ``p_x_g``/``p_x_r`` chosen by band when ``band`` is given."""
    if band is None:
        return p[column][obj].astype(np.float64)
    return np.where(band == 0, p[f"{column}_g"][obj], p[f"{column}_r"][obj]).astype(np.float64)


def _fourier(p, obj, band, time, **_) -> np.ndarray:
    """Pulsators: ``-sum_k R^(k-1) sin(2 pi k phase + psi_k)``, scaled to the peak-to-peak amplitude."""
    objs = np.unique(obj)
    key = p["p_key"][objs]
    ratio = p["p_lc_a"][objs].astype(np.float64)
    jitter = p["p_lc_b"][objs].astype(np.float64)
    weights = ratio[:, None] ** np.arange(_HARMONICS)  # (m, K)
    psi = jitter[:, None] * np.stack([hash_normal(key, 50 + k) for k in range(_HARMONICS)], axis=1)
    psi[:, 0] = 0.0
    harmonics = 2 * np.pi * np.arange(1, _HARMONICS + 1)

    def shape(phase, w, s):  # phase (..., ), w and s (..., K)
        return -np.sum(w * np.sin(harmonics * phase[..., None] + s), axis=-1)

    grid = np.linspace(0.0, 1.0, 256, endpoint=False)
    curve = shape(grid[None, :], weights[:, None, :], psi[:, None, :])
    ptp = curve.max(axis=1) - curve.min(axis=1)
    local = np.searchsorted(objs, obj)
    phase = np.mod((time - _pick(p, "p_t0", obj)) / _pick(p, "p_period", obj), 1.0)
    delta = _pick(p, "p_amp", obj, band) * shape(phase, weights[local], psi[local]) / ptp[local]
    wander = p["p_lc_c"][obj].astype(np.float64)  # slow cycle-to-cycle wander of Miras
    if np.any(wander > 0):
        for k in range(3):
            stretch = 2.0 + 4.0 * hash_uniform(key, 60 + k)[local]
            angle = 2 * np.pi * hash_uniform(key, 63 + k)[local]
            delta += (
                wander
                * np.sqrt(2 / 3)
                * np.sin(2 * np.pi * time / (_pick(p, "p_period", obj) * stretch) + angle)
            )
    return delta


def _eclipse(p, obj, band, time, **_) -> np.ndarray:
    """Eclipsing binaries: two eclipses per period; detached (flat between eclipses) or contact (W UMa)."""
    phase = np.mod((time - _pick(p, "p_t0", obj)) / _pick(p, "p_period", obj), 1.0)
    depth = _pick(p, "p_amp", obj, band)
    ratio = _pick(p, "p_lc_a", obj)
    contact = _pick(p, "p_lc_c", obj) > 0.5
    # a cooler secondary: its eclipse is deeper in r
    ratio = np.where((band == 1) & ~contact, np.minimum(ratio * 1.15, 1.0), ratio)
    cos2 = np.cos(2 * np.pi * phase)
    w_uma = 0.5 * (1 + np.cos(4 * np.pi * phase)) * depth * (0.5 * (1 + cos2) + ratio * 0.5 * (1 - cos2))
    width = np.nan_to_num(_pick(p, "p_lc_b", obj), nan=0.05)

    def dip(centre):
        x = np.abs(np.mod(phase - centre + 0.5, 1.0) - 0.5) / width
        return np.clip(1.0 - x**2, 0.0, None) ** 0.6

    detached = depth * (dip(0.0) + ratio * dip(0.5))
    return np.where(contact, w_uma, detached)


def _bazin(p, obj, band, time, **_) -> np.ndarray:
    """Supernova-like transients: Bazin rise and fall, faster decline in g (the colour reddens)."""
    rise, fall = _pick(p, "p_lc_a", obj), _pick(p, "p_lc_b", obj)
    g = band == 0
    rise = np.where(g, 0.9 * rise, rise)
    fall = np.where(g, _pick(p, "p_lc_c", obj) * fall, fall)
    return bazin_mag(time, _pick(p, "p_t0", obj), rise, fall)


def _paczynski(p, obj, band, time, **_) -> np.ndarray:
    """Microlensing: the achromatic, symmetric Paczyński (1986) magnification of a (blended) source."""
    u0, te, blend = _pick(p, "p_lc_a", obj), _pick(p, "p_lc_b", obj), _pick(p, "p_lc_c", obj)
    u = np.sqrt(u0**2 + ((time - _pick(p, "p_t0", obj)) / te) ** 2)
    magnification = (u**2 + 2) / (u * np.sqrt(u**2 + 4))
    return -2.5 * np.log10(blend * magnification + 1.0 - blend)


def _flare(p, obj, band, time, *, start, counts, all_time) -> np.ndarray:
    """Flare stars: sudden rises with exponential decays, started just before some of the star's epochs."""
    key = p["p_key"][obj]
    tau = _pick(p, "p_lc_b", obj)
    n_flares = _pick(p, "p_lc_a", obj)
    gain_g = np.expm1(0.4 * np.log(10) * _pick(p, "p_amp_g", obj))
    gain = np.where(band == 0, 1.0, np.expm1(0.4 * np.log(10) * _pick(p, "p_amp_r", obj)) / gain_g)
    boost = np.zeros(len(obj))
    for k in range(int(n_flares.max())):
        epoch = start[obj] + np.floor(hash_uniform(key, 70 + k) * counts[obj]).astype(np.int64)
        onset = all_time[epoch] - 0.5 * tau * hash_uniform(key, 80 + k)
        strength = gain_g * (1.0 if k == 0 else 0.2 + 0.8 * hash_uniform(key, 90 + k))
        dt = time - onset
        boost += np.where((dt >= 0) & (k < n_flares), strength * np.exp(-np.maximum(dt, 0) / tau), 0.0)
    return -2.5 * np.log10(1.0 + gain * boost)


def _dips(p, obj, band, time, **_) -> np.ndarray:
    """Dippers: irregular, asymmetric dimmings by circumstellar dust, deeper in g than in r."""
    key = p["p_key"][obj]
    n_dips, width = _pick(p, "p_lc_a", obj), _pick(p, "p_lc_b", obj)
    depth = _pick(p, "p_amp", obj, band)
    t_start, baseline = _pick(p, "p_t_start", obj), _pick(p, "p_baseline", obj)
    delta = np.zeros(len(obj))
    for k in range(int(n_dips.max())):
        centre = t_start + baseline * hash_uniform(key, 100 + k)
        scale = width * (0.5 + hash_uniform(key, 130 + k))
        dt = time - centre
        sigma = np.where(dt < 0, 0.5 * scale, scale)  # fast ingress, slow egress
        strength = depth * (0.2 + 0.8 * hash_uniform(key, 160 + k))
        delta += np.where(k < n_dips, strength * np.exp(-0.5 * (dt / sigma) ** 2), 0.0)
    return delta


_MODELS = {
    "fourier": _fourier,
    "eclipse": _eclipse,
    "bazin": _bazin,
    "paczynski": _paczynski,
    "flare": _flare,
    "dips": _dips,
}
