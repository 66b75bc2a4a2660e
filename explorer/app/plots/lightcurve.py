"""Light curves as HoloViews overlays: points with error bars per band, raw or phase-folded at the Lomb–Scargle
period (astropy.timeseries), magnitudes drawn brighter-up."""

from __future__ import annotations

from dataclasses import dataclass

import holoviews as hv
import numpy as np
import pandas as pd

from explorer.app.plots.palette import band_colour

MIN_POINTS_FOR_PERIOD = 12


@dataclass(frozen=True)
class Period:
    """The best Lomb–Scargle period of a light curve.

    Attributes
    ----------
    period : float
        In the light curve's time unit (days for MJD).
    power : float
        Normalised periodogram peak (0–1).
    fap : float
        False-alarm probability of the peak (NaN when it could not be computed).
    """

    period: float
    power: float
    fap: float


def value_column(lc: pd.DataFrame) -> str:
    """``"mag"`` or ``"flux"``: which measurement the light curve holds."""
    return "mag" if "mag" in lc.columns else "flux"


def lomb_scargle_period(
    lc: pd.DataFrame, min_period: float = 0.05, max_period: float | None = None
) -> Period | None:
    """The Lomb–Scargle best period over all bands (each band centred on its median), or None if too few points.

    Parameters
    ----------
    lc : DataFrame
        Long form ``time, mag|flux, err, band``.
    min_period, max_period : float
        Search range in time units (default up to half the time span).
    """
    from astropy.timeseries import LombScargle

    col = value_column(lc)
    lc = lc[np.isfinite(lc["time"]) & np.isfinite(lc[col])]
    if len(lc) < MIN_POINTS_FOR_PERIOD:
        return None
    t = lc["time"].to_numpy(dtype=np.float64)
    y = lc[col].to_numpy(dtype=np.float64)
    y = (
        y - lc.groupby("band")[col].transform("median").to_numpy(dtype=np.float64)
        if "band" in lc
        else y - np.median(y)
    )
    dy = lc["err"].to_numpy(dtype=np.float64) if "err" in lc else None
    if dy is not None and not (np.isfinite(dy).all() and (dy > 0).all()):
        dy = None
    span = float(t.max() - t.min())
    if span <= 0:
        return None
    max_period = max_period or span / 2
    if max_period <= min_period:
        return None
    ls = LombScargle(t, y, dy)
    freq = np.linspace(1 / max_period, 1 / min_period, min(20_000, max(2_000, int(20 * span / min_period))))
    power = ls.power(freq)
    best = int(np.nanargmax(power))
    try:
        fap = float(
            ls.false_alarm_probability(power[best], minimum_frequency=freq[0], maximum_frequency=freq[-1])
        )
    except Exception:  # noqa: BLE001 - the FAP approximation can fail on odd sampling; the period stands
        fap = float("nan")
    return Period(float(1 / freq[best]), float(power[best]), fap)


def lightcurve_plot(
    lc: pd.DataFrame,
    period: float | None = None,
    title: str = "",
    height: int = 220,
    width: int | None = None,
    bands: list[str] | None = None,
    value: str | None = None,
    legend: bool = True,
) -> hv.Overlay:
    """Points with error bars per band; phase-folded (two cycles) when ``period`` is given.

    Parameters
    ----------
    lc : DataFrame
        Long form ``time, mag|flux, err, band`` (may be empty).
    bands : list of str, optional
        Every band to draw, in order (default: those in ``lc``). Passing the workspace's bands keeps the plot's
        structure fixed from object to object, so a live view only swaps data.
    value : str, optional
        ``"mag"`` or ``"flux"`` (default: what ``lc`` holds). Magnitudes are drawn brighter (smaller) up.
    legend : bool
        Show the band legend.
    """
    col = value or value_column(lc)
    if bands is None:
        bands = sorted(lc["band"].astype(str).unique()) if "band" in lc and len(lc) else ["all"]
    xname = "phase" if period else "time"
    t0 = float(lc["time"].min()) if len(lc) else 0.0
    layers = []
    for i, band in enumerate(bands):
        part = lc[lc["band"].astype(str) == band] if "band" in lc else lc
        t = part["time"].to_numpy(dtype=np.float64)
        y = part[col].to_numpy(dtype=np.float64) if col in part else np.empty(0)
        e = part["err"].to_numpy(dtype=np.float64) if "err" in part else np.zeros(len(part))
        if period:
            t = ((t - t0) / period) % 1.0
            t, y, e = np.r_[t, t + 1], np.r_[y, y], np.r_[e, e]
        df = pd.DataFrame({xname: t, col: y, "err": np.nan_to_num(e)})
        colour = band_colour(band, i)
        layers.append(
            hv.ErrorBars(df, xname, [col, "err"]).opts(color=colour, line_alpha=0.5, framewise=True)
        )
        layers.append(hv.Scatter(df, xname, col, label=str(band)).opts(color=colour, size=4, framewise=True))
    return hv.Overlay(layers).opts(
        title=title,
        height=height,
        responsive=width is None,
        legend_position="top_right",
        invert_yaxis=col == "mag",
        toolbar=None,
        show_grid=True,
        framewise=True,
        xticks=3,
        fontsize={"title": "10pt", "legend": "8pt", "labels": "9pt", "ticks": "8pt"},
        legend_opts={"background_fill_alpha": 0.5, "padding": 2, "spacing": 0},
        xlabel="phase" if period else "time (MJD)",
        show_legend=legend,
        **({"width": width} if width else {}),
    )
