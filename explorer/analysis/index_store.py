"""A FAISS index saved in the workspace, so the app and ``explorer similar`` load it instead of rebuilding it.

Layout: ``WS/indexes/<embedding version>.<space>.faiss`` plus ``.json`` (parameters, build time, measured recall).
The index is a cache of one embedding version: it is never stale (a new embedding version has a new name), and
deleting it only costs a rebuild.

Search at 10M objects without holding the vectors in memory (:class:`StoredIndex`):

1. candidates from an IVF index whose lists hold 8-bit scalar-quantised vectors (``IndexIVFScalarQuantizer``,
   d bytes per object: 640 MB for 10M × 64) — the file is memory-mapped where FAISS allows it;
2. exact cosine re-ranking of the top ``rerank`` candidates against the embeddings ``.npy``, memory-mapped
   (a few hundred rows read per query).

Objects are addressed by row; ids come from a compact :class:`~explorer.analysis.id_table.IdTable`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.analysis.id_table import IdTable
from explorer.analysis.neighbours import as_id_list, direction_of, probes_in_parallel, top_k_rows
from explorer.errors import DataError, WorkspaceError
from explorer.progress import progress_bar
from explorer.workspace import Workspace

log = logging.getLogger(__name__)
INDEX_DIR = "indexes"
#: Below this many objects exact search (one mat-vec) is fast enough and needs no index.
EXACT_BELOW = 1_500_000


def index_paths(ws: Workspace, version: str, space: str) -> tuple[Path, Path]:
    """The ``.faiss`` file and its ``.json`` metadata for an embedding version and space."""
    folder = ws.path / INDEX_DIR
    return folder / f"{version}.{space}.faiss", folder / f"{version}.{space}.json"


def embedding_files(
    ws: Workspace, space: str = "joint", version: str | None = None
) -> tuple[str, Path, Path, dict]:
    """``(version, vectors .npy, ids .parquet, product metadata)`` of an embedding space, nothing loaded."""
    folder, meta = ws.product_path("embeddings", version)
    if space not in meta.get("spaces", {}):
        raise WorkspaceError(
            f"embeddings {meta['version']} have no space {space!r}; have {sorted(meta.get('spaces', {}))}"
        )
    return meta["version"], folder / f"{space}.npy", folder / f"{space}.ids.parquet", meta


def default_nlist(n: int) -> int:
    """IVF lists: a power of two near ``sqrt(n)``, 16..4096 (4096 at 10M: ~2,400 objects per list)."""
    return int(np.clip(2 ** round(math.log2(max(math.sqrt(n), 1))), 16, 4096))


def default_nprobe(nlist: int) -> int:
    """Lists searched per query: ``max(32, nlist // 50)`` (32 for up to 1,600 lists, 81 for 4,096).

    Recall after re-ranking follows the fraction of lists searched, not the number of objects. Measured on the
    64-d synthetic vectors (isotropic within clusters: a hard case for IVF), 40 queries, recall@20 after exact
    re-ranking of 200 candidates: 1M / 1,024 lists: 32 probed 0.99; 1M / 4,096 lists: 64 probed 0.95, 96 probed
    0.99; 10M / 4,096 lists: 64 probed 0.95, 81 probed 0.97-0.99 (2.0-2.1 ms per query), 96 probed 0.98.
    See ``benchmarks/RESULTS_scale.md``.
    """
    return max(32, int(nlist) // 50)


def build_index(
    ws: Workspace,
    space: str = "joint",
    version: str | None = None,
    nlist: int | None = None,
    nprobe: int | None = None,
    rerank: int = 200,
    train_size: int | None = None,
    random_state: int = 0,
    chunk: int = 1 << 18,
    progress: bool = True,
) -> Path:
    """Build the IVF-SQ8 index of an embedding space and save it in the workspace; returns the ``.faiss`` path.

    Parameters
    ----------
    nlist : int, optional
        IVF lists (default :func:`default_nlist`).
    nprobe : int, optional
        Lists searched per query (stored; the loader uses it). Default :func:`default_nprobe`.
    rerank : int
        Candidates re-ranked exactly per query (stored).
    train_size : int, optional
        Objects the quantiser and k-means are trained on (default ``64 × nlist``).
    """
    import faiss

    from explorer.analysis.distributed import sample_rows, take_rows

    version, vec_path, _, _ = embedding_files(ws, space, version)
    X = np.load(vec_path, mmap_mode="r")
    n, d = X.shape
    nlist = int(nlist or default_nlist(n))
    t0 = time.perf_counter()
    train = _unit(take_rows(X, sample_rows(n, train_size or 64 * nlist, random_state)))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = int(random_state)
    index.train(train)
    t_train = time.perf_counter() - t0
    with progress_bar(range(0, n, chunk), desc="index", unit="part", disable=not progress) as bar:
        for a in bar:
            index.add(_unit(np.asarray(X[a : a + chunk], dtype=np.float32)))
    index.nprobe = int(min(nprobe or default_nprobe(nlist), nlist))
    faiss_path, meta_path = index_paths(ws, version, space)
    faiss_path.parent.mkdir(exist_ok=True)
    tmp = faiss_path.with_name(f".{faiss_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, faiss_path)
    meta = {
        "embeddings": version,
        "space": space,
        "n": int(n),
        "dim": int(d),
        "kind": "IVF-SQ8",
        "nlist": nlist,
        "nprobe": int(index.nprobe),
        "rerank": int(rerank),
        "train_size": int(len(train)),
        "seconds_train": round(t_train, 2),
        "seconds_total": round(time.perf_counter() - t0, 2),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    log.info("saved similarity index %s (%d objects, %.0f s)", faiss_path.name, n, meta["seconds_total"])
    return faiss_path


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def load_index(
    ws: Workspace,
    space: str = "joint",
    version: str | None = None,
    build: bool | None = None,
    mmap: bool = True,
    ids: IdTable | None = None,
) -> StoredIndex:
    """The similarity search of an embedding space: the saved FAISS index, or exact search on small ones.

    Parameters
    ----------
    build : bool, optional
        Build (and save) a missing index first; default: only from :data:`EXACT_BELOW` objects on.
    mmap : bool
        Memory-map the index file (the lists a query visits are read from the page cache) instead of reading
        it into memory.
    ids : IdTable, optional
        The ids of the embedding rows when the caller already holds them packed (the app shares its catalogue's
        when the embeddings list the same ids in the same order); default: read from the embedding files.
    """
    version, vec_path, ids_path, _ = embedding_files(ws, space, version)
    vectors = np.load(vec_path, mmap_mode="r")
    faiss_path, meta_path = index_paths(ws, version, space)
    if not faiss_path.exists() and (build if build is not None else len(vectors) >= EXACT_BELOW):
        build_index(ws, space, version)
    index, meta = None, {"kind": "exact"}
    if faiss_path.exists():
        import faiss

        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        index = _read_faiss(faiss, faiss_path, mmap)
        index.nprobe = int(meta.get("nprobe", 32))
        probes_in_parallel(index)
    ids = IdTable.read(ids_path) if ids is None else ids
    return StoredIndex(vectors, ids, index, meta, version=version, space=space)


def _read_faiss(faiss, path: Path, mmap: bool):
    if mmap:
        for flag in ("IO_FLAG_MMAP_IFC", "IO_FLAG_MMAP"):
            if hasattr(faiss, flag):
                try:
                    return faiss.read_index(str(path), getattr(faiss, flag) | faiss.IO_FLAG_READ_ONLY)
                except RuntimeError:
                    continue
    return faiss.read_index(str(path))


class StoredIndex:
    """Cosine similarity over memory-mapped embeddings: FAISS candidates (or exact search), exact re-ranking.

    Speaks the query dialect of :class:`~explorer.analysis.neighbours.SimilarityIndex`: ``query`` ("more like
    these, not like those", Rocchio), ``query_vector``, ``rows_of``; results are DataFrames ``id, similarity,
    rank``.

    Parameters
    ----------
    vectors : numpy.ndarray
        ``(n, d)`` embeddings (a memory map; float16 or float32; re-normalised per row when read).
    ids : IdTable
        Object id per row.
    index : faiss.Index or None
        IVF index over the same rows; ``None`` searches exactly (chunked mat-vec).
    meta : dict
        ``rerank`` (candidates re-ranked exactly) and the build parameters.
    negative_weight : float
        Weight of the negatives' mean in the query direction.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        ids: IdTable,
        index: Any = None,
        meta: dict | None = None,
        negative_weight: float = 0.5,
        version: str | None = None,
        space: str = "joint",
    ):
        if len(ids) != len(vectors):
            raise DataError(f"{len(ids)} ids for {len(vectors)} vectors; the embedding files disagree")
        self.vectors = vectors
        # the same buffer as a plain ndarray: reading a few rows skips the np.memmap subclass's per-call overhead
        self._rows_view = np.asarray(vectors)
        self.ids = ids
        self.index = index
        self.meta = meta or {}
        self.negative_weight = negative_weight
        self.version, self.space = version, space

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def method(self) -> str:
        return "exact" if self.index is None else str(self.meta.get("kind", "faiss"))

    def rows_of(self, ids: Iterable[Any]) -> np.ndarray:
        return self.ids.rows_of(as_id_list(ids))

    def unit_rows(self, rows: np.ndarray) -> np.ndarray:
        """L2-normalised float32 vectors of ``rows`` (read from the memory map; many rows in file order)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) <= 4096:  # a query's candidates: a few hundred scattered rows
            return _unit(self._rows_view[rows].astype(np.float32))
        order = np.argsort(rows)
        out = np.empty((len(rows), self.vectors.shape[1]), np.float32)
        out[order] = self._rows_view[rows[order]]
        return _unit(out)

    def query_direction(self, positive_ids: Iterable[Any], negative_ids: Iterable[Any] = ()) -> np.ndarray:
        """Unit query vector: mean of the positives minus ``negative_weight`` × mean of the negatives."""
        return self._direction(self.rows_of(positive_ids), self.rows_of(negative_ids))

    def _direction(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        return direction_of(self.unit_rows(pos), self.unit_rows(neg), self.negative_weight)

    def query(
        self,
        positive_ids: Iterable[Any],
        negative_ids: Iterable[Any] = (),
        k: int = 20,
        exclude_query: bool = True,
    ) -> pd.DataFrame:
        """The ``k`` objects most like ``positive_ids`` and least like ``negative_ids``: ``id, similarity, rank``."""
        pos = self.rows_of(positive_ids)
        neg = self.rows_of(negative_ids) if negative_ids is not None else np.empty(0, np.int64)
        q = self._direction(pos, neg)
        exclude = np.concatenate((pos, neg)) if exclude_query else None
        rows, sims = self.search(q, k, exclude)
        return self._frame(rows, sims)

    def query_vector(self, v: Any, k: int = 20, exclude_ids: Iterable[Any] = ()) -> pd.DataFrame:
        """The ``k`` objects most similar to a raw vector ``v``."""
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.size != self.vectors.shape[1] or not np.isfinite(v).all() or not np.linalg.norm(v) > 0:
            raise DataError(f"query vector must be {self.vectors.shape[1]} finite values, not all zero")
        rows, sims = self.search((v / np.linalg.norm(v)).astype(np.float32), k, self.rows_of(exclude_ids))
        return self._frame(rows, sims)

    def search(
        self, q: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosine similarities of the ``k`` best rows for unit vector ``q`` (rows in ``exclude`` skipped)."""
        k = int(k)
        if k < 1:
            raise DataError(f"k={k}: ask for at least one similar object")
        exclude = (
            np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else np.empty(0, np.int64)
        )
        want = min(k + exclude.size, len(self))
        if self.index is None:
            rows = self._exact_candidates(q, want)
        else:
            n_cand = max(int(self.meta.get("rerank", 200)), want)
            _, cand = self.index.search(q[None, :].astype(np.float32), n_cand)
            rows = cand[0][cand[0] >= 0].astype(np.int64)
        if exclude.size:
            drop = (
                (rows[:, None] == exclude[None, :]).any(axis=1)
                if exclude.size <= 32
                else np.isin(rows, exclude)
            )
            rows = rows[~drop]
        sims = self.unit_rows(rows) @ q if rows.size else np.empty(0, np.float32)
        order = np.lexsort((rows, -sims))[:k]
        return rows[order], sims[order].astype(np.float32)

    def _exact_candidates(self, q: np.ndarray, want: int, chunk: int = 1 << 20) -> np.ndarray:
        best_rows, best_sims = np.empty(0, np.int64), np.empty(0, np.float32)
        for a in range(0, len(self), chunk):
            s = _unit(np.asarray(self.vectors[a : a + chunk], dtype=np.float32)) @ q
            top = top_k_rows(s, want)
            best_rows = np.concatenate((best_rows, top + a))
            best_sims = np.concatenate((best_sims, s[top]))
            if len(best_rows) > want:
                keep = np.argpartition(-best_sims, want - 1)[:want]
                best_rows, best_sims = best_rows[keep], best_sims[keep]
        return best_rows

    def _frame(self, rows: np.ndarray, sims: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {"id": self.ids.take(rows), "similarity": sims, "rank": np.arange(1, len(rows) + 1)}, copy=False
        )
