"""Before/after a fine-tune: two maps side by side with the same objects highlighted, and what moved."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd

from explorer.app.data import ColourSpec
from explorer.app.plots import map_plot


def side_by_side(
    old: pd.DataFrame,
    new: pd.DataFrame,
    highlight_ids: np.ndarray,
    colour: str,
    titles: tuple[str, str] = ("before", "after"),
    height: int = 320,
) -> hv.Layout:
    """Two rasterized maps (``id, x, y`` frames), each with ``highlight_ids`` drawn over it."""
    panels = []
    for frame, title in ((old, titles[0]), (new, titles[1])):
        pts = map_plot.points_element(frame, None, ColourSpec("density", "count"), with_ids=False)
        base = map_plot.base_layer(
            pts, ColourSpec("density", "count"), hover=False, dynamic=False, width=400, height=height
        )
        rows = np.flatnonzero(pd.Index(frame["id"]).isin(pd.Index(np.asarray(highlight_ids, dtype=object))))
        x, y = frame["x"].to_numpy(np.float64), frame["y"].to_numpy(np.float64)
        view = (
            ((float(x.min()), float(x.max())), (float(y.min()), float(y.max())))
            if len(frame)
            else ((0, 1), (0, 1))
        )
        top = map_plot.highlight_layer(x[rows], y[rows], colour, *view, width=400, height=height)
        panels.append((base * top).opts(title=title, height=height, responsive=True, xaxis=None, yaxis=None))
    return hv.Layout(panels).cols(2)


def rank_changes(old_scores: pd.Series, new_scores: pd.Series, top: int = 20) -> pd.DataFrame:
    """Objects whose anomaly rank moved most: ``id, rank_before, rank_after, moved`` (rank 1 = most anomalous)."""
    both = pd.concat({"before": old_scores, "after": new_scores}, axis=1).dropna()
    if both.empty:
        return pd.DataFrame(columns=["id", "rank_before", "rank_after", "moved"])
    ranks = both.rank(ascending=False, method="first").astype(int)
    ranks["moved"] = ranks["before"] - ranks["after"]
    ranks = ranks.reindex(ranks["moved"].abs().sort_values(ascending=False).index[:top])
    return (
        ranks.rename(columns={"before": "rank_before", "after": "rank_after"}).rename_axis("id").reset_index()
    )
