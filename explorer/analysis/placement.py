"""Place objects on a map that was fitted on a sample: kNN interpolation of the sample's map coordinates (FAISS).

UMAP's own ``transform`` finds each new point's ``n_neighbors`` nearest fitted points, starts it at their
membership-weighted mean position, then refines all new points with ~30-100 epochs of stochastic gradient
descent. At 10M objects that refinement dominates (measured ~0.3 ms per point on one core: ~50 min for 10M on
two). :class:`KnnPlacer` does the first step only, with an exact-on-probed-lists FAISS search: 10M points in a
few minutes, and its quality cost against UMAP's ``transform`` and against a full fit is measured in
``benchmarks/bench_scale.py --umap-quality`` (see ``benchmarks/RESULTS_scale.md``).

Weights follow UMAP's fuzzy membership (McInnes et al. 2018, §3): ``w_j = exp(-(d_j - rho) / sigma)`` with
``rho`` the distance to the nearest neighbour and ``sigma`` such that ``sum_j w_j = log2(k)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from explorer.errors import DataError, ModelError

__all__ = ["KnnPlacer"]


def _unit_rows(X: Any) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise DataError(f"embeddings must be 2-D (n_objects, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError("embeddings contain NaN/inf rows; re-embed or drop those objects before mapping")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def membership_weights(dist: np.ndarray, iterations: int = 24) -> np.ndarray:
    """UMAP-style fuzzy membership of each row's ``k`` neighbours, ``(m, k)`` distances -> ``(m, k)`` weights.

    ``sigma`` is found by bisection between 0 and a bound where the sum surely exceeds ``log2(k)``
    (``24`` halvings: relative precision 6e-8), vectorised over rows.
    """
    dist = np.asarray(dist, dtype=np.float64)
    k = dist.shape[1]
    gap = np.maximum(dist - dist[:, :1], 0.0)
    if k < 3:
        return np.ones_like(gap)
    target = math.log2(k)
    lo = np.zeros((len(dist), 1))
    hi = gap.max(axis=1, keepdims=True) / math.log(k / target) + 1e-12  # here every term exceeds target / k
    for _ in range(iterations):
        sigma = 0.5 * (lo + hi)
        too_big = np.exp(-gap / sigma).sum(axis=1, keepdims=True) > target
        hi = np.where(too_big, sigma, hi)
        lo = np.where(too_big, lo, sigma)
    return np.exp(-gap / np.maximum(0.5 * (lo + hi), 1e-12))


class KnnPlacer:
    """New objects ``(m, d)`` -> map coordinates ``(m, 2)`` from the coordinates of their nearest fitted objects.

    Parameters
    ----------
    n_neighbors : int
        Neighbours averaged (UMAP's default 15).
    nlist : int, optional
        IVF lists of the FAISS index over the fitted objects; default ``clip(4 sqrt(n), 1, 4096)`` (~80 objects
        per list), and an exact flat index below 20,000 fitted objects.
    nprobe : int
        Lists visited per query. Measured with 100k fitted objects (64-d): 8 of 1,264 lists place objects within
        3% of the map radius of where exact neighbours put them, at ~40 ms CPU per 1,000 objects (16 of 316
        lists: exact, 90 ms).
    random_state : int
        Seed of the IVF k-means.

    Attributes
    ----------
    coords_ : numpy.ndarray
        ``(n, 2)`` float32 map coordinates of the fitted objects.
    index_ : faiss.Index
        Inner-product index over their L2-normalised embeddings (cosine, as the maps use).
    """

    def __init__(
        self, n_neighbors: int = 15, nlist: int | None = None, nprobe: int = 8, random_state: int = 0
    ):
        self.n_neighbors = n_neighbors
        self.nlist = nlist
        self.nprobe = nprobe
        self.random_state = random_state

    def fit(self, X: Any, coords: Any) -> KnnPlacer:
        """Remember the map ``coords`` (n, 2) of the objects ``X`` (n, d)."""
        import faiss

        X = _unit_rows(X)
        coords = np.ascontiguousarray(coords, dtype=np.float32)
        if coords.shape != (len(X), 2):
            raise DataError(f"coords {coords.shape} must be (n, 2) for {len(X)} embeddings")
        if len(X) < 2:
            raise DataError("a placer needs at least 2 fitted objects")
        n, d = X.shape
        if n < 20_000 and self.nlist is None:
            index = faiss.IndexFlatIP(d)
        else:
            nlist = int(self.nlist or np.clip(int(4 * math.sqrt(n)), 1, 4096))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(self.random_state)
            rng = np.random.default_rng(self.random_state)
            train = X if n <= 64 * nlist else X[np.sort(rng.choice(n, 64 * nlist, replace=False))]
            index.train(train)
            index.nprobe = int(min(self.nprobe, nlist))
        index.add(X)
        self.index_ = index
        self.coords_ = coords
        self.n_features_in_ = d
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Coordinates ``(m, 2)`` float32 of new objects ``X`` (m, d)."""
        if not hasattr(self, "index_"):
            raise ModelError("this KnnPlacer is not fitted yet; call fit(X, coords) first")
        X = _unit_rows(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"embeddings have {X.shape[1]} features; the map was fitted on {self.n_features_in_}"
            )
        out = np.empty((len(X), 2), np.float32)
        k = int(min(self.n_neighbors, self.index_.ntotal))
        step = 65_536
        for a in range(0, len(X), step):
            sims, rows = self.index_.search(X[a : a + step], k)
            missing = rows < 0  # IVF may find fewer than k on sparse lists
            sims = np.where(missing, -1.0, sims)
            rows = np.where(missing, 0, rows)
            w = membership_weights(1.0 - sims)  # cosine distance
            w[missing] = 0.0
            w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
            out[a : a + step] = np.einsum("mk,mkc->mc", w, self.coords_[rows]).astype(np.float32)
        return out

    def fit_transform(self, X: Any, coords: Any) -> np.ndarray:
        return self.fit(X, coords).transform(X)

    # faiss indexes do not pickle: serialise them for Dask workers
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "index_" in state:
            import faiss

            state["index_"] = faiss.serialize_index(state["index_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "index_" in state:
            import faiss

            state["index_"] = faiss.deserialize_index(state["index_"])
        self.__dict__.update(state)
