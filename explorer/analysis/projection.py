"""Project embeddings to a 2-D map: seeded UMAP (umap-learn) with sampling for large catalogues, or PCA.

UMAP with a ``random_state`` is reproducible (and single-threaded: umap-learn turns parallelism off when seeded).
For millions of objects, ``sample_size`` fits UMAP on a seeded sample and places everyone else with
``transform``, in chunks. PCA is the fast fallback; with ``metric="cosine"`` the rows are L2-normalised first so
that both maps see the same geometry.

The first UMAP fit in a fresh process pays numba compilation (pynndescent's kernels are not cached on disk);
:meth:`Projector.warm_up` pays it on a small random set (>= 4,096 points, or the large-data code path is never
compiled). Measured numbers are in ``benchmarks/bench_engine.py``'s output.

Persist the *coordinates* (:meth:`Projector.to_state`), not the UMAP object. A projector restored with
:meth:`Projector.from_state` and given the same embeddings refits UMAP on the same rows with the same seed (an
identical model) the first time :meth:`Projector.transform` needs it.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import numpy as np

from explorer.errors import DataError, ModelError
from explorer.progress import progress_bar

__all__ = ["Projector"]

_METHODS = ("umap", "pca")


def _check_finite(X: np.ndarray, ids: Any = None) -> None:
    """Raise DataError naming how many rows hold NaN/inf, and the first ids (or row numbers)."""
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        named = np.asarray(ids)[bad[:5]].tolist() if ids is not None else bad[:5].tolist()
        what = "ids" if ids is not None else "rows"
        raise DataError(
            f"{bad.size} of {len(X)} embedding rows contain NaN/inf (first {what}: {named}); "
            "re-embed or drop those objects before mapping"
        )


class Projector:
    """Embeddings ``(n, d)`` -> map coordinates ``(n, 2)`` float32, scikit-learn style.

    Parameters
    ----------
    method : {"umap", "pca"}
        UMAP (umap-learn) or PCA (scikit-learn).
    n_neighbors, min_dist, metric : UMAP parameters
        ``metric`` also decides whether PCA normalises rows (``"cosine"``).
    random_state : int
        Seed: UMAP and the sample are reproducible.
    sample_size : int, optional
        Fit on this many seeded rows and ``transform`` the rest (for 1M-10M objects).
    chunk_size : int
        Rows per ``transform`` call when placing the rest.
    n_epochs : int, optional
        UMAP optimisation epochs (umap-learn's default: 200 for large data, 500 for small).
    progress : bool
        Show a tqdm bar while transforming chunks.

    Attributes
    ----------
    embedding_ : numpy.ndarray
        ``(n, 2)`` float32 coordinates of the fitted rows, in input order.
    fit_rows_ : numpy.ndarray
        Rows the model was fitted on (all rows unless ``sample_size``).
    model_ : umap.UMAP or sklearn.decomposition.PCA
        The fitted model (``None`` after :meth:`from_state` until needed).
    timings_ : dict
        Seconds spent in ``fit`` and ``transform_rest``.
    """

    def __init__(
        self,
        method: str = "umap",
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "cosine",
        random_state: int = 42,
        sample_size: int | None = None,
        chunk_size: int = 50_000,
        n_epochs: int | None = None,
        progress: bool = False,
    ) -> None:
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.sample_size = sample_size
        self.chunk_size = chunk_size
        self.n_epochs = n_epochs
        self.progress = progress

    # ---- helpers --------------------------------------------------------------------------------------------
    def _prepare(self, X: Any, ids: Any = None, check_features: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise DataError(f"embeddings must be a 2-D array (n_objects, n_features), got shape {X.shape}")
        if ids is not None and len(ids) != len(X):
            raise DataError(f"{len(ids)} ids for {len(X)} embedding rows; pass one id per row")
        _check_finite(X, ids)
        if check_features and hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise DataError(
                f"embeddings have {X.shape[1]} features; this map was fitted on {self.n_features_in_}"
            )
        return X

    def _pca_input(self, X: np.ndarray) -> np.ndarray:
        if self.metric != "cosine":
            return X
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(norms > 0, norms, 1.0)

    def _make_umap(self, n_fit: int) -> Any:
        import umap

        k = self.n_neighbors
        if k >= n_fit:
            warnings.warn(f"n_neighbors={k} >= {n_fit} objects; using n_neighbors={n_fit - 1}", stacklevel=3)
            k = n_fit - 1
        return umap.UMAP(
            n_neighbors=k,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            n_components=2,
            n_epochs=self.n_epochs,
            low_memory=True,
            verbose=False,
            # umap-learn computes exact neighbours of < 4,096 points by calling the metric from Python once per
            # pair (~1 min for 3,000 points, every fit); nearest-neighbour descent is the fast path at any size
            force_approximation_algorithm=True,
        )

    # ---- estimator API --------------------------------------------------------------------------------------
    def fit(self, X: Any, ids: Any = None) -> Projector:
        """Fit the map on ``X`` (n, d); ``ids`` (optional) name rows in error messages.

        Raises
        ------
        DataError
            NaN/inf rows (how many, and the first ids), fewer than 3 rows, or a wrong shape.
        """
        if self.method not in _METHODS:
            raise ValueError(f"method={self.method!r}; expected one of {_METHODS}")
        X = self._prepare(X, ids, check_features=False)
        n = len(X)
        if n < 3:
            raise DataError(f"a map needs at least 3 objects, got {n}")
        self.n_features_in_ = X.shape[1]
        if self.sample_size is not None and int(self.sample_size) < n:
            m = max(int(self.sample_size), 3)
            rng = np.random.default_rng(self.random_state)
            self.fit_rows_ = np.sort(rng.choice(n, m, replace=False))
        else:
            self.fit_rows_ = np.arange(n)
        self.timings_ = {}
        t0 = time.perf_counter()
        self.model_ = self._fit_model(X[self.fit_rows_])
        self.timings_["fit"] = time.perf_counter() - t0
        emb = np.empty((n, 2), dtype=np.float32)
        emb[self.fit_rows_] = self._fitted_coords(X[self.fit_rows_])
        if self.fit_rows_.size < n:
            rest = np.setdiff1d(np.arange(n), self.fit_rows_, assume_unique=True)
            t0 = time.perf_counter()
            emb[rest] = self.transform(X[rest])
            self.timings_["transform_rest"] = time.perf_counter() - t0
        self.embedding_ = emb
        return self

    def _fit_model(self, X: np.ndarray) -> Any:
        if self.method == "pca":
            from sklearn.decomposition import PCA

            return PCA(n_components=2, random_state=self.random_state).fit(self._pca_input(X))
        model = self._make_umap(len(X))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
            warnings.filterwarnings("ignore", message=".*gradient function is not yet implemented.*")
            model.fit(X)
        return model

    def _fitted_coords(self, X: np.ndarray) -> np.ndarray:
        if self.method == "pca":
            return self.model_.transform(self._pca_input(X)).astype(np.float32)
        return np.asarray(self.model_.embedding_, dtype=np.float32)

    def transform(self, X: Any) -> np.ndarray:
        """Place new objects ``X`` (m, d) on the fitted map: ``(m, 2)`` float32, in chunks of ``chunk_size``."""
        if not hasattr(self, "embedding_") and not hasattr(self, "fit_rows_"):
            raise ModelError("this Projector is not fitted yet; call fit(X) first")
        X = self._prepare(X)
        model = self._ensure_model()
        out = np.empty((len(X), 2), dtype=np.float32)
        if len(X) == 0:
            return out
        if self.method == "pca":
            out[:] = model.transform(self._pca_input(X))
            return out
        starts = range(0, len(X), int(self.chunk_size))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
            with progress_bar(starts, desc="umap transform", unit="chunk", disable=not self.progress) as bar:
                for a in bar:
                    out[a : a + self.chunk_size] = model.transform(X[a : a + self.chunk_size])
        return out

    def fit_transform(self, X: Any, ids: Any = None) -> np.ndarray:
        """:meth:`fit`, then return :attr:`embedding_`."""
        return self.fit(X, ids).embedding_

    # ---- warm-up --------------------------------------------------------------------------------------------
    def warm_up(self, n: int = 4096, d: int = 16) -> float:
        """Compile umap-learn's numba kernels now, on ``n`` random points; returns the seconds it took.

        ``n`` must be at least 4,096: below that umap-learn takes a small-data path and the first real fit
        still compiles. No-op (0.0) for PCA. Does not change this projector's fitted state.
        """
        if self.method != "umap":
            return 0.0
        if n < 4096:
            raise DataError(f"warm_up(n={n}): use n >= 4096 or the large-data code path is never compiled")
        rng = np.random.default_rng(0)
        X = rng.normal(size=(n, d)).astype(np.float32)
        t0 = time.perf_counter()
        probe = Projector(
            method="umap",
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=0,
            n_epochs=10,
        ).fit(X)
        probe.transform(X[:64])
        return time.perf_counter() - t0

    # ---- persistence ----------------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-able)."""
        keys = (
            "method",
            "n_neighbors",
            "min_dist",
            "metric",
            "random_state",
            "sample_size",
            "chunk_size",
            "n_epochs",
            "progress",
        )
        return {k: getattr(self, k) for k in keys}

    def to_state(self) -> dict[str, Any]:
        """Coordinates and what is needed to rebuild the model: numpy arrays + a JSON ``params`` string.

        Keys: ``params``, ``embedding`` (n, 2) float32, ``fit_rows``, ``n_features_in`` and, for PCA,
        ``pca_mean`` / ``pca_components`` (so PCA can ``transform`` straight after loading).
        """
        if not hasattr(self, "embedding_"):
            raise ModelError("this Projector is not fitted yet; call fit(X) first")
        state = {
            "params": json.dumps(self.get_params()),
            "embedding": self.embedding_,
            "fit_rows": self.fit_rows_,
            "n_features_in": np.asarray(self.n_features_in_),
        }
        if self.method == "pca" and self.model_ is not None:
            state["pca_mean"] = self.model_.mean_
            state["pca_components"] = self.model_.components_
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], X: Any = None) -> Projector:
        """Restore a projector saved by :meth:`to_state`.

        Parameters
        ----------
        X : array-like, optional
            The embeddings the map was fitted on. Needed only for UMAP ``transform`` after loading: UMAP is then
            refitted on the same rows with the same seed (an identical model), once, when first needed.
        """
        self = cls(**json.loads(str(state["params"])))
        self.embedding_ = np.asarray(state["embedding"], dtype=np.float32)
        self.fit_rows_ = np.asarray(state["fit_rows"])
        self.n_features_in_ = int(np.asarray(state["n_features_in"]))
        self.model_ = None
        self._refit_source = None if X is None else np.asarray(X, dtype=np.float32)
        if self.method == "pca" and "pca_components" in state:
            from sklearn.decomposition import PCA

            pca = PCA(n_components=2)
            pca.mean_ = np.asarray(state["pca_mean"])
            pca.components_ = np.asarray(state["pca_components"])
            pca.n_components_ = 2
            pca.whiten = False
            self.model_ = pca
        return self

    def _ensure_model(self) -> Any:
        if getattr(self, "model_", None) is not None:
            return self.model_
        source = getattr(self, "_refit_source", None)
        if source is None:
            raise ModelError(
                "this map was loaded from saved coordinates without its embeddings; pass X to "
                "Projector.from_state(state, X) to place new objects (UMAP is refitted on the same rows and seed)"
            )
        self.model_ = self._fit_model(source[self.fit_rows_])
        if not np.allclose(
            self._fitted_coords(source[self.fit_rows_]), self.embedding_[self.fit_rows_], atol=1e-4
        ):
            warnings.warn(
                "the refitted UMAP does not reproduce the saved coordinates (different embeddings or library "
                "version); new objects are placed on the refitted map",
                stacklevel=3,
            )
        return self.model_
