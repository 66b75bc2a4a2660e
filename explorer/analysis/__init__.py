"""The analysis engine, UI-free: 2-D projection, similarity search, selections, anomaly ranking with feedback.

Works on plain arrays plus an array of object ids; never imports Panel, HoloViews or Bokeh.
"""

from explorer.analysis.anomaly import ANOMALY, ARTEFACT, NORMAL, AnomalyScorer, discovery_curve
from explorer.analysis.neighbours import SimilarityIndex
from explorer.analysis.projection import Projector
from explorer.analysis.selection import (
    PointIndex,
    Selection,
    SelectionHistory,
    SelectionMode,
    combine,
    points_in_box,
    points_in_lasso,
)

__all__ = [
    "ANOMALY",
    "ARTEFACT",
    "NORMAL",
    "AnomalyScorer",
    "PointIndex",
    "Projector",
    "Selection",
    "SelectionHistory",
    "SelectionMode",
    "SimilarityIndex",
    "combine",
    "discovery_curve",
    "points_in_box",
    "points_in_lasso",
]
