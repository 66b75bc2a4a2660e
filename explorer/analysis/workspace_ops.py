"""The engine applied to a workspace: make maps and scores from its embeddings; select and search on them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from explorer.errors import DataError
from explorer.workspace import Workspace

log = logging.getLogger(__name__)
UMAP_SAMPLE = 200_000


def map_workspace(ws: Workspace, method: str = "umap", space: str = "joint", random_state: int = 42,
                  n_neighbors: int = 15, min_dist: float = 0.1, progress: bool = True) -> str:
    """Project the current embeddings to 2-D and save the map (made current); returns its version.

    UMAP is fitted on at most ``UMAP_SAMPLE`` objects and places the rest with ``transform``.
    """
    from explorer.analysis.projection import Projector

    emb = ws.embeddings(space=space)
    X = np.asarray(emb.vectors, dtype=np.float32)
    sample = UMAP_SAMPLE if method == "umap" and len(X) > UMAP_SAMPLE else None
    proj = Projector(method=method, n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state,
                     sample_size=sample)
    coords = proj.fit_transform(X) if sample is None else proj.fit(X).transform(X)
    coords = np.asarray(coords, dtype=np.float32)
    table = pd.DataFrame({"id": pd.array(list(emb.ids), dtype="string"), "x": coords[:, 0], "y": coords[:, 1]})
    meta = {"method": method, "embeddings": emb.version, "space": space, "random_state": random_state,
            "n_neighbors": n_neighbors, "min_dist": min_dist, "fit_sample": sample}
    version = ws.save_product("maps", tables={"coords": table}, meta=meta)
    log.info("saved map %s (%s of %s, %d objects)", version, method, emb.version, len(table))
    return version


def score_workspace(ws: Workspace, method: str = "iforest", space: str = "joint", random_state: int = 0,
                    progress: bool = True) -> str:
    """Unsupervised anomaly scores (higher = more anomalous) of the current embeddings; returns the version."""
    from explorer.analysis.anomaly import AnomalyScorer

    emb = ws.embeddings(space=space)
    scorer = AnomalyScorer(method=method, random_state=random_state).fit(np.asarray(emb.vectors), emb.ids)
    scores = np.asarray(scorer.score_samples(), dtype=np.float32)
    table = pd.DataFrame({"id": pd.array(list(emb.ids), dtype="string"), "score": scores})
    version = ws.save_product("scores", tables={"scores": table},
                              meta={"method": method, "embeddings": emb.version, "space": space,
                                    "direction": "higher = more anomalous"})
    log.info("saved anomaly scores %s (%s)", version, method)
    return version


def point_index(ws: Workspace, map_version: str | None = None):
    """A :class:`~explorer.analysis.selection.PointIndex` over a map of the workspace."""
    from explorer.analysis.selection import PointIndex

    coords, meta = ws.map(map_version)
    return PointIndex(coords["x"].to_numpy(), coords["y"].to_numpy(), coords["id"].to_numpy(dtype=object),
                      map_version=meta["version"])


def parse_polygon(text: str) -> np.ndarray:
    """``"x,y x,y x,y"`` → ``(n, 2)`` float array; :class:`DataError` on anything else."""
    try:
        pts = [tuple(float(v) for v in pair.split(",")) for pair in text.replace(";", " ").split()]
    except ValueError as err:
        raise DataError(f"polygon {text[:60]!r}: write vertices as 'x,y x,y x,y' ({err})") from err
    if any(len(p) != 2 for p in pts):
        raise DataError(f"polygon {text[:60]!r}: every vertex needs exactly two numbers 'x,y'")
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def select(ws: Workspace, vertices: np.ndarray, save: str | None = None) -> np.ndarray:
    """Ids inside a lasso polygon on the current map; optionally saved (geometry + map version + ids)."""
    from explorer.analysis.selection import Selection

    index = point_index(ws)
    selection = Selection.lasso(vertices, map_version=index.map_version)
    ids = selection.resolve(index)
    if save:
        save_selection(ws, save, selection, ids)
    return ids


def save_selection(ws: Workspace, name: str, selection, ids: Sequence[str]) -> None:
    """Store a selection by name: its geometry and map version (to replay) and the ids it resolved to."""
    path = ws.selection_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**selection.to_dict(), "ids": [str(i) for i in ids]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    tmp.replace(path)


def load_selection_ids(ws: Workspace, name: str, replay: bool = False) -> np.ndarray:
    """Ids of a saved selection; ``replay=True`` resolves its geometry again on the map version it was drawn on."""
    from explorer.analysis.selection import Selection

    path = ws.selection_path(name)
    if not path.exists():
        have = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.exists() else []
        raise DataError(f"no saved selection {name!r}; have {', '.join(have) or 'none'}")
    data = json.loads(path.read_text())
    if replay or "ids" not in data:
        selection = Selection.from_dict(data)
        return selection.resolve(point_index(ws, selection.map_version))
    return np.asarray(data["ids"], dtype=object)


def similar(ws: Workspace, positive: Sequence[str], negative: Sequence[str] = (), k: int = 20,
            space: str = "joint") -> pd.DataFrame:
    """The ``k`` objects most like ``positive`` and unlike ``negative`` (cosine on the current embeddings)."""
    from explorer.analysis.neighbours import SimilarityIndex

    emb = ws.embeddings(space=space)
    index = SimilarityIndex(metric="cosine").fit(np.asarray(emb.vectors), emb.ids)
    return index.query(list(positive), list(negative), k=k)
