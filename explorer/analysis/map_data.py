"""What a server needs to answer map requests over millions of objects, held in as little memory as possible.

:class:`MapData` loads the current map, scores and similarity index of a workspace as flat arrays — coordinates
and scores as float32 (memory-mapped ``.npy`` where the products saved them), ids as one compact
:class:`~explorer.analysis.id_table.IdTable`, the grid :class:`~explorer.analysis.selection.PointIndex` over
row numbers, and the saved FAISS index (:mod:`explorer.analysis.index_store`) — with no DataFrame of Python
strings anywhere. Measured at 10M objects in ``benchmarks/RESULTS_scale.md``; it is what the app's data layer
can hold instead of its per-object DataFrames when a workspace is large.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from explorer.analysis.id_table import IdTable
from explorer.errors import ExplorerError
from explorer.workspace import Workspace


@dataclass
class MapData:
    """Map coordinates, ids, scores and search of one workspace, aligned on the map's rows.

    Attributes
    ----------
    xy : numpy.ndarray
        ``(n, 2)`` float32 map coordinates.
    ids : IdTable
        Object id per row.
    index : PointIndex
        Lasso / box / tap over the rows (its ``ids`` are compact bytes).
    scores : numpy.ndarray or None
        ``(n,)`` float32 anomaly score per row (higher = more anomalous), NaN where unscored.
    map_version, score_version : str or None
    """

    ws: Workspace
    xy: np.ndarray
    ids: IdTable
    index: Any
    scores: np.ndarray | None
    map_version: str
    score_version: str | None
    space: str = "joint"
    _similarity: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, ws: Workspace, map_version: str | None = None, space: str = "joint") -> MapData:
        """Load the map (current by default) and the current scores of ``ws``."""
        from explorer.analysis.selection import PointIndex
        from explorer.analysis.workspace_ops import map_arrays

        xy, ids, meta = map_arrays(ws, map_version)
        index = PointIndex(xy[:, 0], xy[:, 1], ids.codes, map_version=meta["version"])
        scores, score_version = None, None
        if ws.current("scores") is not None:
            scores, score_version = _aligned_scores(ws, ids)
        return cls(ws, xy, ids, index, scores, meta["version"], score_version, space)

    def __len__(self) -> int:
        return len(self.ids)

    def lasso_rows(self, vertices: Any, sort: bool = False) -> np.ndarray:
        """Rows inside a lasso outline (map coordinates): a set, in grid order unless ``sort`` (row order).

        Measured at 10M objects: 1-8 ms of CPU for 14k-2.7M rows; ``sort=True`` adds ~20-35 ms of CPU from ~700k
        rows on (``benchmarks/RESULTS_scale.md``).
        """
        return self.index.lasso_rows(vertices, sort=sort)

    def lasso(self, vertices: Any) -> np.ndarray:
        """Ids (str) inside a lasso outline."""
        return self.ids.take(self.lasso_rows(vertices))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Ids (str) inside a box."""
        return self.ids.take(self.index.box_rows(x0, y0, x1, y1, sort=True))

    def similarity(self):
        """The workspace's saved similarity index (loaded once; see :func:`~explorer.analysis.index_store.load_index`)."""
        if self._similarity is None:
            from explorer.analysis.index_store import load_index

            self._similarity = load_index(self.ws, space=self.space)
        return self._similarity

    def similar(self, positive, negative=(), k: int = 20) -> pd.DataFrame:
        """``id, similarity, rank`` of the ``k`` objects most like ``positive`` and unlike ``negative``."""
        return self.similarity().query(positive, negative, k=k)

    def points(self, with_scores: bool = True) -> pd.DataFrame:
        """``x, y`` (and ``score``) as a float32 DataFrame for Datashader (no id column: rows are the ids)."""
        data = {"x": np.asarray(self.xy[:, 0]), "y": np.asarray(self.xy[:, 1])}
        if with_scores and self.scores is not None:
            data["score"] = self.scores
        return pd.DataFrame(data, copy=False)


def _aligned_scores(ws: Workspace, ids: IdTable) -> tuple[np.ndarray, str]:
    """Current scores in the row order of ``ids`` (straight from ``score.npy`` when the rows already agree)."""
    folder, meta = ws.product_path("scores")
    score_ids = IdTable.read(folder / "scores.parquet")
    if (folder / "score.npy").exists():
        values = np.load(folder / "score.npy", mmap_mode="r")
    else:
        import pyarrow.parquet as pq

        values = pq.read_table(folder / "scores.parquet", columns=["score"])["score"].to_numpy()
    if len(score_ids) == len(ids) and np.array_equal(score_ids.codes, ids.codes):
        return np.asarray(values, dtype=np.float32), meta["version"]
    out = np.full(len(ids), np.nan, np.float32)
    rows = ids.rows_of(score_ids.codes, missing="drop")
    have = ids.contains(score_ids.codes)
    out[rows] = np.asarray(values, dtype=np.float32)[have]
    if not have.any():
        raise ExplorerError(f"scores {meta['version']} share no object with this map; recompute them")
    return out, meta["version"]
