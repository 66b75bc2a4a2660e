"""Find-similar: exact top-k equals brute force, Rocchio-style negatives, FAISS recall, errors that name ids."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from explorer.analysis.neighbours import SimilarityIndex
from explorer.errors import DataError


@pytest.fixture(scope="module")
def vectors():
    """Three well separated clusters of 16-d vectors, 300 objects each."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 3
    X = np.concatenate([c + rng.normal(size=(300, 16)) for c in centres]).astype(np.float32)
    ids = np.array([f"o{i}" for i in range(len(X))], dtype=object)
    return X, ids


def brute_top(X, q, k, exclude=()):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    s = Xn @ (q / np.linalg.norm(q))
    s[list(exclude)] = -np.inf
    return np.argsort(-s, kind="stable")[:k], s


def test_exact_query_equals_brute_force(vectors):
    X, ids = vectors
    index = SimilarityIndex(method="exact").fit(X, ids)
    result = index.query("o5", k=10)
    rows, s = brute_top(X, X[5], 10, exclude=[5])
    assert result["id"].tolist() == ids[rows].tolist()
    np.testing.assert_allclose(result["similarity"], s[rows], rtol=1e-5)
    assert result["rank"].tolist() == list(range(1, 11))
    assert "o5" in index.query("o5", k=3, exclude_query=False)["id"].tolist()


def test_negatives_push_results_away(vectors):
    X, ids = vectors
    index = SimilarityIndex(method="exact", negative_weight=0.5).fit(X, ids)
    pos, neg = ["o1", "o2"], ["o301"]  # cluster 0 liked, an object of cluster 1 not
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    q = Xn[[1, 2]].mean(axis=0) - 0.5 * Xn[301]
    q /= np.linalg.norm(q)
    np.testing.assert_allclose(index.query_direction(pos, neg), q, rtol=1e-5, atol=1e-6)
    plain = index.query(pos, k=300, exclude_query=False)
    pushed = index.query(pos, neg, k=300, exclude_query=False)
    cluster1 = {f"o{i}" for i in range(300, 600)}
    # the negative lowers every cluster-1 object's similarity relative to the positives' own cluster
    s_plain = dict(zip(plain["id"], plain["similarity"], strict=True))
    s_push = dict(zip(pushed["id"], pushed["similarity"], strict=True))
    common = [i for i in s_plain if i in s_push and i in cluster1]
    assert all(s_push[i] < s_plain[i] for i in common)
    excluded = index.query(pos, neg, k=5)
    assert not set(excluded["id"]) & {"o1", "o2", "o301"}


def test_query_vector_and_exclusions(vectors):
    X, ids = vectors
    index = SimilarityIndex(method="exact").fit(X, ids)
    v = X[10] * 7.0  # scale does not matter for cosine
    result = index.query_vector(v, k=4, exclude_ids=["o10"])
    rows, _ = brute_top(X, X[10], 4, exclude=[10])
    assert result["id"].tolist() == ids[rows].tolist()
    with pytest.raises(DataError, match="16-d"):
        index.query_vector(np.ones(3))


def test_unknown_id_is_named(vectors):
    X, ids = vectors
    index = SimilarityIndex(method="exact").fit(X, ids)
    with pytest.raises(DataError, match="'ghost'"):
        index.query(["o1", "ghost"])
    with pytest.raises(DataError, match="'ghost'"):
        index.query(["o1"], negative_ids=["ghost"])
    with pytest.raises(DataError, match="cancel"):
        SimilarityIndex(negative_weight=1.0).fit(X, ids).query("o1", "o1")


def test_k_larger_than_catalogue_is_clipped_with_a_warning(vectors):
    X, ids = vectors
    index = SimilarityIndex(method="exact").fit(X[:12], ids[:12])
    with pytest.warns(UserWarning, match="k=50"):
        result = index.query("o0", k=50)
    assert len(result) == 11 and "o0" not in result["id"].tolist()


def test_nan_and_zero_rows_are_refused_naming_ids(vectors):
    X, ids = vectors
    bad = X[:20].copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(DataError, match=r"2 embedding rows.*'o3', 'o7'"):
        SimilarityIndex().fit(bad, ids[:20])
    zero = X[:20].copy()
    zero[4] = 0
    with pytest.raises(DataError, match="'o4'"):
        SimilarityIndex().fit(zero, ids[:20])
    with pytest.raises(DataError, match="not unique"):
        SimilarityIndex().fit(X[:3], ["a", "b", "a"])


@pytest.mark.parametrize("method", ["faiss-ivf", "faiss-hnsw"])
def test_faiss_methods_find_the_exact_neighbours_and_survive_a_state_round_trip(vectors, method, tmp_path):
    X, ids = vectors
    exact = SimilarityIndex(method="exact").fit(X, ids)
    ann = SimilarityIndex(method=method, nlist=8, nprobe=4).fit(X, ids)
    assert ann.method_ == method
    recall = []
    for q in ["o0", "o350", "o700", "o42"]:
        truth = set(exact.query(q, k=20)["id"])
        recall.append(len(truth & set(ann.query(q, k=20)["id"])) / 20)
    assert np.mean(recall) >= 0.9
    np.savez(tmp_path / "index.npz", **ann.to_state())
    again = SimilarityIndex.from_state(dict(np.load(tmp_path / "index.npz")))
    assert again.query("o0", k=20)["id"].tolist() == ann.query("o0", k=20)["id"].tolist()


def test_auto_uses_exact_for_small_catalogues(vectors):
    X, ids = vectors
    assert SimilarityIndex().fit(X, ids).method_ == "exact"
    assert SimilarityIndex(auto_min_size=100).fit(X, ids).method_ == "faiss-ivf"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SimilarityIndex().fit(X, ids).query("o1", k=5)


@pytest.mark.parametrize("k", [1, 20, 333])
def test_top_k_rows_is_exact_with_ties_and_adversarial_samples(k):
    """The sampled-threshold top-k must give exactly the rows a full sort gives, ties at the k-th value included,
    even when the strided sample sees only the largest values (then it falls back to a full partition)."""
    from explorer.analysis.neighbours import top_k_rows

    rng = np.random.default_rng(k)
    n = 50_000
    values = np.round(rng.normal(size=n), 2).astype(np.float32)  # many ties
    adversarial = np.zeros(n, np.float32)
    step = n // (64 * k)
    adversarial[:: max(step, 1)] = rng.random(len(adversarial[:: max(step, 1)])) + 1  # only sampled rows high
    for v in (values, adversarial, np.full(n, 0.5, np.float32)):
        got = top_k_rows(v, k)
        kth = np.sort(v)[::-1][k - 1]
        assert sorted(got.tolist()) == np.flatnonzero(v >= kth).tolist()


def test_exact_search_on_a_larger_index_matches_brute_force_from_many_threads():
    """At 30,000 rows the exact search selects from a sampled threshold and reuses one result buffer; queries
    from several threads at once (app sessions) must still each get the brute-force answer."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(30_000, 12)).astype(np.float32)
    X[100:110] = X[5]  # exact duplicates of the query object: ties broken by row
    ids = np.array([f"o{i}" for i in range(len(X))], dtype=object)
    index = SimilarityIndex(method="exact").fit(X, ids)
    queries = [5, 17, 2_000, 29_999] * 4

    def expected(r):
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        s = (Xn @ Xn[r]).astype(np.float32)
        s[r] = -np.inf
        return ids[np.lexsort((np.arange(len(s)), -s))[:15]].tolist()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda r: index.query(ids[r], k=15)["id"].tolist(), queries))
    assert results == [expected(r) for r in queries]
    assert results[0][:10] == [f"o{i}" for i in range(100, 110)]
