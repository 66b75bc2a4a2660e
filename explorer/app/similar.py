"""The find-similar part: "more like this object" or "more like these (the selection), not like those (objects
labelled normal or artefact)", answered by the shared similarity index and shown in the gallery and on the map."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import panel as pn
import param

from explorer.app.background import batch_callback
from explorer.app.data import AppData
from explorer.errors import ExplorerError
from explorer.session import Session

NEGATIVE_LABELS = ("normal", "artefact")
MAX_POSITIVES = 5_000
MAX_NEGATIVES = 2_000


def neighbours_available() -> bool:
    """Whether the similarity engine (:mod:`explorer.analysis.neighbours`) is installed."""
    return importlib.util.find_spec("explorer.analysis.neighbours") is not None


class SimilarPanel(pn.viewable.Viewer):
    """Buttons that query the similarity index from the focused object or from the selection.

    Parameters
    ----------
    session : Session
    data : AppData
    """

    session = param.ClassSelector(class_=Session)
    k = param.Integer(default=48, bounds=(1, 1000), doc="How many similar objects to return.")
    use_negatives = param.Boolean(default=True, doc="Steer away from objects labelled normal or artefact.")

    def __init__(self, session: Session, data: AppData, **params):
        super().__init__(session=session, **params)
        self.data = data
        self._from_focus = pn.widgets.Button(label="Similar to focused", color="primary", width=150)
        self._from_selection = pn.widgets.Button(label="Similar to selection", color="primary", width=150)
        self._k = pn.widgets.IntInput.from_param(self.param.k, label="k", width=70)
        self._neg = pn.widgets.Checkbox.from_param(self.param.use_negatives, label="not like normal/artefact")
        self._from_focus.on_click(batch_callback(lambda _e: self.from_focused()))
        self._from_selection.on_click(batch_callback(lambda _e: self.from_selection()))
        reason = self.unavailable_reason()
        if reason:
            for b in (self._from_focus, self._from_selection):
                b.disabled = True
                b.description = reason

    def unavailable_reason(self) -> str | None:
        """Why find-similar cannot run here, or None."""
        if self.data.embeddings is None:
            return self.data.notes.get(
                "embeddings", "This workspace has no embeddings; run `explorer embed WS`."
            )
        if not neighbours_available():
            return "Find similar is not available yet: explorer.analysis.neighbours is not installed."
        return None

    # ------------------------------------------------------------------ queries
    def negatives(self, exclude: np.ndarray) -> list[str]:
        """Objects labelled normal or artefact (most recent first), not among ``exclude``."""
        store = self.data.labels
        if store is None or not self.use_negatives:
            return []
        current = store.current()
        neg = (
            current.loc[current["label"].isin(NEGATIVE_LABELS), "id"].astype(str).to_numpy(dtype=object)[::-1]
        )
        neg = neg[~np.isin(neg, exclude)]
        return neg[:MAX_NEGATIVES].tolist()

    def query(
        self, positives: list[str], query_name: str, negatives: list[str] | None = None
    ) -> pd.DataFrame | None:
        """Run the index for ``positives`` (and away from ``negatives``); put the result in the session."""
        reason = self.unavailable_reason()
        if reason:
            self.session.notify(reason)
            return None
        if not positives:
            self.session.notify("Nothing to search from: focus an object or select some on the map first.")
            return None
        negatives = negatives or []
        known = [p for p, ok in zip(positives, self.data.embedded(positives), strict=True) if ok]
        if not known:
            self.session.notify(f"{query_name} has no embedding vector; choose objects that were embedded.")
            return None
        try:
            index = self.data.similarity_index()
            result = index.query(
                known[:MAX_POSITIVES],
                negative_ids=[
                    n for n, ok in zip(negatives, self.data.embedded(negatives), strict=True) if ok
                ],
                k=self.k,
            )
        except ExplorerError as err:
            self.session.notify(str(err))
            return None
        result = result.reset_index(drop=True)
        result["id"] = result["id"].astype(object)
        self.session.set_similar(result, query_name)
        return result

    def from_focused(self) -> pd.DataFrame | None:
        """Objects most like the focused one."""
        fid = self.session.focused_id
        return self.query([] if fid is None else [fid], f"object {fid}")

    def from_selection(self) -> pd.DataFrame | None:
        """Objects most like the selection, and unlike objects labelled normal or artefact."""
        ids = [str(i) for i in self.session.selected_ids]
        store = self.data.labels
        if store is not None and ids and self.use_negatives:
            labelled = store.label_of(ids)
            ids = [i for i in ids if labelled.get(i) not in NEGATIVE_LABELS]
        negatives = self.negatives(np.asarray(ids, dtype=object))
        return self.query(ids, f"the selection ({len(ids):,} objects)", negatives)

    def __panel__(self):
        reason = self.unavailable_reason()
        note = pn.pane.HTML(f"<small style='color:#a33'>{reason}</small>") if reason else None
        row = pn.Row(
            self._from_focus,
            self._from_selection,
            self._k,
            self._neg,
            align="center",
            sizing_mode="stretch_width",
        )
        return pn.Column(row, note, sizing_mode="stretch_width") if note else row
