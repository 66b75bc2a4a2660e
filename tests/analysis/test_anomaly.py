"""Anomaly ranking: planted outliers come first; labels re-rank (kernel for kNN, the default; AAD for the forest)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from explorer.analysis.anomaly import AnomalyScorer, discovery_curve
from explorer.errors import DataError


@pytest.fixture(scope="module")
def singles():
    """2,000 Gaussian objects in 8-d with 10 lone outliers (rows 0-9) planted 9 sigma out in random directions."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2010, 8)).astype(np.float32)
    direction = rng.normal(size=(10, 8))
    X[:10] = 9 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    return X, np.array([f"s{i}" for i in range(len(X))])


@pytest.fixture(scope="module")
def planted():
    """2,000 Gaussian objects in 4-d plus two tight groups of 10 outliers (A: far on axis 0, B: far on axis 1)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4)).astype(np.float32)
    X[:10] = rng.normal(size=(10, 4)) * 0.3 + np.array([12, 0, 0, 0])
    X[10:20] = rng.normal(size=(10, 4)) * 0.3 + np.array([0, -12, 0, 0])
    ids = np.array([f"o{i}" for i in range(len(X))], dtype=object)
    return X, ids


def positions(scorer):
    """Rank position (0 = most anomalous) of every row."""
    pos = np.empty(len(scorer.ids_), dtype=int)
    pos[scorer.rank_rows()] = np.arange(len(scorer.ids_))
    return pos


@pytest.mark.parametrize("method", ["iforest", "knn"])
def test_planted_outliers_rank_first(singles, method):
    X, ids = singles
    scorer = AnomalyScorer(method=method).fit(X, ids)
    assert set(scorer.rank(top=12)) >= set(ids[:10])
    assert scorer.rank()[:12].tolist() == scorer.rank(top=12).tolist()
    assert scorer.scores_[:10].min() > np.quantile(scorer.scores_, 0.99)  # higher = more anomalous


def test_forest_scores_follow_sklearn_isolation_forest(planted):
    from sklearn.ensemble import IsolationForest

    X, ids = planted
    ours = AnomalyScorer(method="iforest", random_state=3).fit(X, ids).prior_scores_
    theirs = -IsolationForest(random_state=3).fit(X).score_samples(X)
    assert spearmanr(ours, theirs).statistic > 0.99


@pytest.mark.parametrize(("method", "feedback"), [("iforest", "aad"), ("iforest", "kernel"), ("knn", "auto")])
def test_labelling_a_top_object_normal_moves_similar_objects_down(planted, method, feedback):
    X, ids = planted
    scorer = AnomalyScorer(method=method, feedback=feedback).fit(X, ids)
    before = positions(scorer)
    queue_before = set(scorer.rank(top=20))
    top_a = min(range(10), key=lambda r: before[r])  # the best-ranked object of group A
    scorer.update({ids[top_a]: "normal"})
    after = positions(scorer)
    group_a = [r for r in range(10) if r != top_a]
    assert after[top_a] > before[top_a]
    assert np.median(after[group_a]) > np.median(before[group_a]) + 20
    assert np.median(after[10:20]) <= np.median(before[10:20])  # the other group does not sink
    queue_after = set(scorer.rank(top=20, exclude_labelled=True))
    assert ids[top_a] not in queue_after
    assert len(queue_after & set(ids[:10])) < len(queue_before & set(ids[:10]))


@pytest.mark.parametrize("method", ["iforest", "knn"])
def test_labelling_an_anomaly_pulls_its_neighbours_up(planted, method):
    X, ids = planted
    rng = np.random.default_rng(1)
    X = X.copy()
    X[20:25] = rng.normal(size=(5, 4)) * 0.2 + np.array([0, 0, 2.5, 0])  # a mild group
    scorer = AnomalyScorer(method=method).fit(X, ids)
    before = positions(scorer)
    scorer.update({ids[20]: "anomaly"})
    after = positions(scorer)
    assert after[20] < before[20]
    assert np.median(after[21:25]) < np.median(before[21:25])


def test_label_kinds_and_removal(planted):
    X, ids = planted
    scorer = AnomalyScorer().fit(X, ids)
    scorer.update({ids[0]: "artefact"})
    as_artefact = scorer.scores_.copy()
    scorer.update({ids[0]: "normal"})
    np.testing.assert_allclose(scorer.scores_, as_artefact)  # same for the ranking ...
    scorer.update({ids[0]: "artefact", ids[1]: "spiral"})
    assert scorer.labels_ == {ids[0]: "artefact", ids[1]: "spiral"}  # ... but kept distinct
    ignoring = AnomalyScorer(other_classes="ignore").fit(X, ids).update({ids[1]: "spiral"})
    np.testing.assert_allclose(ignoring.scores_, ignoring.prior_scores_)
    scorer.update({ids[0]: None, ids[1]: None})
    assert scorer.labels_ == {}
    np.testing.assert_allclose(scorer.scores_, scorer.prior_scores_)


def test_updates_are_order_independent_and_score_new_data_consistently(planted):
    X, ids = planted
    one = AnomalyScorer(method="iforest").fit(X, ids)
    one.update({ids[0]: "normal", ids[15]: "anomaly", ids[500]: "normal"})
    two = AnomalyScorer(method="iforest").fit(X, ids)
    for k, v in [(ids[500], "normal"), (ids[15], "anomaly"), (ids[0], "normal")]:
        two.update({k: v})
    np.testing.assert_allclose(one.scores_, two.scores_)
    np.testing.assert_allclose(one.score_samples(X[:50]), one.scores_[:50])
    kern = AnomalyScorer(method="knn").fit(X, ids).update({ids[0]: "normal"})
    assert kern.score_samples(X[:5]).shape == (5,)
    assert kern.score_samples(X[:5])[0] < kern.prior_scores_[0]


def test_bad_inputs_are_named(planted):
    X, ids = planted
    scorer = AnomalyScorer().fit(X, ids)
    with pytest.raises(DataError, match="'nobody'"):
        scorer.update({"nobody": "anomaly"})
    with pytest.raises(DataError, match="mapping"):
        scorer.update([("o1", "anomaly")])
    bad = X[:50].copy()
    bad[[2, 9]] = np.nan
    with pytest.raises(DataError, match=r"2 rows.*'o2', 'o9'"):
        AnomalyScorer().fit(bad, ids[:50])
    with pytest.raises(ValueError, match="aad"):
        AnomalyScorer(feedback="aad").fit(X, ids)  # AAD re-weights forest leaves; the default is kNN


@pytest.mark.parametrize("method", ["iforest", "knn"])
def test_state_round_trip_replays_labels(planted, method, tmp_path):
    X, ids = planted
    scorer = AnomalyScorer(method=method).fit(X, ids).update({ids[0]: "normal", ids[11]: "anomaly"})
    np.savez(tmp_path / "scorer.npz", **scorer.to_state())
    again = AnomalyScorer.from_state(dict(np.load(tmp_path / "scorer.npz")), X)
    np.testing.assert_allclose(again.scores_, scorer.scores_)
    assert again.labels_ == {"o0": "normal", "o11": "anomaly"}


def test_discovery_curve_counts_and_random_expectation():
    ranked = ["a", "b", "c", "d", "e", "f", "g", "h"]
    curve = discovery_curve(ranked, {"a", "c", "h"})
    assert curve["found"].tolist() == [1, 1, 2, 2, 2, 2, 2, 3]
    np.testing.assert_allclose(curve["random"], np.arange(1, 9) * 3 / 8)
    assert curve["ideal"].tolist() == [1, 2, 3, 3, 3, 3, 3, 3]
    flags = np.array([True, False, True, False, False, False, False, True])
    assert discovery_curve(ranked, flags)["found"].tolist() == curve["found"].tolist()
    partial = discovery_curve(ranked[:4], {"a", "c", "h"}, n_total=8)
    np.testing.assert_allclose(partial["random"], np.arange(1, 5) * 3 / 8)
    with pytest.raises(DataError):
        discovery_curve(ranked, flags[:3])


def test_default_is_knn_with_kernel_feedback_and_a_local_reference(singles):
    X, ids = singles
    scorer = AnomalyScorer().fit(X, ids)
    assert (scorer.method, scorer.feedback_) == ("knn", "kernel")
    assert len(scorer.reference_rows_) == len(X)  # below reference_size every object is a reference
    assert set(scorer.rank(top=10)) == set(ids[:10])


def test_knn_ranks_a_rare_group_above_the_sparse_tail_of_a_common_one():
    """What the default is for: a small tight group of odd objects outranks ordinary objects in a thin tail.

    2,000 objects on a curved 1-d manifold in 8-d (dense in the middle, sparse at both ends: the ordinary tail)
    plus 10 objects slightly off the manifold (the oddities). kNN distance to a reference of all objects puts
    the oddities in its top 1 %; the isolation forest, which isolates the sparse ends first, does not.
    """
    rng = np.random.default_rng(4)
    t = rng.normal(size=2000)
    X = np.zeros((2010, 8), np.float32)
    X[:2000, 0], X[:2000, 1] = t, 0.3 * t**2
    X[:2000] += rng.normal(size=(2000, 8)) * 0.02
    X[2000:, 0] = rng.uniform(-0.5, 0.5, 10)
    X[2000:, 2] = 0.4 + rng.normal(size=10) * 0.02  # off the manifold, inside its bulk
    ids = np.array([f"m{i}" for i in range(len(X))])
    knn = AnomalyScorer().fit(X, ids)
    forest = AnomalyScorer(method="iforest").fit(X, ids)
    top = 20  # top 1 %
    assert len(set(knn.rank(top=top)) & set(ids[2000:])) >= 8
    assert len(set(forest.rank(top=top)) & set(ids[2000:])) < len(set(knn.rank(top=top)) & set(ids[2000:]))


def test_saved_prior_scores_seed_a_knn_scorer_that_learns_the_same_way(planted):
    X, ids = planted
    fresh = AnomalyScorer().fit(X, ids)
    seeded = AnomalyScorer().fit(X, ids, prior_scores=fresh.prior_scores_.astype(np.float32))
    np.testing.assert_allclose(seeded.prior_scores_, fresh.prior_scores_, rtol=1e-6)
    labels = {ids[0]: "normal", ids[15]: "anomaly"}
    np.testing.assert_allclose(seeded.update(labels).scores_, fresh.update(labels).scores_, rtol=1e-5)
    with pytest.raises(DataError, match="knn"):
        AnomalyScorer(method="iforest").fit(X, ids, prior_scores=fresh.prior_scores_)
    with pytest.raises(DataError, match="2000 finite scores"):
        AnomalyScorer().fit(X, ids, prior_scores=fresh.prior_scores_[:5])


def test_side_features_keep_a_normal_label_from_sinking_a_detector_outlier_beside_it(singles):
    """Object 1 sits next to object 0 in the embedding; a detector flags object 1 far out (significance 9) and
    object 0 only at the edge of its tail (2.5). Labelling object 0 normal sinks object 1 with it when labels
    spread in the embedding alone, but not when they also spread in the detectors' significances."""
    X, ids = singles
    X = X.copy()
    X[1] = X[0] + 0.05
    rng = np.random.default_rng(0)
    side = np.abs(rng.normal(0, 0.5, (len(X), 2))).astype(np.float32)
    side[0, 0], side[1, 0] = 2.5, 9.0
    prior = AnomalyScorer().fit(X, ids).prior_scores_
    prior[1] = prior[0]  # same combined score to start with: only the label decides

    def after_label(side_features):
        scorer = AnomalyScorer().fit(X, ids, prior_scores=prior, side_features=side_features)
        before = positions(scorer)[1]
        scorer.update({ids[0]: "normal"})
        return before, positions(scorer)[1], scorer

    before, plain, _ = after_label(None)
    assert before < 12 and plain > 50  # dragged down with its neighbour
    before, kept, scorer = after_label(side)
    assert kept <= before  # still at the top: it was flagged for another reason
    assert positions(scorer)[0] > 50  # the labelled object itself went down
    # persisted and rebuilt with the same side features: the same ranking
    learnt = AnomalyScorer().fit(X, ids, side_features=side).update({ids[0]: "normal"})
    again = AnomalyScorer.from_state(learnt.to_state(), X, side_features=side)
    np.testing.assert_allclose(again.scores_, learnt.scores_)
    with pytest.raises(DataError, match="side_features"):
        AnomalyScorer().fit(X, ids, side_features=side[:10])


def test_labels_weigh_the_detector_that_flagged_each_object(singles):
    """Detector A flags 30 ordinary objects (significance 4.0-4.5), detector B 20 others (3.5-3.9). A user who
    calls ten of A's normal has told the ranking to trust A less: B's objects come first, A's others sink, and
    nothing else moves; an anomaly label on one of B's raises everything B flags."""
    X, ids = singles
    X = X.copy()
    rng = np.random.default_rng(1)
    S = np.abs(rng.normal(0, 0.3, (len(X), 3))).astype(np.float32)  # detectors A, B, C
    a_rows, b_rows = np.arange(100, 130), np.arange(200, 220)
    S[a_rows, 0] = np.linspace(4.5, 4.0, len(a_rows))
    S[b_rows, 1] = np.linspace(3.9, 3.5, len(b_rows))
    scorer = AnomalyScorer().fit(X, ids, side_features=S, detectors=S)
    np.testing.assert_allclose(scorer.scores_, S.max(axis=1), rtol=1e-6)  # before any label: the best detector
    assert set(scorer.rank_rows(top=30)) == set(a_rows)
    np.testing.assert_array_equal(scorer.detector_trust(), [0, 0, 0])
    untouched = scorer.scores_[b_rows].copy()

    scorer.update({ids[r]: "normal" for r in a_rows[:10]})
    trust = scorer.detector_trust()
    assert trust[0] < -0.7 and trust[1] == trust[2] == 0
    top = scorer.rank_rows(top=20, exclude_labelled=True)
    assert np.isin(top, b_rows).sum() >= 16, top  # B's objects now lead
    np.testing.assert_allclose(scorer.scores_[b_rows], untouched, rtol=1e-6)  # the normals spread no kernel
    rest = np.setdiff1d(np.arange(len(X)), a_rows[:10])  # every other object: its best trusted detector
    np.testing.assert_allclose(scorer.scores_[rest], (S + trust.astype(np.float32)).max(axis=1)[rest], rtol=1e-6)
    assert (scorer.scores_[a_rows[:10]] < scorer.scores_[a_rows[10:]].min()).all()  # the labelled ones lowest

    before = scorer.scores_.copy()
    scorer.update({ids[201]: "anomaly"})
    assert scorer.detector_trust()[1] > 0.1
    np.testing.assert_allclose(scorer.scores_[b_rows] - before[b_rows], scorer.detector_trust()[1], rtol=1e-4)
    np.testing.assert_allclose(scorer.scores_[a_rows], before[a_rows], rtol=1e-6)  # A's trust is A's alone
    assert (scorer.scores_ >= before - 1e-6).all()
    # persisted and rebuilt with the same detectors: the same ranking; bad input
    again = AnomalyScorer.from_state(scorer.to_state(), X, side_features=S, detectors=S)
    np.testing.assert_allclose(again.scores_, scorer.scores_, rtol=1e-6)
    with pytest.raises(DataError, match="detectors must be"):
        AnomalyScorer().fit(X, ids, detectors=S[:10])
    with pytest.raises(DataError, match="method='knn'"):
        AnomalyScorer(method="iforest").fit(X, ids, detectors=S)
