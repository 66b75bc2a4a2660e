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


def test_the_live_ranking_spreads_labels_in_the_saved_detectors_significances(scored):
    from explorer.analysis.detectors import significances
    from explorer.app.ranking import saved_significances

    ws, X, ids = scored
    assert saved_significances(ws, ws.embeddings()) is None  # no scores yet
    score_workspace(ws, progress=False)
    assert saved_significances(ws, ws.embeddings()) is None  # one detector: nothing to add
    # scores combined from two detectors, saved in another order than the embeddings'
    table, meta = ws.scores()
    rng = np.random.default_rng(0)
    table = table.assign(trail=rng.gamma(2.0, size=len(table)), knn_joint=table["score"]).iloc[::-1]
    ws.save_product("scores", tables={"scores": table}, arrays={"score": table["score"].to_numpy(np.float32)},
                    meta={**{k: meta[k] for k in ("method", "params", "embeddings", "space")},
                          "detectors": ["knn_joint", "trail"]})
    side = saved_significances(ws, ws.embeddings())
    by_id = table.set_index("id")
    expected = significances({d: by_id[d].reindex(ids).to_numpy() for d in ("knn_joint", "trail")})
    np.testing.assert_array_equal(side, expected)
    assert side.shape == (len(ids), 2) and np.argmax(side[:, 1]) == np.argmax(by_id["trail"].reindex(ids))
