"""2-D maps: PCA (fast) and seeded UMAP (slow: numba compiles on the first fit of a process)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.projection import Projector
from explorer.errors import DataError, ModelError


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 12)) * 4
    X = np.concatenate([c + rng.normal(size=(150, 12)) for c in centres]).astype(np.float32)
    return X, np.array([f"o{i}" for i in range(len(X))])


def test_pca_map_is_float32_deterministic_and_places_new_objects(blobs):
    X, ids = blobs
    proj = Projector(method="pca").fit(X, ids)
    emb = proj.embedding_
    assert emb.shape == (len(X), 2) and emb.dtype == np.float32
    np.testing.assert_array_equal(Projector(method="pca").fit_transform(X), emb)
    np.testing.assert_allclose(proj.transform(X[:7]), emb[:7], atol=1e-5)
    # cosine metric: a row and the same row scaled land on the same spot
    np.testing.assert_allclose(proj.transform(X[:1] * 5), emb[:1], atol=1e-5)
    # the three clusters stay apart on the map
    centres = np.array([emb[i * 150 : (i + 1) * 150].mean(axis=0) for i in range(3)])
    spread = max(emb[i * 150 : (i + 1) * 150].std(axis=0).max() for i in range(3))
    assert min(np.linalg.norm(centres[a] - centres[b]) for a, b in [(0, 1), (0, 2), (1, 2)]) > spread


def test_pca_with_sample_and_state_round_trip(blobs, tmp_path):
    X, ids = blobs
    proj = Projector(method="pca", sample_size=100).fit(X)
    assert proj.fit_rows_.size == 100 and proj.embedding_.shape == (len(X), 2)
    np.savez(tmp_path / "map.npz", **proj.to_state())
    again = Projector.from_state(dict(np.load(tmp_path / "map.npz")))
    np.testing.assert_array_equal(again.embedding_, proj.embedding_)
    np.testing.assert_allclose(again.transform(X[:5]), proj.transform(X[:5]), atol=1e-6)


def test_nan_rows_are_refused_with_count_and_ids(blobs):
    X, ids = blobs
    bad = X.copy()
    bad[[4, 40, 41]] = np.nan
    with pytest.raises(DataError, match=r"3 of 450 .*'o4', 'o40', 'o41'"):
        Projector(method="pca").fit(bad, ids=ids)
    with pytest.raises(DataError, match=r"3 of 450 .*\[4, 40, 41\]"):
        Projector(method="pca").fit(bad)
    with pytest.raises(DataError, match="features"):
        Projector(method="pca").fit(X).transform(X[:, :5])
    with pytest.raises(DataError, match="4096"):
        Projector().warm_up(n=100)


def test_umap_coordinates_without_embeddings_cannot_place_new_objects(blobs):
    X, _ = blobs
    state = {
        "params": '{"method": "umap", "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 42, '
        '"sample_size": null, "chunk_size": 50000, "n_epochs": null, "progress": false}',
        "embedding": np.zeros((len(X), 2), np.float32),
        "fit_rows": np.arange(len(X)),
        "n_features_in": np.asarray(12),
    }
    proj = Projector.from_state(state)
    assert proj.embedding_.shape == (len(X), 2)
    with pytest.raises(ModelError, match="from_state"):
        proj.transform(X[:3])


@pytest.mark.slow
def test_umap_is_reproducible_with_a_seed_and_samples_large_inputs(blobs):
    X, ids = blobs
    a = Projector(n_epochs=60, random_state=7).fit_transform(X, ids)
    b = Projector(n_epochs=60, random_state=7).fit_transform(X, ids)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (len(X), 2)
    sampled = Projector(n_epochs=60, sample_size=200, random_state=7).fit(X)
    assert sampled.fit_rows_.size == 200 and np.isfinite(sampled.embedding_).all()
    again = Projector.from_state(sampled.to_state(), X)  # refits on the same rows + seed
    np.testing.assert_allclose(again.transform(X[:5]), sampled.transform(X[:5]), atol=1e-4)
