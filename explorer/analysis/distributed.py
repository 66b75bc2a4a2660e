"""Score and place millions of objects in partitions, in process or on Dask, from memory-mapped embeddings.

A model is fitted once, in this process, on a seeded sample (an isolation forest needs 256 points per tree; a
UMAP fit is quadratic-ish and single-threaded when seeded), then every partition (a row range of the
embeddings ``.npy``, read by the worker itself through a memory map) is scored or placed with that model. The
partition function is the same in process and on Dask, so both give identical results; see
:func:`explorer.scale.run_partitions` for retries and worker loss.

On a cluster, workers must see the workspace folder at the same path (a shared file system).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.scale import run_partitions

PART_ROWS = 1 << 18  # 262,144 rows: 64 MB of float32 64-d vectors per partition


@dataclass(frozen=True)
class Part:
    """Rows ``start .. stop`` of a memory-mapped ``.npy`` array (what a Dask task receives: a few bytes)."""

    path: str
    start: int
    stop: int

    def load(self) -> np.ndarray:
        """The rows as a float32 array."""
        array = np.load(self.path, mmap_mode="r")
        return np.asarray(array[self.start : self.stop], dtype=np.float32)


def partitions(path: str, n: int, rows: int = PART_ROWS) -> list[Part]:
    """Row ranges of ``rows`` covering ``n`` rows of the array at ``path``."""
    rows = max(int(rows), 1)
    return [Part(str(path), a, min(a + rows, n)) for a in range(0, n, rows)]


def sample_rows(n: int, size: int | None, random_state: int) -> np.ndarray:
    """Sorted seeded sample of ``size`` of ``n`` rows (all rows when ``size`` is None or >= n).

    Draws like :class:`~explorer.analysis.projection.Projector` does, so a sampled fit here and there use the
    same rows.
    """
    if size is None or int(size) >= n:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, max(int(size), 3), replace=False))


def take_rows(array: np.ndarray, rows: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``array[rows]`` as float32, gathered in chunks (a memory map is never converted whole)."""
    out = np.empty((len(rows), array.shape[1]), np.float32)
    for a in range(0, len(rows), chunk):
        out[a : a + chunk] = array[rows[a : a + chunk]]
    return out


def score_part(scorer: Any, part: Part) -> np.ndarray:
    """Anomaly scores (float32, higher = more anomalous) of one partition with a fitted ``AnomalyScorer``."""
    return np.asarray(scorer.score_samples(part.load()), dtype=np.float32)


def place_part(placer: Any, part: Part) -> np.ndarray:
    """Map coordinates ``(rows, 2)`` float32 of one partition with a fitted placer (``transform``)."""
    return np.asarray(placer.transform(part.load()), dtype=np.float32)


def score_partitions(
    scorer: Any, path: str, n: int, scheduler: str | None = None, rows: int = PART_ROWS, progress: bool = True
) -> np.ndarray:
    """Scores of all ``n`` rows of the embeddings at ``path``: ``(n,)`` float32."""
    parts = partitions(path, n, rows)
    out = run_partitions(
        score_part, parts, shared=scorer, scheduler=scheduler, desc="score", progress=progress
    )
    return np.concatenate(out) if out else np.empty(0, np.float32)


def place_partitions(
    placer: Any, path: str, n: int, scheduler: str | None = None, rows: int = PART_ROWS, progress: bool = True
) -> np.ndarray:
    """Map coordinates of all ``n`` rows of the embeddings at ``path``: ``(n, 2)`` float32."""
    parts = partitions(path, n, rows)
    out = run_partitions(
        place_part, parts, shared=placer, scheduler=scheduler, desc="place", progress=progress
    )
    return np.concatenate(out) if out else np.empty((0, 2), np.float32)
