"""Where objects lie on the sky: the catalogue as a faint background, the selection and the focused object on top."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd

from explorer.app.plots.palette import FOCUS, SELECTION

MAX_DRAWN = 5_000


def thin(frame: pd.DataFrame, n: int = MAX_DRAWN, seed: int = 0) -> pd.DataFrame:
    """At most ``n`` rows (a fixed random subset), so the sky plot stays light at any catalogue size."""
    if len(frame) <= n:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), n, replace=False))
    return frame.iloc[rows]


def _points(df: pd.DataFrame) -> hv.Points:
    df = df[["ra", "dec"]].dropna() if len(df) else pd.DataFrame({"ra": [], "dec": []})
    return hv.Points(thin(df), ["ra", "dec"])


def background_points(background: pd.DataFrame) -> hv.Points:
    """The catalogue as faint dots (thinned to :data:`MAX_DRAWN`): drawn once, it never changes with the
    selection."""
    return _points(background).opts(color="#c3c9d3", size=2, alpha=0.6)


def selection_layers(selected: pd.DataFrame, focus: tuple[float, float] | None = None) -> hv.Overlay:
    """The selection (thinned to :data:`MAX_DRAWN`) and the focused object as a ring."""
    ring = [focus] if focus is not None and all(np.isfinite(focus)) else []
    return hv.Overlay(
        [
            _points(selected).opts(color=SELECTION, size=3, alpha=0.8),
            hv.Points(ring, ["ra", "dec"]).opts(color=FOCUS, fill_alpha=0, line_width=2, size=14),
        ]
    )


def sky_options(height: int = 220, title: str = "") -> dict:
    """Plot options of the sky overlay: RA increasing to the left, as on the sky."""
    return dict(
        height=height,
        responsive=True,
        invert_xaxis=True,
        title=title,
        toolbar=None,
        xlabel="RA (deg)",
        ylabel="Dec (deg)",
        show_grid=True,
    )


def sky_plot(
    background: pd.DataFrame,
    selected: pd.DataFrame,
    focus: tuple[float, float] | None = None,
    height: int = 220,
    title: str = "",
) -> hv.Overlay:
    """RA/Dec in degrees, RA increasing to the left as on the sky.

    Parameters
    ----------
    background, selected : DataFrame
        ``ra, dec`` columns (rows with NaN are skipped); both are thinned to :data:`MAX_DRAWN` points.
    focus : (ra, dec), optional
        The focused object, drawn as a ring.
    """
    return (background_points(background) * selection_layers(selected, focus)).opts(
        **sky_options(height, title)
    )
