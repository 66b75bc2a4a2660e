"""The live anomaly ranking: one per process, shared by every session, re-learnt from all labels after each one.

It wraps :class:`explorer.analysis.anomaly.AnomalyScorer` (fitted once, lazily, on the saved embeddings) and
hands back scores aligned on the map's rows (higher = more anomalous).
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pandas as pd


def ranking_available() -> bool:
    """Whether the active-learning ranker (:mod:`explorer.analysis.anomaly`) is installed."""
    return importlib.util.find_spec("explorer.analysis.anomaly") is not None


class LiveRanking:
    """Anomaly scores that follow the labels.

    Parameters
    ----------
    data : AppData
        The shared workspace data (embeddings, map rows, label store).
    """

    def __init__(self, data) -> None:
        self.data = data
        self.scorer_ = None
        self.scores_: np.ndarray | None = None
        self.n_labels_ = 0
        self._lock = threading.Lock()

    @property
    def reason_unavailable(self) -> str | None:
        """Why the ranking cannot re-learn here, or None."""
        if self.data.embeddings is None:
            return "the ranking cannot re-learn without embeddings (run `explorer embed WS`)"
        if not ranking_available():
            return "the ranking cannot re-learn yet: explorer.analysis.anomaly is not installed"
        if not self.data.has_map:
            return "the ranking needs a map to show its scores (run `explorer map WS`)"
        return None

    def relearn(self) -> np.ndarray | None:
        """Update the ranker with every current label; returns scores per map row (None if unavailable)."""
        if self.reason_unavailable:
            return None
        with self._lock:
            emb = self.data.embeddings
            if self.scorer_ is None:
                from explorer.analysis.anomaly import AnomalyScorer

                self.scorer_ = AnomalyScorer(random_state=0).fit(np.asarray(emb.vectors), emb.ids)
            store = self.data.labels
            labels = {}
            if store is not None:
                current = store.current()
                known = current["id"].isin(pd.Index(emb.ids))
                labels = dict(
                    zip(current["id"][known].astype(str), current["label"][known].astype(str), strict=True)
                )
            gone = {oid: None for oid in self.scorer_.labels_ if oid not in labels}  # undone since last time
            self.scorer_.update({**gone, **labels})
            raw = np.asarray(self.scorer_.score_samples(), dtype=np.float64)
            series = pd.Series(raw, index=pd.Index(emb.ids))
            self.scores_ = series.reindex(pd.Index(self.data.frame["id"])).to_numpy(dtype=np.float64)
            self.n_labels_ = len(labels)
            return self.scores_


def live_ranking(data) -> LiveRanking:
    """The process-wide :class:`LiveRanking` of ``data`` (created on first use)."""
    with data._lock:
        ranking = getattr(data, "_live_ranking", None)
        if ranking is None:
            ranking = LiveRanking(data)
            data._live_ranking = ranking
        return ranking
