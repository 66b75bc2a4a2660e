"""Several anomaly detectors, one ranking: each score becomes a tail significance, and an object keeps its best.

Detectors disagree in scale (a kNN distance, a residual in sigma, a line signal-to-noise) and in shape: the kNN
distance of ordinary objects has a long smooth tail, a hot-pixel statistic sits near 5 for every clean cutout and
jumps to 30 for a hit. Ranks alone would give every detector the same share of the top of the list, so a
detector whose outliers stand far apart could not claim only them and leave the rest to the others.

:func:`tail_significance` turns a score into "how many decades rarer than ordinary": ``-log10`` of its
empirical tail fraction in the bulk, and beyond the 90th percentile an exponential tail through the 90th and
99th percentiles (one decade per ``q99 - q90``), so a value far beyond anything ordinary keeps counting instead
of stopping at ``log10(n)``. :func:`combine` takes the maximum over detectors (an object needs to be strange in
one way, not all). Measured on the simulated survey (``benchmarks/bench_anomaly.py``) against ranks and other
anchors: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["combine", "significances", "tail_significance"]

BULK, TAIL = 0.90, 0.99


def tail_significance(scores, bulk: float = BULK, tail: float = TAIL) -> np.ndarray:
    """Decades of rarity of each score (higher = rarer); NaN scores (detector does not apply) get 0.

    Parameters
    ----------
    scores : array-like
        One detector's scores, higher = more anomalous.
    bulk, tail : float
        Quantiles through which the exponential tail is drawn: ``bulk`` is 1 decade (for 0.9), ``tail`` 2.
    """
    v = np.asarray(scores, dtype=np.float64)
    out = np.zeros(len(v))
    ok = np.isfinite(v)
    x = v[ok]
    if len(x) == 0:
        return out
    from scipy.stats import rankdata

    empirical = -np.log10(1.0 - rankdata(x, method="max") / len(x) + 0.5 / len(x))
    lo, hi = np.quantile(x, [bulk, tail])
    if hi > lo:
        d0, d1 = -np.log10(1.0 - bulk), -np.log10(1.0 - tail)
        extrapolated = d0 + (x - lo) / (hi - lo) * (d1 - d0)
        empirical = np.where(x > lo, np.maximum(empirical, extrapolated), empirical)
    out[ok] = empirical
    return out


def combine(detectors: Mapping[str, np.ndarray], return_which: bool = False):
    """The maximum tail significance over ``detectors`` (name -> scores over the same objects, NaN where a
    detector does not apply); with ``return_which``, also the position (in ``detectors``) of the detector that
    gave each object its maximum."""
    columns = [tail_significance(s) for s in detectors.values()]
    if not columns:
        raise ValueError("no detector to combine")
    stacked = np.vstack(columns)
    best = stacked.max(axis=0)
    return (best, stacked.argmax(axis=0)) if return_which else best


def significances(detectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(n, len(detectors))`` float32 tail significances, one column per detector (0 where it does not apply):
    where each object stands in every detector's tail, the coordinates the live ranking's labels also spread in
    (:class:`~explorer.analysis.anomaly.AnomalyScorer`'s ``side_features``)."""
    return np.column_stack([tail_significance(s) for s in detectors.values()]).astype(np.float32)
