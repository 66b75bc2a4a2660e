"""Long-form light curves (``id, time, mag|flux, err, band``) to padded tensors for the light-curve encoder.

Two steps, both vectorised over all curves (no Python loop per point):

1. :func:`prepare_lightcurves` validates the table once, drops NaN points (with a warning), sorts each curve by
   time, normalises it and computes per-curve summary statistics. The result, :class:`PreparedLightCurves`,
   holds flat point arrays plus the start/count of each curve.
2. :func:`collate` cuts a subset of curves into a :class:`LightCurveBatch` of padded ``(n, L)`` tensors,
   subsampling curves longer than ``max_len``: **deterministically and evenly spaced in index** (first and last
   point kept) at inference, **uniformly at random without replacement** in training (``rng`` given).

Normalisation (after ASTROMER, Donoso-Oliva et al. 2023, but per band): each point becomes the residual from
its band's median magnitude, divided by one robust amplitude per curve ``s = (q95 - q05) / 2`` of the pooled
residuals (floored at ``min_scale``). Dividing every band by the same ``s`` keeps the amplitude *ratios*
between bands in the shape; what the normalisation strips (colours, amplitude) is kept as summary statistics
(:data:`SUMMARY_DOC`) that the encoder appends to its embedding. Flux columns become asinh magnitudes
(Lupton et al. 1999) so negative difference fluxes stay finite.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from explorer.errors import DataError

#: Bands ordered by wavelength when their names are known; others follow alphabetically.
WAVELENGTH_ORDER = ("u", "g", "r", "i", "z", "y")
#: Index of the "unknown band" token; known bands are 1..n_bands.
UNKNOWN_BAND = 0

SUMMARY_DOC = (
    "summary statistics per curve: for adjacent vocabulary bands (b1, b2) the colour median(b1) - median(b2); "
    "for each band log10 of its 5-95% magnitude range; log10 of the pooled robust amplitude s. "
    "Missing bands are NaN here and become the training mean in the encoder."
)


def order_bands(bands: Sequence[str]) -> list[str]:
    """Unique band names in wavelength order (u g r i z y first, then the rest alphabetically)."""
    known = {b: i for i, b in enumerate(WAVELENGTH_ORDER)}
    return sorted({str(b) for b in bands}, key=lambda b: (known.get(b, len(known)), b))


def summary_names(bands: Sequence[str]) -> list[str]:
    """Names of the summary statistics for a band vocabulary (see :data:`SUMMARY_DOC`)."""
    colours = [f"{a}-{b}" for a, b in zip(bands[:-1], bands[1:], strict=True)]
    return colours + [f"log_amp_{b}" for b in bands] + ["log_amp"]


@dataclass
class PreparedLightCurves:
    """Validated, sorted, normalised light curves as flat point arrays (``P`` points, ``n`` curves).

    Attributes
    ----------
    ids : ndarray of object, (n,)
        Object ids, in the order requested.
    starts, counts : ndarray of int64, (n,)
        Slice of each curve in the point arrays.
    dt : ndarray of float64, (P,)
        Days since the curve's first point.
    value : ndarray of float32, (P,)
        Normalised residual magnitude ``(mag - band median) / s``, clipped to +-8.
    err : ndarray of float32, (P,)
        ``err / s`` clipped to [0, 8]; 0 where the error is unknown.
    band : ndarray of int64, (P,)
        Band index in the vocabulary (1..n_bands), :data:`UNKNOWN_BAND` for bands outside it.
    epoch : ndarray of int64, (P,)
        Epoch index within the curve: points closer than ``epoch_window`` days to an epoch's first point.
    summary : ndarray of float32, (n, n_summary)
        Raw summary statistics (NaN where a band is missing), see :data:`SUMMARY_DOC`.
    """

    ids: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    dt: np.ndarray
    value: np.ndarray
    err: np.ndarray
    band: np.ndarray
    epoch: np.ndarray
    summary: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class LightCurveBatch:
    """Padded tensors for ``n`` curves of at most ``L`` points (padding where ``mask`` is False).

    Attributes
    ----------
    ids : ndarray of object, (n,)
    dt : Tensor float64, (n, L)
        Days since the curve's first point (float64: phases of short periods over years need it).
    value, err : Tensor float32, (n, L)
        As in :class:`PreparedLightCurves`; 0 at padding.
    band : Tensor int64, (n, L)
    epoch : Tensor int64, (n, L)
        -1 at padding.
    mask : Tensor bool, (n, L)
        True at real points.
    summary : Tensor float32, (n, n_summary)
        NaN where a band is missing.
    """

    ids: np.ndarray
    dt: torch.Tensor
    value: torch.Tensor
    err: torch.Tensor
    band: torch.Tensor
    epoch: torch.Tensor
    mask: torch.Tensor
    summary: torch.Tensor

    def to(self, device: str | torch.device) -> LightCurveBatch:
        """The same batch with every tensor on ``device``."""
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return LightCurveBatch(**moved)


# ----------------------------------------------------------------------------------------------------------
# grouped statistics on sorted arrays


def _group_bounds(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and counts of runs of equal values in a sorted key array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    counts = np.diff(np.r_[starts, len(sorted_keys)])
    return starts, counts


def group_quantiles(
    keys: np.ndarray, values: np.ndarray, qs: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of ``values`` within each group of ``keys`` (linear interpolation, like ``np.quantile``).

    Returns
    -------
    groups : ndarray, (g,)
        The distinct keys, sorted.
    quantiles : ndarray of float64, (g, len(qs))
    """
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order].astype(np.float64)
    starts, counts = _group_bounds(k)
    out = np.empty((len(starts), len(qs)))
    for j, q in enumerate(qs):
        pos = q * (counts - 1)
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        hi = np.minimum(lo + 1, counts - 1)
        out[:, j] = v[starts + lo] * (1 - frac) + v[starts + hi] * frac
    return k[starts], out


def _asinh_magnitudes(flux: np.ndarray, ferr: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux to asinh magnitudes with one softening ``b`` per curve (its median flux error, or 1% of max |flux|)."""
    n = int(curve.max()) + 1 if len(curve) else 0
    _, med_err = group_quantiles(curve, np.where(np.isfinite(ferr), ferr, np.inf), [0.5])
    _, max_abs = group_quantiles(curve, np.abs(flux), [1.0])
    b_curve = np.full(n, np.nan)
    uniq = np.unique(curve)
    b_curve[uniq] = np.where(np.isfinite(med_err[:, 0]), med_err[:, 0], 0.0)
    b_curve[uniq] = np.maximum(b_curve[uniq], 0.01 * max_abs[:, 0]) + 1e-30
    b = b_curve[curve]
    k = 2.5 / np.log(10)
    mag = -k * (np.arcsinh(flux / (2 * b)) + np.log(b))
    merr = k * ferr / np.sqrt(flux**2 + 4 * b**2)
    return mag, merr


def _epoch_ids(curve: np.ndarray, t: np.ndarray, window: float) -> np.ndarray:
    """Epoch index within each curve: a new epoch starts at the first point more than ``window`` days after
    the current epoch's first point. ``curve`` and ``t`` are sorted by (curve, time)."""
    new = np.r_[True, (curve[1:] != curve[:-1]) | (np.diff(t) > window)]
    starts = np.flatnonzero(new)
    span = np.r_[t[np.r_[starts[1:] - 1, len(t) - 1]] - t[starts]] if len(t) else np.zeros(0)
    # Gap-chained groups longer than the window (dense cadence) are split anchored on their first point.
    for g in np.flatnonzero(span > window):
        lo = starts[g]
        hi = starts[g + 1] if g + 1 < len(starts) else len(t)
        anchor = t[lo]
        for i in range(lo + 1, hi):
            if t[i] - anchor > window:
                new[i] = True
                anchor = t[i]
    first_of_curve = np.r_[True, curve[1:] != curve[:-1]]
    epoch_global = np.cumsum(new) - 1
    curve_first_epoch = np.maximum.accumulate(np.where(first_of_curve, epoch_global, 0))
    return (epoch_global - curve_first_epoch).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# preparation


def _check_columns(df: pd.DataFrame) -> str:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"light curves must be a long-form pandas DataFrame, got {type(df).__name__}")
    value = "mag" if "mag" in df.columns else ("flux" if "flux" in df.columns else None)
    missing = [c for c in ("id", "time", "band") if c not in df.columns] + (
        ["mag or flux"] if value is None else []
    )
    if missing:
        raise DataError(
            f"light-curve table lacks column(s) {missing} (has {list(df.columns)}); "
            "give it id, time, mag|flux, err, band (explorer.data.lightcurves.normalise_lightcurves does this)"
        )
    return value


def _select_ids(df: pd.DataFrame, ids: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """Unique ids wanted (order kept) and, for each row, its curve index (-1: not wanted)."""
    row_ids = df["id"].astype(str).to_numpy(dtype=object)
    wanted = pd.unique(row_ids) if ids is None else np.asarray([str(i) for i in ids], dtype=object)
    index = pd.Index(wanted)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise DataError(f"id {dup!r} is requested twice; pass each id once")
    curve = index.get_indexer(row_ids)
    return wanted, curve


def prepare_lightcurves(
    df: pd.DataFrame,
    bands: Sequence[str],
    *,
    ids: Sequence | None = None,
    epoch_window: float = 0.05,
    min_scale: float = 0.01,
    warn_unknown: bool = True,
) -> PreparedLightCurves:
    """Validate and normalise a long-form light-curve table for the encoder.

    Parameters
    ----------
    df : DataFrame
        Columns ``id, time, mag`` (or ``flux``), ``band``, optionally ``err``; any row order; duplicate times
        are kept (they fall in one epoch).
    bands : sequence of str
        The encoder's band vocabulary. Other bands use the "unknown band" token (a warning names them).
    ids : sequence, optional
        Curves to prepare, in this order; default every id in order of first appearance.
    epoch_window : float
        Days; points this close to an epoch's first point form one epoch (masked together in pretraining).
    min_scale : float
        Floor of the per-curve amplitude ``s`` (mag), so constant curves do not divide by zero.
    warn_unknown : bool
        Warn when a band outside ``bands`` is seen.

    Raises
    ------
    DataError
        Missing columns, a requested id absent from the table, or a curve with no finite point (naming the id).
    """
    value_col = _check_columns(df)
    wanted, curve = _select_ids(df, ids)
    if len(wanted) == 0:
        return _empty(len(summary_names(bands)))
    if ids is not None:
        present = np.zeros(len(wanted), bool)
        present[curve[curve >= 0]] = True
        if not present.all():
            missing = wanted[~present]
            raise DataError(
                f"light curve of id {missing[0]!r} is empty (no rows; {len(missing)} such ids); "
                "drop those ids or add their points"
            )
    keep = curve >= 0
    t = df["time"].to_numpy(dtype=np.float64)[keep]
    v = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=np.float64)[keep]
    e = (
        pd.to_numeric(df["err"], errors="coerce").to_numpy(dtype=np.float64)[keep]
        if "err" in df.columns
        else np.full(len(t), np.nan)
    )
    band_str = df["band"].astype(str).to_numpy(dtype=object)[keep]
    curve = curve[keep]

    finite = np.isfinite(t) & np.isfinite(v)
    if not finite.all():
        bad_ids = wanted[np.unique(curve[~finite])]
        warnings.warn(
            f"dropped {int((~finite).sum())} light-curve points with NaN/inf time or {value_col} "
            f"(ids {list(bad_ids[:5])}{' ...' if len(bad_ids) > 5 else ''})",
            stacklevel=2,
        )
        t, v, e, band_str, curve = t[finite], v[finite], e[finite], band_str[finite], curve[finite]
    counts = np.bincount(curve, minlength=len(wanted)).astype(np.int64)
    if (counts == 0).any():
        empty = wanted[counts == 0]
        raise DataError(
            f"light curve of id {empty[0]!r} is empty after dropping NaN points "
            f"({len(empty)} such ids); remove it or fix its magnitudes"
        )
    if value_col == "flux":
        v, e = _asinh_magnitudes(v, e, curve)

    order = np.lexsort((t, curve))
    t, v, e, band_str, curve = t[order], v[order], e[order], band_str[order], curve[order]
    starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)

    band_codes, band_names = pd.factorize(band_str)
    vocab = {b: i + 1 for i, b in enumerate(bands)}
    unknown = [b for b in band_names if b not in vocab]
    if unknown and warn_unknown:
        warnings.warn(
            f"band(s) {sorted(map(str, unknown))} not in the encoder's vocabulary {list(bands)}; "
            "their points use the 'unknown band' token and are left out of the colour statistics",
            stacklevel=2,
        )
    band_vocab = np.array([vocab.get(b, UNKNOWN_BAND) for b in band_names], dtype=np.int64)[band_codes]

    # residuals from each (curve, raw band) median; one robust amplitude per curve
    cb = curve.astype(np.int64) * len(band_names) + band_codes
    cb_keys, cb_q = group_quantiles(cb, v, [0.05, 0.5, 0.95])
    pos = np.searchsorted(cb_keys, cb)
    resid = v - cb_q[pos, 1]
    _, res_q = group_quantiles(curve, resid, [0.05, 0.95])
    scale = np.maximum((res_q[:, 1] - res_q[:, 0]) / 2, min_scale)
    s_pt = scale[curve]
    value = np.clip(resid / s_pt, -8, 8).astype(np.float32)
    err = np.clip(np.nan_to_num(e / s_pt, nan=0.0, posinf=8.0), 0, 8).astype(np.float32)

    summary = _summary(cb_keys, cb_q, band_names, bands, scale, len(band_names), len(wanted))
    return PreparedLightCurves(
        ids=wanted,
        starts=starts,
        counts=counts,
        dt=t - t[starts][curve],
        value=value,
        err=err,
        band=band_vocab,
        epoch=_epoch_ids(curve, t, epoch_window),
        summary=summary,
    )


def _empty(n_summary: int) -> PreparedLightCurves:
    """Prepared light curves of no object (so that embedding nothing gives a ``(0, d)`` array)."""
    i, f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return PreparedLightCurves(
        ids=np.zeros(0, object),
        starts=i,
        counts=i,
        dt=np.zeros(0),
        value=f,
        err=f,
        band=i,
        epoch=i,
        summary=np.zeros((0, n_summary), np.float32),
    )


def _summary(cb_keys, cb_q, band_names, bands, scale, n_raw, n) -> np.ndarray:
    """Raw summary statistics ``(n, 2 * n_bands)``: colours, per-band log amplitudes, pooled log amplitude."""
    kb = len(bands)
    med = np.full((n, kb), np.nan)
    amp = np.full((n, kb), np.nan)
    col_of_raw = np.array([list(bands).index(b) if b in bands else -1 for b in band_names], dtype=np.int64)
    c, rb = cb_keys // n_raw, cb_keys % n_raw
    known = col_of_raw[rb] >= 0
    med[c[known], col_of_raw[rb[known]]] = cb_q[known, 1]
    amp[c[known], col_of_raw[rb[known]]] = np.log10(np.maximum(cb_q[known, 2] - cb_q[known, 0], 1e-3))
    colours = med[:, :-1] - med[:, 1:]
    return np.concatenate([colours, amp, np.log10(2 * scale)[:, None]], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# collation


def _take_indices(
    counts: np.ndarray, max_len: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Point offsets within each curve, ``(n, L)``, and the validity mask.

    Curves with more than ``max_len`` points keep ``max_len`` of them: evenly spaced in index when ``rng`` is
    None (deterministic, first and last kept), a uniform random subset (sorted in time) otherwise.
    """
    n = len(counts)
    length = int(min(max_len, counts.max())) if n else 0
    j = np.arange(length)[None, :]
    keep = np.minimum(counts, max_len)[:, None]
    valid = j < keep
    if rng is None:
        denom = np.maximum(keep - 1, 1)
        spaced = np.round(j * (counts[:, None] - 1) / denom).astype(np.int64)
        offsets = np.where(counts[:, None] > max_len, spaced, j)
    else:
        offsets = np.broadcast_to(j, (n, length)).copy()
        for r in np.flatnonzero(counts > max_len):
            offsets[r] = np.sort(rng.choice(counts[r], size=max_len, replace=False))
    return np.where(valid, offsets, 0), valid


def collate(
    prepared: PreparedLightCurves,
    rows: np.ndarray | None = None,
    *,
    max_len: int = 256,
    rng: np.random.Generator | None = None,
) -> LightCurveBatch:
    """Pad the curves ``rows`` of ``prepared`` into a :class:`LightCurveBatch` of at most ``max_len`` points.

    Parameters
    ----------
    prepared : PreparedLightCurves
    rows : ndarray of int, optional
        Curve indices (default all).
    max_len : int
        Longer curves are subsampled (see :func:`_take_indices`).
    rng : numpy Generator, optional
        Random subsampling (training); None: deterministic evenly spaced subsampling (inference).
    """
    rows = np.arange(len(prepared)) if rows is None else np.asarray(rows, dtype=np.int64)
    counts = prepared.counts[rows]
    offsets, valid = _take_indices(counts, max_len, rng)
    idx = prepared.starts[rows][:, None] + offsets

    def gather(a: np.ndarray, fill) -> np.ndarray:
        return np.where(valid, a[idx], fill)

    return LightCurveBatch(
        ids=prepared.ids[rows],
        dt=torch.from_numpy(gather(prepared.dt, 0.0)),
        value=torch.from_numpy(gather(prepared.value, np.float32(0))),
        err=torch.from_numpy(gather(prepared.err, np.float32(0))),
        band=torch.from_numpy(gather(prepared.band, 0)),
        epoch=torch.from_numpy(gather(prepared.epoch, -1)),
        mask=torch.from_numpy(valid),
        summary=torch.from_numpy(prepared.summary[rows]),
    )


def epoch_mask(batch: LightCurveBatch, fraction: float, rng: np.random.Generator) -> torch.Tensor:
    """Choose whole epochs to hide for masked reconstruction: ``(n, L)`` bool, True = hidden.

    Each epoch (all bands observed within the epoch window) is hidden with probability ``fraction``, so a
    hidden magnitude can never be copied from another band of the same epoch. A curve with at least two epochs
    always keeps one visible and hides at least one; a single-epoch curve hides nothing (it adds no loss).
    """
    epoch = batch.epoch.numpy()
    n = epoch.shape[0]
    n_epochs = (epoch.max(axis=1) + 1) if epoch.size else np.zeros(n, np.int64)
    width = int(max(n_epochs.max(initial=0), 1))
    u = rng.random((n, width))
    u[np.arange(width)[None, :] >= n_epochs[:, None]] = np.inf  # epochs that do not exist
    hidden = u < fraction
    rows = np.arange(n)
    multi = n_epochs >= 2
    none = multi & ~hidden.any(axis=1)
    hidden[rows[none], np.argmin(u[none], axis=1)] = True
    finite_u = np.where(np.isfinite(u), u, -np.inf)
    existing = np.arange(width)[None, :] < n_epochs[:, None]
    everything = multi & (hidden | ~existing).all(axis=1)
    hidden[rows[everything], np.argmax(finite_u[everything], axis=1)] = False
    hidden[~multi] = False
    out = np.take_along_axis(hidden, np.maximum(epoch, 0), axis=1) & (epoch >= 0)
    return torch.from_numpy(out)


def drop_epochs(batch: LightCurveBatch, fraction: float, rng: np.random.Generator) -> LightCurveBatch:
    """A view of ``batch`` with a random ``fraction`` of each curve's epochs turned into padding (contrastive views).

    Every curve keeps at least one epoch. The other tensors are shared with ``batch``; only ``mask`` and
    ``epoch`` are new.
    """
    epoch = batch.epoch.numpy()
    n = epoch.shape[0]
    n_epochs = (epoch.max(axis=1) + 1) if epoch.size else np.zeros(n, np.int64)
    width = int(max(n_epochs.max(initial=0), 1))
    u = rng.random((n, width))
    u[np.arange(width)[None, :] >= n_epochs[:, None]] = np.inf
    dropped = u < fraction
    rows = np.arange(n)
    dropped[rows, np.argmin(u, axis=1)] = False  # keep the epoch with the smallest draw
    drop = np.take_along_axis(dropped, np.maximum(epoch, 0), axis=1) & (epoch >= 0)
    keep = batch.mask & ~torch.from_numpy(drop)
    return LightCurveBatch(
        ids=batch.ids,
        dt=batch.dt,
        value=batch.value,
        err=batch.err,
        band=batch.band,
        epoch=torch.where(keep, batch.epoch, torch.full_like(batch.epoch, -1)),
        mask=keep,
        summary=batch.summary,
    )
