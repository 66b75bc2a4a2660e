"""The live discovery curve: anomalies found against objects viewed (labelled), beside the random-order line."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd


def discovery_frame(labels_in_order: pd.Series, prevalence: float | None) -> pd.DataFrame:
    """``viewed, found, random`` per labelled object, in the order they were first labelled.

    Parameters
    ----------
    labels_in_order : Series
        The label each object got, in the order the objects were looked at.
    prevalence : float, optional
        The fraction of anomalies expected in random order; None: no random line.
    """
    is_anomaly = labels_in_order.astype(str).to_numpy() == "anomaly"
    viewed = np.arange(1, len(is_anomaly) + 1)
    found = np.cumsum(is_anomaly)
    rand = viewed * prevalence if prevalence is not None else np.full(len(viewed), np.nan)
    start = 0.0 if prevalence is not None else np.nan
    return pd.DataFrame({"viewed": np.r_[0, viewed], "found": np.r_[0, found], "random": np.r_[start, rand]})


def discovery_plot(curve: pd.DataFrame, height: int = 200, title: str = "Discovery") -> hv.Overlay:
    """Anomalies found (step line) and the random-order expectation (dashed); ``framewise`` so that the axes
    follow the curve when it is fed new points (:class:`~explorer.app.discovery_view.DiscoveryCurve`)."""
    found = hv.Curve(curve, "viewed", "found", label="found").opts(
        color="#e6194b", line_width=2, interpolation="steps-post", framewise=True
    )
    layers = [found]
    if curve["random"].notna().any():
        layers.append(
            hv.Curve(curve, "viewed", "random", label="random order").opts(
                color="#777", line_dash="dashed", framewise=True
            )
        )
    return hv.Overlay(layers).opts(
        height=height,
        responsive=True,
        title=title,
        toolbar=None,
        legend_position="top_left",
        xlabel="objects labelled",
        ylabel="anomalies found",
        show_grid=True,
    )
