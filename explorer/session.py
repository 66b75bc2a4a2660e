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
    selected_rows = param.Array(
        default=np.empty(0, dtype=np.int64),
        doc="Map rows (rows of the map's PointIndex, ascending) of the selected objects; set with selected_ids.",
    )
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
        self._resolved: dict[int, tuple] = {id(None): (None, _ids([]), np.empty(0, np.int64))}
        self._update_gallery()

    # ------------------------------------------------------------------ selection
    @property
    def n_selected(self) -> int:
        """Number of objects selected now."""
        return len(self.selected_ids)

    @property
    def map_version(self) -> str | None:
        """Version of the map the session's data comes from, ``None`` when there is none."""
        return getattr(self.data, "map_version", None)

    def _index(self):
        return getattr(self.data, "index", None)

    def _map_rows(self, ids: np.ndarray) -> np.ndarray:
        """Map rows of ``ids`` (those not on the map dropped), through the data's shared lookup when it has one."""
        lookup = getattr(self.data, "frame_rows", None)
        return lookup(ids) if lookup is not None else self._index().rows_of(ids, missing="drop")

    def select(self, selection: Selection, mode: str | None = None) -> np.ndarray:
        """Resolve ``selection`` on the map and meet it with the current one by ``mode`` (default: ``self.mode``).

        Returns the ids selected afterwards. The change can be undone with :meth:`undo`.
        """
        index = self._index()
        if index is None:
            self.message = "Nothing to select on: this workspace has no map yet (run `explorer map WS`)."
            return self.selected_ids
        return self._apply_rows(selection, selection.resolve_rows(index), mode)

    def select_ids(self, ids: Any, mode: str | None = None) -> np.ndarray:
        """Select explicit ids (e.g. find-similar results) by ``mode``; undoable like a drawn selection.

        On a map the selection is kept in map order; ids that are not on the map are kept too (after the
        others) as long as some are.
        """
        ids = _ids(ids)
        index = self._index()
        if index is not None and self._rows_complete():
            rows = self._map_rows(ids)
            if len(rows) == len(ids):
                return self._apply_rows(Selection.from_ids(ids.tolist()), np.unique(rows), mode)
        return self._apply_ids(Selection.from_ids(ids.tolist()), ids, mode)

    def _rows_complete(self) -> bool:
        """Whether :attr:`selected_rows` covers every selected id (false only after selecting off-map ids)."""
        return len(self.selected_rows) == len(self.selected_ids)

    def _apply_rows(self, selection: Selection, new_rows: np.ndarray, mode: str | None) -> np.ndarray:
        """Meet the current selection with ``new_rows`` (map rows, ascending) by ``mode``: integer set operations,
        no id lookups, so a million-object map answers in milliseconds."""
        mode = SelectionMode(mode or self.mode)
        if not self._rows_complete():
            return self._apply_ids(selection, self._index().ids[new_rows], mode)
        new_rows = np.asarray(new_rows, dtype=np.int64)
        old = self.selected_rows
        if mode is SelectionMode.REPLACE:
            rows = new_rows
        elif mode is SelectionMode.ADD:
            rows = np.union1d(old, new_rows)
        elif mode is SelectionMode.SUBTRACT:
            rows = np.setdiff1d(old, new_rows, assume_unique=True)
        else:
            rows = np.intersect1d(old, new_rows, assume_unique=True)
        ids = self._index().ids[rows]
        state = self.history.apply(selection, mode)
        self._remember(state, ids, rows)
        self._set_selected(state, ids, rows)
        return ids

    def _apply_ids(self, selection: Selection, new_ids: np.ndarray, mode: str | None) -> np.ndarray:
        """The id-based path (no map, or ids that are not all on the map)."""
        mode = SelectionMode(mode or self.mode)
        combined = combine(self.selected_ids, new_ids, mode)
        index = self._index()
        rows = np.empty(0, np.int64)
        if index is not None and len(combined):
            rows = np.sort(self._map_rows(combined))
            if len(rows) == len(combined):  # all on the map: map order, like a drawn selection
                combined = index.ids[rows]
        state = self.history.apply(selection, mode)
        self._remember(state, combined, rows)
        self._set_selected(state, combined, rows)
        return combined

    def _remember(self, state: Selection | None, ids: np.ndarray, rows: np.ndarray) -> None:
        self._resolved[id(state)] = (state, ids, rows)
        if len(self._resolved) > self.history.max_len + 20:
            for key in list(self._resolved)[: len(self._resolved) - self.history.max_len - 20]:
                if key != id(None):
                    del self._resolved[key]

    def _resolve_state(self, state: Selection | None) -> tuple[np.ndarray, np.ndarray]:
        cached = self._resolved.get(id(state))
        if cached is not None and cached[0] is state:
            return cached[1], cached[2]
        index = self._index()
        if state is None or index is None:
            ids, rows = _ids([]), np.empty(0, np.int64)
        else:
            rows = state.resolve_rows(index)
            ids = index.ids[rows]
        self._remember(state, ids, rows)
        return ids, rows

    def _set_selected(self, state: Selection | None, ids: np.ndarray, rows: np.ndarray, **extra: Any) -> None:
        n = len(ids)
        focus = self.focused_id
        if n and not self._holds(focus, ids, rows):
            focus = self._best_first(ids, rows)
        self.param.update(
            selection=state,
            selected_rows=rows,
            selected_ids=ids,
            gallery_source="selection",
            can_undo=self.history.can_undo,
            can_redo=self.history.can_redo,
            focused_id=focus if n else self.focused_id,
            message=f"{n:,} selected" if n else "Selection cleared.",
            **extra,
        )

    def _holds(self, object_id: str | None, ids: np.ndarray, rows: np.ndarray) -> bool:
        """Whether ``object_id`` is among ``ids`` (a binary search in ``rows`` when they cover the ids)."""
        if object_id is None:
            return False
        index = self._index()
        if index is not None and len(rows) == len(ids):
            row = self._map_rows(np.array([object_id], dtype=object))
            if not len(row):
                return False
            at = int(np.searchsorted(rows, row[0]))
            return at < len(rows) and rows[at] == row[0]
        return bool(np.any(ids == object_id))

    def _best_first(self, ids: np.ndarray, rows: np.ndarray | None = None) -> str | None:
        """The object the gallery shows first (the most anomalous), without sorting the whole selection."""
        if not len(ids):
            return None
        scores = self.row_scores()
        if (
            self.sort_by == "anomaly score"
            and scores is not None
            and rows is not None
            and len(rows) == len(ids)
        ):
            values = np.nan_to_num(scores[rows], nan=-np.inf)
            return str(ids[int(np.argmax(values))])
        order = self.order(ids)
        return None if not len(order) else str(order[0])

    def clear(self) -> None:
        """Select nothing (undoable)."""
        self.history.clear()
        self._set_selected(None, _ids([]), np.empty(0, np.int64))

    def undo(self) -> np.ndarray:
        """Go back to the selection before the last change."""
        if not self.history.can_undo:
            self.message = "Nothing to undo."
            return self.selected_ids
        state = self.history.undo()
        ids, rows = self._resolve_state(state)
        self._set_selected(state, ids, rows)
        return ids

    def redo(self) -> np.ndarray:
        """Re-apply a change that was undone."""
        if not self.history.can_redo:
            self.message = "Nothing to redo."
            return self.selected_ids
        state = self.history.redo()
        ids, rows = self._resolve_state(state)
        self._set_selected(state, ids, rows)
        return ids

    # ------------------------------------------------------------------ ordering and gallery
    def row_scores(self) -> np.ndarray | None:
        """The live anomaly score per map row (the re-learnt ranking if any, else the saved scores), or None."""
        if self.ranking is not None:
            return np.asarray(self.ranking)
        scores = getattr(self.data, "scores", None)
        return None if scores is None or getattr(self.data, "index", None) is None else np.asarray(scores)

    def _order_selection(self) -> np.ndarray:
        """The selection in gallery order, sorted on map rows (no id lookups) when it can be."""
        ids, rows = self.selected_ids, self.selected_rows
        scores = self.row_scores()
        if self.sort_by == "anomaly score" and len(ids) and len(rows) == len(ids) and scores is not None:
            values = scores[rows]
            if np.isfinite(values).any():
                return ids[np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")]
            return ids
        return self.order(ids)

    def scores_of(self, ids: np.ndarray) -> np.ndarray:
        """The live anomaly score of ``ids`` (the re-learnt ranking if any, else the saved scores)."""
        ids = _ids(ids)
        if self.ranking is not None and getattr(self.data, "index", None) is not None:
            rows = self._map_rows(ids)
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
            ids = self._order_selection()
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
        return frame["id"].take(top).to_numpy(dtype=object)  # only these rows become Python strings

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
