"""Variability statistics of light curves, and how far each curve's statistics stand from everyone else's.

The light-curve encoder summarises a curve's shape; a few classic variability indices say plainly what an
astronomer looks at first, and rank the odd ones better on the simulated survey (``benchmarks/RESULTS.md``): a
microlensing event or a flaring star has a skewed, one-sided excursion that a contrastive embedding, trained to
ignore gaps and cadence, blurs. Per band, on the time-ordered curve, with ``d`` the deviation from the band's
median counted positive when fainter (magnitudes up, fluxes down) and ``err`` the quoted error:

* ``amplitude``: ``log10`` of half the 5-95 % range of ``d`` (the curve's own units);
* ``chi2``: ``log10`` of the mean of ``(d / err)^2``, the reduced chi-square about the median (is it variable?);
* ``skew`` and ``kurtosis`` (``asinh`` of the excess kurtosis) of ``d``: dips, bursts and plateaus (a fading
  dip skews positive, a flare negative);
* ``eta``: ``log10`` of the von Neumann ratio (mean squared successive difference over the variance): 2 for
  white noise, small when the variation is slow compared with the cadence (von Neumann 1941; Sokolovsky et al.
  2017 compare it with other indices).

And over the whole curve, all bands together (each point's brightening over its band's median in units of its
error, ``e``; the band's robust scatter where there is no error), for windows of :data:`EPISODE_DAYS`:

* ``episode_{W}d``: ``asinh`` of the strongest brightening sustained over ``W`` days of an otherwise quiet curve:
  the mean ``e`` of the points in ``[t, t + W]`` above the brighter of the mean ``e`` before and after the
  window, over the larger of 1 and the scatter of ``e`` before and after, at the best ``t``. It needs
  :data:`EPISODE_INSIDE` points inside and :data:`EPISODE_OUTSIDE` on each side, and the curve to run on at least
  ``W`` days beyond the window on each side (a supernova's curve, which covers only its weeks of light, is not a
  quiet curve with an episode). A microlensing event, an outburst or a slow flare stands out; a periodic
  variable (as bright in the window as outside it) and a flat star do not. On the simulated survey (20k, seeds
  0 / 1 / 2) ``episode_60d`` alone put 11 of 22, 12 of 15 and 6 of 11 microlensing events at the very top of
  ~7,100 curves (nothing else above them; the rest of its top 30: long-period variables); with the two windows
  among the statistics the combined top 1 % holds 22 of 22 and 14 of 15 events (20 and 11 without). The same
  for fading episodes (dippers, windows of 3-20 days) ranked eclipsing binaries first and was left out; windows
  of 60 and 200 days cost flares on seed 2 (``benchmarks/RESULTS.md``).

:func:`feature_outliers` robustly standardises such a table and scores each row by its mean distance to its
nearest neighbours (the engine's kNN scorer, :class:`~explorer.analysis.anomaly.AnomalyScorer`), as the SNAD
pipeline does with its light-curve features (Malanchev et al. 2021, with an isolation forest). The fractions of
points beyond 3 ``err`` fainter / brighter were tried as well and left out: they are 0 for most curves, so their
robust scale is tiny and any curve with a few such points (every supernova) stood far out; without them the
detector put 30 and 27 instead of 28 and 25 of the simulated survey's light-curve oddities in its top 1 %
(seeds 0 and 1, 20k objects).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from explorer.errors import DataError

__all__ = ["CURVE_STATISTICS", "STATISTICS", "feature_outliers", "robust_reference", "standardised", "strongest", "variability_features"]

STATISTICS = ("amplitude", "chi2", "skew", "kurtosis", "eta")
#: Bands with fewer points give NaN statistics (no evidence either way).
MIN_POINTS = 5
#: Standardised features are clipped here, so that one degenerate statistic cannot be the whole distance.
CLIP = 50.0
#: Window lengths (days) of the brightening-episode statistics, one column ``episode_{W}d`` each.
EPISODE_DAYS = (20, 60)
EPISODE_INSIDE, EPISODE_OUTSIDE = 3, 5  # points needed inside the window, and before and after it
#: The whole-curve statistics (all bands together), in column order, and what each says.
CURVE_STATISTICS = {f"episode_{w}d": f"brightening sustained over {w} d of a quiet curve" for w in EPISODE_DAYS}


def variability_features(df: pd.DataFrame, bands: Sequence[str] | None = None, value: str | None = None
                         ) -> pd.DataFrame:
    """The :data:`STATISTICS` of each band of each curve, then the :data:`CURVE_STATISTICS` of the whole curve: one
    row per id, columns ``{statistic}_{band}`` and ``episode_{W}d``.

    Parameters
    ----------
    df : DataFrame
        Long form ``id, time, mag|flux, err, band`` (``err`` optional: without it ``chi2`` is NaN).
    bands : sequence of str, optional
        Bands to describe, in this order (a missing band gives NaN columns); default those in ``df``, sorted.
    value : {"mag", "flux"}, optional
        Which column holds the brightness; default the one ``df`` has.
    """
    if value is None:
        value = "mag" if "mag" in df.columns else "flux"
    missing = [c for c in ("id", "time", value, "band") if c not in df.columns]
    if missing:
        raise DataError(f"light curves lack column(s) {missing}; expected long form id, time, mag|flux, err, band")
    bands = sorted(df["band"].astype(str).unique()) if bands is None else [str(b) for b in bands]
    ids, id_codes = _codes(df["id"])
    band_codes = pd.Index(bands).get_indexer(df["band"].astype(str))
    time = np.asarray(df["time"], dtype=np.float64)
    v = np.asarray(df[value], dtype=np.float64)
    err = np.asarray(df["err"], dtype=np.float64) if "err" in df.columns else np.full(len(df), np.nan)
    ok = (band_codes >= 0) & np.isfinite(v) & np.isfinite(time)
    key = id_codes[ok].astype(np.int64) * len(bands) + band_codes[ok]
    sign = 1.0 if value == "mag" else -1.0
    keys, stats, brighter = _band_statistics(key, time[ok], v[ok], err[ok], sign=sign)
    table = np.full((len(ids) * len(bands), len(STATISTICS)), np.nan)
    table[keys] = stats
    wide = table.reshape(len(ids), len(bands), len(STATISTICS)).transpose(0, 2, 1).reshape(len(ids), -1)
    episodes = _episodes(id_codes[ok], time[ok], brighter, len(ids))
    columns = [f"{s}_{b}" for s in STATISTICS for b in bands] + list(CURVE_STATISTICS)
    return pd.DataFrame(np.column_stack([wide, episodes]), index=pd.Index(ids, name="id"), columns=columns)


def _codes(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(unique ids as str, in order of first appearance; code of each row)``."""
    codes, uniques = pd.factorize(ids, sort=False)
    return np.asarray(uniques).astype(str), codes


def _band_statistics(key: np.ndarray, time: np.ndarray, v: np.ndarray, err: np.ndarray, sign: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys, (n_keys, len(STATISTICS)) statistics, brightening)`` of the curves named by ``key`` (one per
    point); ``brightening`` is each point's (in the order given) over its band's median in units of its error,
    or of the band's robust scatter where the error is missing (NaN where neither is usable)."""
    by_value = np.lexsort((v, key))  # within a curve by brightness: medians and quantiles
    k_sorted = key[by_value]
    starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
    size = np.diff(np.r_[starts, len(key)])
    keys = k_sorted[starts]
    v_sorted = v[by_value]

    def quantile(q):
        return _segment_quantile(v_sorted, starts, size, q)

    median, q05, q95 = quantile(0.5), quantile(0.05), quantile(0.95)
    segment = np.repeat(np.arange(len(starts)), size)  # the curve of each position, in any curve-major order
    point = np.empty(len(key), np.int64)  # the curve of each point, in the order given
    point[by_value] = segment
    deviation = sign * (v - median[point])  # in the order given, positive when fainter
    by_time = np.lexsort((time, key))  # within a curve in time order: successive differences
    d = deviation[by_time]
    e = err[by_time]
    z = np.where(e > 0, d / np.where(e > 0, e, 1.0), np.nan)

    def mean(x):
        return np.add.reduceat(x, starts) / size

    centred = d - mean(d)[segment]
    var = mean(centred**2)
    step2 = np.diff(d, prepend=0.0) ** 2
    step2[starts] = 0.0
    has_z = np.isfinite(z)
    n_z = np.add.reduceat(has_z.astype(np.float64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(var > 0, var, np.nan)
        z0 = np.where(has_z, z, 0.0)
        out = np.column_stack([
            np.log10(np.maximum((q95 - q05) / 2, 1e-6)),
            np.log10(np.maximum(np.add.reduceat(z0**2, starts) / n_z, 1e-6)),
            mean(centred**3) / safe**1.5,
            np.arcsinh(mean(centred**4) / safe**2 - 3.0),
            np.log10(np.maximum(np.add.reduceat(step2, starts) / np.maximum(size - 1, 1) / safe, 1e-6)),
        ])
    out[n_z == 0, 1] = np.nan
    out[size < MIN_POINTS] = np.nan
    spread = 1.4826 * _median_abs(deviation[by_value], starts, size, segment)
    scale = np.where(np.isfinite(err) & (err > 0), err, spread[point])
    with np.errstate(invalid="ignore", divide="ignore"):
        brighter = np.where(scale > 0, -deviation / scale, np.nan)
    return keys, out, brighter


def _segment_quantile(x_sorted: np.ndarray, starts: np.ndarray, size: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile (linear interpolation) of each segment ``[starts, starts + size)`` of ``x_sorted``, sorted
    within segments; the interpolation weight depends on the segment alone (a curve's value does not depend on
    where in the table it sits)."""
    offset = q * (size - 1)
    below = np.floor(offset)
    lo = starts + below.astype(np.int64)
    hi = np.minimum(lo + 1, starts + size - 1)
    return x_sorted[lo] + (offset - below) * (x_sorted[hi] - x_sorted[lo])


def _median_abs(x: np.ndarray, starts: np.ndarray, size: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Median of ``|x|`` within each segment ``[starts, starts + size)`` of ``x`` (``segment``: each position's)."""
    a = np.abs(x)
    return _segment_quantile(a[np.lexsort((a, segment))], starts, size, 0.5)


def _episodes(codes: np.ndarray, time: np.ndarray, brighter: np.ndarray, n_curves: int) -> np.ndarray:
    """``(n_curves, len(EPISODE_DAYS))``: the brightening-episode statistics (module docstring) of every curve
    (``codes``: each point's curve), NaN where no window qualifies. All windows of all curves at once: each
    point starts a window; sums inside, before and after come from running sums over the time-ordered points."""
    out = np.full((n_curves, len(EPISODE_DAYS)), np.nan)
    keep = np.isfinite(brighter)
    # on a grid of 2^-10 (and squares too): running sums of up to ~8M points are then exact, so a curve's
    # statistics do not depend on which other curves share its table (Dask partitions give the same values)
    e = np.round(np.clip(brighter[keep], -1e3, 1e3) * 1024.0) / 1024.0
    codes, time = codes[keep], time[keep]
    if len(e) == 0:
        return out
    order = np.lexsort((time, codes))
    codes, time, e = codes[order], time[order] - time.min(), e[order]
    n = len(e)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], n]
    first, last = np.repeat(starts, ends - starts), np.repeat(ends, ends - starts)
    stride = time.max() + 2.0 * max(EPISODE_DAYS) + 1.0
    position = codes * stride + time  # increasing: curve by curve, in time
    total, squares = np.r_[0.0, np.cumsum(e)], np.r_[0.0, np.cumsum(np.round(e * e * 1024.0) / 1024.0)]

    def moments(a, b):
        count = b - a
        mean = (total[b] - total[a]) / np.maximum(count, 1)
        var = (squares[b] - squares[a]) / np.maximum(count, 1) - mean**2
        return mean, np.sqrt(np.maximum(var, 0.0)), count

    i = np.arange(n)
    for c, days in enumerate(EPISODE_DAYS):
        j = np.searchsorted(position, position + days, side="right")  # the window is points i .. j-1
        inside, _, n_in = moments(i, j)
        before, sd_before, n_before = moments(first, i)
        after, sd_after, n_after = moments(j, last)
        quiet_span = ((time - time[first] >= days)
                      & (time[last - 1] - time[np.maximum(j - 1, i)] >= days))
        usable = (n_in >= EPISODE_INSIDE) & (n_before >= EPISODE_OUTSIDE) & (n_after >= EPISODE_OUTSIDE) & quiet_span
        value = (inside - np.maximum(before, after)) / np.maximum(1.0, np.maximum(sd_before, sd_after))
        best = np.full(n_curves, -np.inf)
        np.maximum.at(best, codes[usable], value[usable])
        out[:, c] = np.where(np.isfinite(best), np.arcsinh(best), np.nan)
    return out


def robust_reference(features: pd.DataFrame | np.ndarray, names: Sequence[str] | None = None) -> dict:
    """What "ordinary" is for each feature: ``{"columns", "centre", "scale"}`` (JSON-able), the median and the
    robust scatter (1.4826 MAD, or the standard deviation where the MAD is 0) of every column that varies; a
    column with no finite value or no spread is left out. ``names`` default to the table's columns."""
    F = np.asarray(features, dtype=np.float64)
    if F.ndim != 2:
        raise DataError(f"features must be a 2-D table, got shape {F.shape}")
    if names is None:
        names = list(features.columns) if isinstance(features, pd.DataFrame) else list(range(F.shape[1]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite value: left out below
        centre = np.nanmedian(F, axis=0) if len(F) else np.full(F.shape[1], np.nan)
    D = np.where(np.isfinite(F), F - centre, 0.0)
    scale = 1.4826 * np.median(np.abs(D), axis=0) if len(F) else np.zeros(F.shape[1])
    scale = np.where(scale > 0, scale, D.std(axis=0) if len(F) else 0.0)
    keep = np.isfinite(centre) & (scale > 0)
    return {"columns": [names[j] for j in np.flatnonzero(keep)], "centre": centre[keep].tolist(),
            "scale": scale[keep].tolist()}


def standardised(features: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """``features`` in units of the reference's scatter from its centre (:func:`robust_reference`), clipped at
    :data:`CLIP`, on the reference's columns (NaN where a feature is not measured)."""
    F = features.reindex(columns=reference["columns"]).to_numpy(dtype=np.float64)
    Z = (F - np.asarray(reference["centre"])) / np.asarray(reference["scale"])
    return pd.DataFrame(np.clip(Z, -CLIP, CLIP), index=features.index, columns=reference["columns"])


def strongest(features: pd.DataFrame, reference: dict) -> tuple[str, float] | None:
    """The feature of the first row that stands farthest from ordinary, and by how many scatters (signed);
    None when none is measured. What the app shows beside "flagged by: variability"."""
    z = standardised(features.iloc[:1], reference).iloc[0].dropna()
    if z.empty:
        return None
    name = str(z.abs().idxmax())
    return name, float(z[name])


def feature_outliers(features, n_neighbors: int = 10, reference_size: int = 8192, random_state: int = 0,
                     reference: dict | None = None) -> np.ndarray:
    """Mean distance of each row to its ``n_neighbors`` nearest rows (of a seeded reference sample of
    ``reference_size``), after each column is centred on its median and divided by its robust scatter
    (:func:`robust_reference`, or the ``reference`` given); NaN counts as the median, constant columns are
    dropped. Higher = more unusual. Rows with no finite feature at all get NaN (no evidence either way).
    """
    from explorer.analysis.anomaly import AnomalyScorer

    table = features if isinstance(features, pd.DataFrame) else pd.DataFrame(np.asarray(features, dtype=np.float64))
    if table.ndim != 2 or np.ndim(features) != 2:
        raise DataError(f"features must be a 2-D table, got shape {np.shape(features)}")
    F = table.to_numpy(dtype=np.float64)
    out = np.full(len(F), np.nan)
    usable = np.isfinite(F).any(axis=1)
    if usable.sum() <= n_neighbors:
        return out
    reference = robust_reference(table[usable]) if reference is None else reference
    if not reference["columns"]:
        out[usable] = 0.0
        return out
    Z = np.nan_to_num(standardised(table[usable], reference).to_numpy(), nan=0.0).astype(np.float32)
    scorer = AnomalyScorer(method="knn", n_neighbors=n_neighbors, reference_size=reference_size,
                           random_state=random_state)
    out[usable] = scorer.fit(Z, np.arange(len(Z))).score_samples()
    return out
