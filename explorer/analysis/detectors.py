"""Several anomaly detectors, one ranking: each score becomes a tail significance, and an object keeps its best.

Detectors disagree in scale (a kNN distance, a residual in sigma, a line signal-to-noise) and in shape: the kNN
distance of ordinary objects has a long smooth tail, a hot-pixel statistic sits near 5 for every clean cutout and
jumps to 30 for a hit. Ranks alone would give every detector the same share of the top of the list, so a
detector whose outliers stand far apart could not claim only them and leave the rest to the others.

:func:`tail_significance` turns a score into "how many decades rarer than ordinary": ``-log10`` of its
empirical tail fraction in the bulk, and beyond the 90th percentile an exponential tail through the 90th and
99th percentiles (one decade per ``q99 - q90``), so a value far beyond anything ordinary keeps counting instead
of stopping at ``log10(n)``. A detector that looks at some of the objects only (light curves, cutouts) counts
its decades in the whole catalogue (:func:`catalogue_significance`): the top 1 % of 7,000 light curves is as rare
among 20,000 objects as the top 0.35 % of them, not the top 1 %, so it is not outranked by the top 1 % of the
20,000 cutouts. :func:`combine` takes the maximum over detectors (an object needs to be strange in one way, not
all), each first raised to its detection floor (:data:`FLOORS`: below it a statistic is no evidence). Measured
on the simulated survey (``benchmarks/bench_anomaly.py``) against ranks and other anchors:
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["FLOORS", "catalogue_significance", "combine", "describe", "floored", "significances", "tail_significance"]

BULK, TAIL = 0.90, 0.99

#: What each detector the default score runs looks for, in a few words (the app shows it beside "flagged by").
DESCRIPTIONS = {
    "hot_pixel": "pixels sharper than the PSF",
    "trail": "a straight line in one band",
    "ring": "a ring of light about the centre",
    "companion": "a companion of its colour, with asymmetric light",
    "arc": "a blue arc, with a counter-image, about a redder galaxy (a lens)",
    "variability": "variability unlike the other light curves'",
}


#: Below these values a detector's statistic is no evidence at all: it is raised to the floor, where every
#: ordinary object ties and counts ~0 decades (:func:`tail_significance`), instead of the rank-based ~3 decades
#: that the top ~20 of any statistic would otherwise get however ordinary they are. ``hot_pixel`` and ``trail``
#: are in noise units (5.5σ); ``ring`` is a contrast (0.02: 0.2 noise units on blank sky). On the simulated
#: survey (20k, seeds 0 / 1 / 2) the ~6,200 stars' cutouts (blank sky about a point source) reach at most 4.6 /
#: 5.1 / 0.021 and the brightest ordinary galaxies 5.2 / 6.6 / 0.15 (spirals' arms and pseudo-rings), every
#: injected artefact stands at 5.8 or more. The three detectors held 74-89 places of the top 1 % and now
#: 31-42, every artefact kept: 74 / 71 / 80 -> 75 / 72 / 82 oddities there (``benchmarks/RESULTS.md``).
FLOORS = {"hot_pixel": 5.5, "trail": 5.5, "ring": 0.02}


def floored(name: str, scores) -> np.ndarray:
    """``scores`` (float) with values below detector ``name``'s :data:`FLOORS` entry raised to it (NaN kept);
    unchanged for a detector without a floor."""
    v = np.asarray(scores, dtype=np.float64)
    floor = FLOORS.get(name)
    return v if floor is None else np.where(np.isnan(v), v, np.maximum(v, floor))


def describe(name: str) -> str | None:
    """A few words on what detector ``name`` looks for (``knn_<space>``: the kNN score of that embedding space);
    None for a detector this package does not know."""
    if name.startswith("knn_"):
        return f"far from its neighbours in the {name[4:]} embedding"
    return DESCRIPTIONS.get(name)


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

    # rarity of "at least this high": ties share the count of all of them (a detector's floor, where most objects
    # sit at one value, is not rare: it gets ~0, not the rank of the last of the tied)
    empirical = -np.log10((len(x) - rankdata(x, method="min") + 0.5) / len(x))
    lo, hi = np.quantile(x, [bulk, tail])
    if hi > lo:
        d0, d1 = -np.log10(1.0 - bulk), -np.log10(1.0 - tail)
        extrapolated = d0 + (x - lo) / (hi - lo) * (d1 - d0)
        empirical = np.where(x > lo, np.maximum(empirical, extrapolated), empirical)
    out[ok] = empirical
    return out


def catalogue_significance(scores) -> np.ndarray:
    """:func:`tail_significance` among the objects a detector applies to (finite scores), in decades of rarity
    in the whole catalogue: plus ``log10(n / n_applies)``, so that "as extreme as this" counts the same expected
    number of ordinary objects whichever population the detector looks at. 0 where it does not apply.

    Measured on the simulated survey (20k, seeds 0 / 1; light curves for ~7,100 of the objects; the default's
    seven detectors): 62 -> 63 and 53 -> 55 oddities in the top 1 % (``benchmarks/RESULTS.md``)."""
    v = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(v)
    out = tail_significance(v)
    if ok.any():
        out[ok] += np.log10(len(v) / ok.sum())
    return out


def combine(detectors: Mapping[str, np.ndarray], return_which: bool = False):
    """The maximum :func:`catalogue_significance` over ``detectors`` (name -> scores over the same objects, NaN
    where a detector does not apply); with ``return_which``, also the position (in ``detectors``) of the detector
    that gave each object its maximum."""
    columns = _floored_significances(detectors)
    if not columns:
        raise ValueError("no detector to combine")
    stacked = np.vstack(columns)
    best = stacked.max(axis=0)
    return (best, stacked.argmax(axis=0)) if return_which else best


def significances(detectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(n, len(detectors))`` float32 :func:`catalogue_significance`, one column per detector (0 where it does not
    apply):
    where each object stands in every detector's tail, the coordinates the live ranking's labels also spread in
    (:class:`~explorer.analysis.anomaly.AnomalyScorer`'s ``side_features``)."""
    return np.column_stack(_floored_significances(detectors)).astype(np.float32)


def _floored_significances(detectors: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """:func:`catalogue_significance` of each detector's scores, first raised to its :data:`FLOORS` entry."""
    return [catalogue_significance(floored(name, s)) for name, s in detectors.items()]
