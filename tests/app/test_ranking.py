"""The live ranking starts from the workspace's saved kNN scores instead of searching again."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.anomaly import AnomalyScorer
from explorer.analysis.workspace_ops import score_workspace
from explorer.app.ranking import saved_prior_scores
from explorer.workspace import Workspace


@pytest.fixture
def scored(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 16)).astype(np.float32)
    X[:5] += 6.0  # five obvious outliers
    ids = np.array([f"s{i:04d}" for i in range(len(X))], dtype=object)
    ws.save_embeddings({"joint": (ids, X)}, meta={"models": {}})
    return ws, X, ids


def test_saved_knn_scores_seed_the_live_ranking(scored):
    ws, X, ids = scored
    score_workspace(ws, progress=False)
    emb = ws.embeddings()
    params = AnomalyScorer(random_state=0).get_params()
    prior = saved_prior_scores(ws, emb, params)
    saved = ws.scores()[0].set_index("id")["score"]
    assert prior is not None
    np.testing.assert_allclose(prior, saved.reindex(ids).to_numpy(), rtol=1e-6)
    ranked = AnomalyScorer(random_state=0).fit(X, ids, prior_scores=prior).rank(top=5)
    assert set(ranked) == set(ids[:5])


def test_scores_from_another_method_are_not_reused(scored):
    ws, _, _ = scored
    score_workspace(ws, method="iforest", progress=False)
    params = AnomalyScorer(random_state=0).get_params()
    assert saved_prior_scores(ws, ws.embeddings(), params) is None
    assert saved_prior_scores(ws, ws.embeddings(), {**params, "method": "iforest"}) is None
