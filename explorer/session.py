"""The state one user shares across the dashboard's parts: selection (with modes and undo), focus, colouring.

A :class:`Session` is a ``param.Parameterized`` with no Panel in it: the map, inspector, labeller and the other
parts watch its parameters and call its methods; none of them talks to another directly. Selections are value
objects (:class:`explorer.analysis.selection.Selection`, a geometry on one map version) resolved to ids on the
server by the shared :class:`~explorer.analysis.selection.PointIndex`.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd
import param

from explorer.analysis.selection import Selection, SelectionHistory, SelectionMode, combine

GALLERY_SOURCES = ("selection", "similar", "candidates")
SORTS = ("anomaly score", "similarity", "catalogue order")
MAX_CANDIDATES = 500


def _ids(values: Any) -> np.ndarray:
    return np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object)


class Session(param.Parameterized):
    """One user's view of a workspace: what is selected, focused, shown in the gallery and how the map is coloured.

    Parameters
    ----------
    data : AppData-like
        Shared data with ``index`` (a PointIndex or None), ``map_version``, ``score_of(ids)`` and, for
        candidates, ``frame`` and ``scores``.
    user : str
        Who labels in this session.

    Notes
    -----
    Every change goes through a method (``select``, ``undo``, ``focus``...) that sets the parameters in one
    ``param.update`` so watchers see one consistent event.
    """

    selected_ids = param.Array(default=np.empty(0, dtype=object), doc="Ids selected now (catalogue order).")
    selection = param.ClassSelector(
        class_=Selection,
        default=None,
        allow_None=True,
        doc="The geometry behind the selection (None: nothing or explicit ids).",
    )
    mode = param.Selector(
        default="replace",
        objects=[m.value for m in SelectionMode],
        doc="How the next lasso/box/tap meets the current selection.",
    )
    focused_id = param.String(default=None, allow_None=True, doc="The object shown in detail.")
    colour_by = param.Selector(
        default=None,
        objects=[],
        allow_None=True,
        doc="Map colouring (density, a catalogue column, label, anomaly score).",
    )
    similar = param.DataFrame(
        default=None, allow_None=True, doc="Last find-similar result: id, similarity, rank."
    )
    gallery_source = param.Selector(default="selection", objects=list(GALLERY_SOURCES))
    sort_by = param.Selector(default="anomaly score", objects=list(SORTS))
    gallery_ids = param.Array(default=np.empty(0, dtype=object), doc="Ids in gallery order (derived).")
    labels_version = param.Integer(default=0, doc="Bumped whenever labels change (this or another session).")
    ranking = param.Array(
        default=None,
        allow_None=True,
        doc="Live anomaly score per map row (re-learnt from labels); None: saved scores.",
    )
    can_undo = param.Boolean(default=False)
    can_redo = param.Boolean(default=False)
    message = param.String(default="", doc="The latest notice for the user (errors name the fix).")
    user = param.String(default="anonymous")
    session_id = param.String(default="")

    def __init__(self, data: Any = None, **params: Any) -> None:
        params.setdefault("session_id", uuid.uuid4().hex[:12])
        super().__init__(**params)
        self.data = data
        options = getattr(data, "colour_options", None)
        if options is not None and not self.param.colour_by.objects:
            names = list(options())
            self.param.colour_by.objects = names
            if self.colour_by not in names:
                self.colour_by = next(
                    (n for n in ("class", "anomaly score", "label") if n in names), names[0]
                )
        self.history = SelectionHistory()
        self._resolved: dict[int, tuple[Selection | None, np.ndarray]] = {id(None): (None, _ids([]))}
        self._update_gallery()

    # ------------------------------------------------------------------ selection
    @property
    def n_selected(self) -> int:
        return len(self.selected_ids)

    @property
    def map_version(self) -> str | None:
        return getattr(self.data, "map_version", None)

    def select(self, selection: Selection, mode: str | None = None) -> np.ndarray:
        """Resolve ``selection`` on the map and meet it with the current one by ``mode`` (default: ``self.mode``).

        Returns the ids selected afterwards. The change can be undone with :meth:`undo`.
        """
        index = getattr(self.data, "index", None)
        if index is None:
            self.message = "Nothing to select on: this workspace has no map yet (run `explorer map WS`)."
            return self.selected_ids
        new_ids = selection.resolve(index)
        return self._apply(selection, new_ids, mode)

    def select_ids(self, ids: Any, mode: str | None = None) -> np.ndarray:
        """Select explicit ids (e.g. find-similar results) by ``mode``; undoable like a drawn selection."""
        ids = _ids(ids)
        return self._apply(Selection.from_ids(ids.tolist()), ids, mode)

    def _apply(self, selection: Selection, new_ids: np.ndarray, mode: str | None) -> np.ndarray:
        mode = SelectionMode(mode or self.mode)
        combined = combine(self.selected_ids, new_ids, mode)
        index = getattr(self.data, "index", None)
        if index is not None and mode is not SelectionMode.REPLACE and len(combined):
            combined = index.ids[np.sort(index.rows_of(combined, missing="drop"))]
        state = self.history.apply(selection, mode)
        self._remember(state, combined)
        self._set_selected(state, combined)
        return combined

    def _remember(self, state: Selection | None, ids: np.ndarray) -> None:
        self._resolved[id(state)] = (state, ids)
        if len(self._resolved) > self.history.max_len + 20:
            for key in list(self._resolved)[: len(self._resolved) - self.history.max_len - 20]:
                if key != id(None):
                    del self._resolved[key]

    def _ids_of(self, state: Selection | None) -> np.ndarray:
        cached = self._resolved.get(id(state))
        if cached is not None and cached[0] is state:
            return cached[1]
        index = getattr(self.data, "index", None)
        ids = _ids([]) if state is None or index is None else state.resolve(index)
        self._remember(state, ids)
        return ids

    def _set_selected(self, state: Selection | None, ids: np.ndarray, **extra: Any) -> None:
        focus = self.focused_id
        if len(ids) and (focus is None or not np.any(ids == focus)):
            focus = self._best_first(ids)
        n = len(ids)
        self.param.update(
            selection=state,
            selected_ids=ids,
            gallery_source="selection",
            can_undo=self.history.can_undo,
            can_redo=self.history.can_redo,
            focused_id=focus if n else self.focused_id,
            message=f"{n:,} selected" if n else "Selection cleared.",
            **extra,
        )

    def _best_first(self, ids: np.ndarray) -> str | None:
        order = self.order(ids)
        return None if not len(order) else str(order[0])

    def clear(self) -> None:
        """Select nothing (undoable)."""
        self.history.clear()
        self._set_selected(None, _ids([]))

    def undo(self) -> np.ndarray:
        """Go back to the selection before the last change."""
        if not self.history.can_undo:
            self.message = "Nothing to undo."
            return self.selected_ids
        state = self.history.undo()
        ids = self._ids_of(state)
        self._set_selected(state, ids)
        return ids

    def redo(self) -> np.ndarray:
        """Re-apply a change that was undone."""
        if not self.history.can_redo:
            self.message = "Nothing to redo."
            return self.selected_ids
        state = self.history.redo()
        ids = self._ids_of(state)
        self._set_selected(state, ids)
        return ids

    # ------------------------------------------------------------------ ordering and gallery
    def scores_of(self, ids: np.ndarray) -> np.ndarray:
        """The live anomaly score of ``ids`` (the re-learnt ranking if any, else the saved scores)."""
        ids = _ids(ids)
        if self.ranking is not None and getattr(self.data, "index", None) is not None:
            lookup = getattr(self.data, "frame_rows", None)
            rows = lookup(ids) if lookup is not None else self.data.index.rows_of(ids, missing="drop")
            if len(rows) == len(ids):
                return np.asarray(self.ranking)[rows]
        score_of = getattr(self.data, "score_of", None)
        return score_of(ids) if score_of is not None else np.full(len(ids), np.nan)

    def order(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` in gallery order: by ``sort_by`` (most anomalous / most similar first)."""
        ids = _ids(ids)
        if self.sort_by == "anomaly score" and len(ids):
            scores = self.scores_of(ids)
            if np.isfinite(scores).any():
                return ids[np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")]
        if self.sort_by == "similarity" and self.similar is not None and len(ids):
            sim = pd.Series(self.similar["similarity"].to_numpy(), index=pd.Index(self.similar["id"]))
            values = sim.reindex(pd.Index(ids)).to_numpy(dtype=np.float64)
            return ids[np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")]
        return ids

    @param.depends("selected_ids", "similar", "gallery_source", "sort_by", "ranking", watch=True)
    def _update_gallery(self) -> None:
        if self.gallery_source == "similar":
            ids = _ids([]) if self.similar is None else _ids(self.similar["id"])
            ids = ids if self.sort_by != "anomaly score" else self.order(ids)
        elif self.gallery_source == "candidates":
            ids = self.candidates()
        else:
            ids = self.order(self.selected_ids)
        self.gallery_ids = ids

    def candidates(self, n: int = MAX_CANDIDATES) -> np.ndarray:
        """The ``n`` most anomalous objects nobody has labelled yet (for active discovery)."""
        frame = getattr(self.data, "frame", None)
        if frame is None or not len(frame):
            return _ids([])
        scores = self.ranking if self.ranking is not None else getattr(self.data, "scores", None)
        if scores is None:
            return _ids([])
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
        labelled = getattr(self.data, "labelled_mask", None)
        if labelled is not None:
            scores = np.where(labelled(), -np.inf, scores)
        k = min(n, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.isfinite(scores[top])]
        top = top[np.argsort(-scores[top], kind="stable")]
        return frame["id"].to_numpy(dtype=object)[top]

    def show(self, source: str) -> None:
        """Show ``source`` (selection, similar, candidates) in the gallery."""
        self.gallery_source = source

    # ------------------------------------------------------------------ focus
    def focus(self, object_id: str | None) -> None:
        """Show ``object_id`` in detail."""
        self.focused_id = None if object_id is None else str(object_id)

    def step_focus(self, delta: int) -> str | None:
        """Move the focus ``delta`` places along the gallery (j = +1, k = -1); returns the new focus."""
        ids = self.gallery_ids
        if not len(ids):
            self.message = "The gallery is empty: select objects on the map first."
            return self.focused_id
        where = np.flatnonzero(ids == self.focused_id) if self.focused_id is not None else []
        pos = int(where[0]) + int(delta) if len(where) else 0
        pos = min(max(pos, 0), len(ids) - 1)
        self.focused_id = str(ids[pos])
        return self.focused_id

    # ------------------------------------------------------------------ similar and labels
    def set_similar(self, result: pd.DataFrame, query: str) -> None:
        """Show a find-similar result in the gallery and on the map."""
        focus = str(result["id"].iloc[0]) if len(result) else self.focused_id
        self.param.update(
            similar=result,
            gallery_source="similar",
            sort_by="similarity",
            focused_id=focus,
            message=f"{len(result)} objects similar to {query}.",
        )

    def labels_changed(self) -> None:
        """Tell every watcher that labels changed (map colours, gallery badges, discovery curve)."""
        self.labels_version += 1

    def notify(self, text: str) -> None:
        """Show ``text`` to the user."""
        self.message = text
