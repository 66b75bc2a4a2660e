"""The live anomaly ranking: one per process, shared by every session, re-learnt from all labels after each one.

It wraps :class:`explorer.analysis.anomaly.AnomalyScorer` (fitted once, lazily, on the saved embeddings) and
hands back scores aligned on the map's rows (higher = more anomalous).
"""

from __future__ import annotations

import importlib.util
import json
import threading

import numpy as np
import pandas as pd


def ranking_available() -> bool:
    """Whether the active-learning ranker (:mod:`explorer.analysis.anomaly`) is installed."""
    return importlib.util.find_spec("explorer.analysis.anomaly") is not None


#: The live ranker holds every embedding as float32 in the server (plus a norm per object); above this it is
#: off (labels are still saved): 10M x 64 would be 2.6 GB, against a 3 GB budget for the whole 10M server.
LIVE_RANKING_MAX_BYTES = 1 << 30


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
        self.from_saved_scores_ = False
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
        n, d = self.data.embeddings.vectors.shape
        if n * d * 4 > LIVE_RANKING_MAX_BYTES:
            return (
                f"the ranking does not re-learn live here: its {n:,} x {d} vectors would take "
                f"{n * d * 4 / 2**30:.1f} GB of server memory (limit {LIVE_RANKING_MAX_BYTES / 2**30:.1f} GB, "
                "explorer.app.ranking.LIVE_RANKING_MAX_BYTES); labels are saved as usual"
            )
        return None

    def prepare(self) -> bool:
        """Fit the ranker without labels (once; a no-op after), so the first label only updates it.

        At 1M objects the fit holds the interpreter for ~1.6 s; the server calls this at warm-up rather than
        on the first label, when it would stall every session of the process. Returns False if unavailable.
        """
        if self.reason_unavailable:
            return False
        with self._lock:
            self._fit_once()
        return True

    def _fit_once(self) -> None:
        if self.scorer_ is not None:
            return
        from explorer.analysis.anomaly import AnomalyScorer

        emb = self.data.embeddings
        scorer = AnomalyScorer(random_state=0)
        saved = load_saved_scores(self.data.ws, emb)  # one read: the prior and the detectors' columns
        prior = saved_prior_scores(self.data.ws, emb, scorer.get_params(), saved=saved)
        self.from_saved_scores_ = prior is not None
        side = saved_significances(self.data.ws, emb, saved=saved) if prior is not None else None
        self.detector_names_ = detector_names(saved) if side is not None else []
        # the detectors' significances: a label also says how far to trust the detector that flagged the object
        self.scorer_ = scorer.fit(np.asarray(emb.vectors), emb.ids, prior_scores=prior, side_features=side,
                                  detectors=side)
        # built once: positions of the map's rows among the embedded ids (no per-label work over all ids)
        self._index = pd.Index(np.asarray(emb.ids, dtype=object))
        self._frame_pos = self._index.get_indexer(self.data.frame["id"].to_numpy(dtype=object))

    def relearn(self) -> np.ndarray | None:
        """Update the ranker with every current label; returns scores per map row (None if unavailable)."""
        if self.reason_unavailable:
            return None
        with self._lock:
            self._fit_once()
            store = self.data.labels
            labels = {}
            if store is not None:
                current = store.current()
                ids = current["id"].to_numpy(dtype=object)
                known = self._index.get_indexer(ids) >= 0
                labels = dict(
                    zip(
                        ids[known].astype(str),
                        current["label"].to_numpy(dtype=object)[known].astype(str),
                        strict=True,
                    )
                )
            gone = {oid: None for oid in self.scorer_.labels_ if oid not in labels}  # undone since last time
            self.scorer_.update({**gone, **labels})
            raw = np.asarray(self.scorer_.score_samples(), dtype=np.float64)
            pos = self._frame_pos
            self.scores_ = np.full(len(pos), np.nan)
            self.scores_[pos >= 0] = raw[pos[pos >= 0]]
            self.n_labels_ = len(labels)
            names = getattr(self, "detector_names_", [])
            self._trust = dict(zip(names, map(float, self.scorer_.detector_trust()), strict=True)) if names else {}
            return self.scores_

    def trust(self) -> dict[str, float]:
        """What the labels, as of the last :meth:`relearn`, add to each saved detector's significances (decades;
        negative: its objects were called normal more than anomalous), by detector name; empty before the first
        re-learn or without detectors. Never waits for a re-learn in progress."""
        return dict(getattr(self, "_trust", {}))


def load_saved_scores(ws, emb, detectors: bool = True) -> tuple[pd.DataFrame, dict] | None:
    """The current scores (``score`` and, with ``detectors``, each detector's column) aligned on ``emb``'s ids
    (NaN where an id has none), and their metadata; one read for the live ranking's start. None if there are none
    or they cannot be read."""
    try:
        meta = ws.versions("scores")[ws.current("scores")]
        names = [n for n in (meta.get("detectors") or []) if detectors]
        table, meta = ws.scores(columns=("id", "score", *names))
    except Exception:  # noqa: BLE001 -- no scores yet, or unreadable: the ranker computes its own
        return None
    table = table.drop_duplicates("id")
    return table.set_index(table["id"].astype(str)).reindex(pd.Index(np.asarray(emb.ids).astype(str))), meta


def saved_prior_scores(ws, emb, params: dict, saved=None) -> np.ndarray | None:
    """The workspace's saved scores of ``emb``'s objects when they came from the same embeddings, space and kNN
    parameters as the live ranker's, so it starts from them instead of one more kNN search (minutes at 1M).
    ``saved``: what :func:`load_saved_scores` returned, if already read."""
    if params.get("method") != "knn":
        return None
    saved = load_saved_scores(ws, emb, detectors=False) if saved is None else saved
    if saved is None:
        return None
    aligned, meta = saved
    same = json.loads(json.dumps(params, default=str)) == meta.get("params")
    if not same or meta.get("embeddings") != emb.version or meta.get("space", "joint") != emb.space:
        return None
    scores = aligned["score"].to_numpy(np.float64)
    return None if not np.isfinite(scores).all() else scores


def saved_significances(ws, emb, saved=None) -> np.ndarray | None:
    """Each saved detector's tail significance for ``emb``'s objects (``(n, detectors)``, 0 where one does not
    apply), when the current scores combined several: labels then spread to objects flagged alike
    (:class:`~explorer.analysis.anomaly.AnomalyScorer`'s ``side_features``). None with a single detector.
    ``saved``: what :func:`load_saved_scores` returned, if already read."""
    from explorer.analysis.detectors import significances

    saved = load_saved_scores(ws, emb) if saved is None else saved
    if saved is None:
        return None
    aligned, _ = saved
    names = detector_names(saved)
    return significances({n: aligned[n].to_numpy(np.float64) for n in names}) if len(names) >= 2 else None


def detector_names(saved) -> list[str]:
    """The detectors of :func:`load_saved_scores`' result whose columns were read, in the saved order (the
    columns of :func:`saved_significances`)."""
    aligned, meta = saved
    return [n for n in (meta.get("detectors") or []) if n in aligned]


def live_ranking(data) -> LiveRanking:
    """The process-wide :class:`LiveRanking` of ``data`` (created on first use)."""
    with data._lock:
        ranking = getattr(data, "_live_ranking", None)
        if ranking is None:
            ranking = LiveRanking(data)
            data._live_ranking = ranking
        return ranking
