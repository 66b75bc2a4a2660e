"""The engine applied to a workspace: make maps and scores from its embeddings; select and search on them.

Everything reads the embeddings through a memory map and the ids as compact arrays, so the same calls work at
5k and at 10M objects; beyond a sample size, fitting happens on a seeded sample and the rest is placed or scored
in partitions, in process or on Dask (:mod:`explorer.analysis.distributed`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from explorer.analysis.data_detectors import definitions
from explorer.analysis.distributed import PART_ROWS
from explorer.analysis.id_table import IdTable
from explorer.errors import DataError
from explorer.workspace import Workspace

log = logging.getLogger(__name__)
UMAP_SAMPLE = 200_000
SCORE_SAMPLE = 200_000
#: Maps with more objects keep their ids compact in :func:`point_index`.
COMPACT_FROM = 1_000_000


def map_workspace(
    ws: Workspace,
    method: str = "umap",
    space: str = "joint",
    random_state: int = 42,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    progress: bool = True,
    sample_size: int | None = None,
    placement: str = "umap",
    scheduler: str | None = None,
    part_rows: int = PART_ROWS,
) -> str:
    """Project the current embeddings to 2-D and save the map (made current); returns its version.

    Up to ``sample_size`` objects (default :data:`UMAP_SAMPLE` for UMAP; PCA fits on all) the map is fitted on
    every object in this process. Beyond that, or with a ``scheduler``, it is fitted on a seeded sample and every
    object is placed in partitions of ``part_rows`` (in process or on Dask), read from the memory-mapped vectors.

    Parameters
    ----------
    placement : {"umap", "knn"}
        How objects outside the fitted sample are placed: UMAP's ``transform`` (its own kNN initialisation plus
        gradient refinement: ~0.3 ms per object per core) or :class:`~explorer.analysis.placement.KnnPlacer`
        (the initialisation alone, with FAISS: ~100x faster; the choice at 10M objects). Their quality cost is
        measured in ``benchmarks/RESULTS_scale.md``.
    scheduler : str, optional
        ``"local[:N]"`` or a Dask scheduler address: place the partitions on Dask workers.
    """
    from explorer.analysis.distributed import place_partitions, sample_rows, take_rows
    from explorer.analysis.index_store import embedding_files
    from explorer.analysis.projection import Projector

    if placement not in ("umap", "knn"):
        raise DataError(f"placement={placement!r}; use 'umap' (UMAP transform) or 'knn' (kNN interpolation)")
    version, vec_path, ids_path, _ = embedding_files(ws, space)
    X = ws.embeddings(version, space=space).vectors  # memory-mapped; a damaged file is a clear WorkspaceError
    n = len(X)
    if sample_size is None:
        sample_size = UMAP_SAMPLE if method == "umap" else n
    partitioned = scheduler is not None or n > sample_size
    proj = Projector(
        method=method,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        random_state=random_state,
        progress=progress,
    )
    rows = sample_rows(n, sample_size if partitioned else None, random_state)
    t0 = time.perf_counter()
    coords_fit = proj.fit_transform(take_rows(X, rows))
    seconds = {"fit": round(time.perf_counter() - t0, 1)}
    if not partitioned:
        coords = np.asarray(coords_fit, dtype=np.float32)
    else:
        t0 = time.perf_counter()
        placer = proj
        if placement == "knn" and method == "umap":
            from explorer.analysis.placement import KnnPlacer

            placer = KnnPlacer(n_neighbors=n_neighbors, random_state=random_state).fit(
                take_rows(X, rows), coords_fit
            )
        coords = place_partitions(
            placer, str(vec_path), n, scheduler=scheduler, rows=part_rows, progress=progress
        )
        coords[rows] = coords_fit
        seconds["place"] = round(time.perf_counter() - t0, 1)
    meta = {
        "method": method,
        "embeddings": version,
        "space": space,
        "random_state": random_state,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "fit_sample": int(len(rows)) if partitioned else None,
        "placement": placement if partitioned else None,
        "scheduler": scheduler or "in-process",
        "seconds": seconds,
        "arrays": {"xy": "float32 (n, 2) in the row order of coords.parquet"},
    }
    table = pd.DataFrame({"id": _id_column(ids_path), "x": coords[:, 0], "y": coords[:, 1]})
    map_version = ws.save_product("maps", tables={"coords": table}, arrays={"xy": coords}, meta=meta)
    log.info("saved map %s (%s of %s, %d objects)", map_version, method, version, n)
    return map_version


def score_workspace(
    ws: Workspace,
    method: str | None = None,
    space: str = "joint",
    random_state: int = 0,
    progress: bool = True,
    sample_size: int = SCORE_SAMPLE,
    scheduler: str | None = None,
    part_rows: int = PART_ROWS,
    scorer_params: dict | None = None,
    detectors: bool = True,
    artefacts: bool | None = None,
    variability: bool | None = None,
) -> str:
    """Unsupervised anomaly scores (higher = more anomalous) of the current embeddings; returns the version.

    Up to ``sample_size`` objects and without a ``scheduler``, the scorer is fitted on every object and its
    scores are saved as they are. Otherwise it is fitted on a seeded sample of ``sample_size`` objects (an
    isolation forest looks at 256 points per tree, kNN at a reference sample of 8,192) and every object is
    scored in partitions of ``part_rows``, in process or on Dask (``scheduler``: ``"local[:N]"`` or an
    address), with identical results; objects of the fitted sample keep their fitted scores (a kNN reference
    object is not its own neighbour).

    With ``detectors`` (default), more than one detector looks at each object and the saved ``score`` is the
    best of their tail significances (:mod:`explorer.analysis.detectors`, in decades of rarity):
    the scorer on ``space``, the same scorer on the own space of each modality whose objects mostly have
    another modality too, when ``space`` is ``"joint"`` (a light curve's oddity is not diluted by its star's
    cutout there), the ``variability`` of every light curve (:mod:`explorer.analysis.variability`) and the
    cutout statistics of every image set: the artefacts ``hot_pixel`` and ``trail``
    (:mod:`explorer.analysis.artefacts`), ``ring``, ``companion`` and ``arc`` (:mod:`explorer.analysis.morphology`);
    the last two kinds read the objects' data (:mod:`explorer.analysis.data_detectors`).
    Each detector's raw score is saved beside ``score`` (columns named in the metadata's ``detectors``), and
    ``flagged_by`` names the detector that gave the object its score (shown in the app's inspector).
    With a single detector (imported vectors, no cutouts) ``score`` is the scorer's own score.

    Parameters
    ----------
    method : {"knn", "iforest"}, optional
        Default: :class:`~explorer.analysis.anomaly.AnomalyScorer`'s default (``"knn"``, the best measured on
        the simulated survey: ``benchmarks/bench_anomaly.py``), with the same parameters the app's live
        ranking uses, so the saved scores and the app's ranking before any label agree.
    space : str
        Embedding space: ``"joint"`` (every object; best measured), ``"image"`` or ``"lightcurve"``.
    scorer_params : dict, optional
        Other :class:`~explorer.analysis.anomaly.AnomalyScorer` parameters, e.g. ``{"reference_size": 2048}``:
        kNN costs ``n x reference_size x d`` (~8 s of CPU per 100k objects of 64-d at 8,192), a smaller
        reference is 4x cheaper and less local (21-23 % of the simulated oddities in the top 1 % instead of
        25-29 %). Saved in the version's metadata.
    detectors : bool
        False: only the scorer on ``space`` (what the engine did before the other detectors).
    artefacts : bool, optional
        Whether the detectors include the cutout statistics (artefacts and morphology), which read every cutout
        (~4 ms each on 2 cores). Default: when the workspace has at most
        :data:`~explorer.analysis.data_detectors.ARTEFACT_LIMIT` cutouts (a logged note says when they are left
        out).
    variability : bool, optional
        The same for the light curves' variability (~0.3 ms per curve); default up to
        :data:`~explorer.analysis.data_detectors.VARIABILITY_LIMIT` curves.
    """
    from explorer.analysis.anomaly import AnomalyScorer

    params = AnomalyScorer(random_state=random_state).get_params()
    if method is not None:
        if method not in ("knn", "iforest"):
            raise DataError(f"anomaly method {method!r}; use 'knn' (default) or 'iforest'")
        params["method"] = method
    unknown = sorted(set(scorer_params or {}) - set(params))
    if unknown:
        raise DataError(f"unknown anomaly scorer parameter(s) {unknown}; choose from {sorted(params)}")
    params.update(scorer_params or {})
    fit = {"sample_size": sample_size, "scheduler": scheduler, "part_rows": part_rows, "progress": progress}
    version, ids_path, scores, seconds, fit_rows = _score_space(ws, space, params, random_state, **fit)
    table = pd.DataFrame({"id": _id_column(ids_path), "score": scores})
    found: dict[str, np.ndarray] = {}
    references: dict[str, dict | None] = {}
    if detectors:
        found = _other_detectors(ws, version, space, params, random_state, table["id"], fit, seconds, artefacts,
                                 variability, references)
    names = []
    if found:
        from explorer.analysis.detectors import combine

        first = f"{params['method']}_{space}"
        found = {first: scores, **found}
        t0 = time.perf_counter()
        best, which = combine(found, return_which=True)
        table["score"] = best.astype(np.float32)
        names = list(found)
        table["flagged_by"] = pd.Categorical.from_codes(which, categories=names)
        for name, values in found.items():
            table[name] = np.asarray(values, dtype=np.float32)
        seconds["combine"] = round(time.perf_counter() - t0, 1)
    score_version = ws.save_product(
        "scores",
        tables={"scores": table},
        arrays={"score": table["score"].to_numpy(np.float32)},
        meta={
            "method": params["method"],
            "params": params,
            "embeddings": version,
            "space": space,
            "catalog": ws.manifest.get("catalog"),
            "detectors": names,
            "definitions": {k: v for k, v in definitions().items() if k in names},
            "references": {k: v for k, v in references.items() if v is not None and k in names},
            "combination": "max tail significance (decades)" if names else None,
            "direction": "higher = more anomalous",
            "fit_sample": fit_rows,
            "scheduler": scheduler or "in-process",
            "seconds": seconds,
        },
    )
    log.info("saved anomaly scores %s (%s)", score_version, params["method"])
    return score_version


def _score_space(ws: Workspace, space: str, params: dict, random_state: int, sample_size: int,
                 scheduler: str | None, part_rows: int, progress: bool, version: str | None = None):
    """``(embedding version, ids file, scores, seconds, fit sample size or None)`` of one space."""
    from explorer.analysis.anomaly import AnomalyScorer
    from explorer.analysis.distributed import sample_rows, score_partitions, take_rows
    from explorer.analysis.index_store import embedding_files

    version, vec_path, ids_path, _ = embedding_files(ws, space, version)
    X = ws.embeddings(version, space=space).vectors  # memory-mapped; a damaged file is a clear WorkspaceError
    n = len(X)
    partitioned = scheduler is not None or n > sample_size
    rows = sample_rows(n, sample_size, random_state)
    ids = IdTable.read(ids_path)
    t0 = time.perf_counter()
    scorer = AnomalyScorer(**params).fit(take_rows(X, rows), ids.take(rows))
    seconds = {"fit": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    if partitioned:
        scores = score_partitions(
            scorer, str(vec_path), n, scheduler=scheduler, rows=part_rows, progress=progress
        )
        scores[rows] = scorer.score_samples()
    else:
        scores = np.asarray(scorer.score_samples(), dtype=np.float32)
    seconds["score"] = round(time.perf_counter() - t0, 1)
    return version, ids_path, scores, seconds, (int(len(rows)) if len(rows) < n else None)


def _other_detectors(ws: Workspace, version: str, space: str, params: dict, random_state: int, ids: pd.Series,
                     fit: dict, seconds: dict, artefacts: bool | None, variability: bool | None,
                     references: dict) -> dict[str, np.ndarray]:
    """Scores of the detectors beside the scorer on ``space``, aligned with ``ids`` (NaN where one does not
    apply): the scorer on the diluted modality spaces (when ``space`` is joint), the light curves' variability
    and the cutout statistics. What "ordinary" was for a detector's statistics goes in ``references``."""
    from explorer.analysis import data_detectors as dd
    from explorer.analysis.index_store import embedding_files

    _, _, _, meta = embedding_files(ws, space, version)
    modality_spaces = [s for s in meta.get("spaces", {}) if s != "joint"]
    diluted = _diluted_spaces(ws, version, modality_spaces) if space == "joint" and len(modality_spaces) > 1 else {}
    counts = ws.catalog.modalities()
    artefacts = dd.wanted("cutouts", counts["image"] if ws.catalog.images else 0, dd.ARTEFACT_LIMIT, artefacts,
                          "--artefacts")
    variability = dd.wanted("light curves", counts["lightcurve"] if ws.catalog.lightcurves is not None else 0,
                            dd.VARIABILITY_LIMIT, variability, "--variability")
    if not diluted and not artefacts and not variability:
        return {}
    position = pd.Index(ids.astype(str))  # built only when there is something to align
    out: dict[str, np.ndarray] = {}
    for other, other_ids in diluted.items():
        _, _, other_scores, sec, _ = _score_space(ws, other, params, random_state, version=version, **fit)
        out[f"{params['method']}_{other}"] = _aligned(position, other_ids, other_scores)
        seconds[f"score {other}"] = sec["fit"] + sec["score"]
    if variability:
        t0 = time.perf_counter()
        saved = dd.saved_statistics(ws, [dd.VARIABILITY], random_state)
        if saved is None:
            found, references[dd.VARIABILITY] = dd.lightcurve_variability(
                ws, progress=fit["progress"], random_state=random_state, return_reference=True,
                scheduler=fit["scheduler"])
        else:
            found = saved[dd.VARIABILITY]
            seconds["variability reused from"] = ws.current("scores")
            references[dd.VARIABILITY] = ws.versions("scores")[ws.current("scores")].get(
                "references", {}).get(dd.VARIABILITY)
        out[dd.VARIABILITY] = _aligned(position, found.index, found.to_numpy())
        seconds["variability"] = round(time.perf_counter() - t0, 1)
    if artefacts:
        t0 = time.perf_counter()
        stats = dd.saved_statistics(ws, dd.cutout_features(), random_state)
        if stats is None:
            stats = dd.cutout_statistics(ws, progress=fit["progress"], random_state=random_state,
                                         scheduler=fit["scheduler"])
        else:
            seconds["artefacts reused from"] = ws.current("scores")
        for name in stats.columns if len(stats) else ():
            out[name] = _aligned(position, stats.index, stats[name].to_numpy())
        seconds["artefacts"] = round(time.perf_counter() - t0, 1)
    return out


def _diluted_spaces(ws: Workspace, version: str, spaces: list[str]) -> dict[str, pd.Index]:
    """The modality spaces most of whose objects also have another modality: their joint vectors mix the two,
    so an oddity in this one is diluted there and is worth scoring on its own (light curves of stars that also
    have cutouts). For a modality mostly alone (galaxy cutouts), the joint vector is its own vector already.
    Measured on the simulated survey: scoring the image space too added nothing (40 vs 41 and 31 vs 33
    oddities in the top 1 %, seeds 0 and 1). Returns their ids, by space."""
    from explorer.analysis.index_store import embedding_files

    ids = {s: pd.Index(_id_column(embedding_files(ws, s, version)[2])) for s in spaces}
    out = {}
    for s in spaces:
        shared = np.zeros(len(ids[s]), bool)
        for other in spaces:
            if other != s:
                shared |= ids[s].isin(ids[other])
        if shared.mean() > 0.5:
            out[s] = ids[s]
    return out


def _aligned(position: pd.Index, ids, values: np.ndarray) -> np.ndarray:
    """``values`` (one per id of ``ids``) placed on the rows of ``position``; NaN where an id is absent."""
    out = np.full(len(position), np.nan)
    where = position.get_indexer(pd.Index(np.asarray(ids).astype(str)))
    out[where[where >= 0]] = np.asarray(values, dtype=np.float64)[where >= 0]
    return out


def _id_column(ids_path) -> pd.Series:
    """The ids of an embedding space as an Arrow-backed string column (no Python string per object)."""
    import pyarrow.parquet as pq

    return pd.Series(pq.read_table(ids_path, columns=["id"])["id"].combine_chunks(), dtype="str")


def map_arrays(ws: Workspace, map_version: str | None = None) -> tuple[np.ndarray, IdTable, dict]:
    """``(xy, ids, meta)`` of a map: ``(n, 2)`` float32 coordinates (memory-mapped when saved as ``xy.npy``)
    and the compact ids, without building a DataFrame."""
    folder, meta = ws.product_path("maps", map_version)
    ids = IdTable.read(folder / "coords.parquet")
    if (folder / "xy.npy").exists():
        xy = np.load(folder / "xy.npy", mmap_mode="r")
    else:
        import pyarrow.parquet as pq

        t = pq.read_table(folder / "coords.parquet", columns=["x", "y"])
        xy = np.column_stack([t["x"].to_numpy(), t["y"].to_numpy()]).astype(np.float32)
    return xy, ids, meta


def point_index(ws: Workspace, map_version: str | None = None, compact: bool | None = None):
    """A :class:`~explorer.analysis.selection.PointIndex` over a map of the workspace.

    ``compact`` (default: above :data:`COMPACT_FROM` objects) keeps the ids as fixed-width bytes (``S<w>``)
    instead of one Python string per object; :func:`select` returns str ids either way.
    """
    from explorer.analysis.selection import PointIndex

    xy, ids, meta = map_arrays(ws, map_version)
    compact = len(ids) > COMPACT_FROM if compact is None else compact
    return PointIndex(
        xy[:, 0], xy[:, 1], ids.codes if compact else ids.to_numpy(), map_version=meta["version"]
    )


def ids_at(index, rows: np.ndarray) -> np.ndarray:
    """Str ids of ``rows`` of a :class:`PointIndex` (compact or not)."""
    out = index.ids[np.asarray(rows, dtype=np.int64)]
    return np.char.decode(out, "utf-8").astype(object) if out.dtype.kind == "S" else out


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
    ids = ids_at(index, selection.resolve_rows(index))
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
        index = point_index(ws, selection.map_version)
        return ids_at(index, selection.resolve_rows(index))
    return np.asarray(data["ids"], dtype=object)


def similar(
    ws: Workspace, positive: Sequence[str], negative: Sequence[str] = (), k: int = 20, space: str = "joint"
) -> pd.DataFrame:
    """The ``k`` objects most like ``positive`` and unlike ``negative`` (cosine on the current embeddings).

    Uses the FAISS index saved in the workspace (:mod:`explorer.analysis.index_store`; built and saved on first
    use from :data:`~explorer.analysis.index_store.EXACT_BELOW` objects), else exact search.
    """
    from explorer.analysis.index_store import load_index

    return load_index(ws, space=space).query(list(positive), list(negative), k=k)
