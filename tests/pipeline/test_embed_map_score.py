"""embed -> map -> score on a workspace, through the Python API and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.models.embed import embed_workspace
from explorer.workspace import Workspace
from tests.conftest import run_cli


def test_embed_saves_unit_vectors_for_every_object_with_provenance(blob_workspace):
    ws = blob_workspace
    version = embed_workspace(ws, progress=False)
    emb = ws.embeddings(version)
    assert sorted(emb.ids) == sorted(ws.catalog.ids)
    assert emb.vectors.shape == (64, 16)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, rtol=1e-5)
    meta = ws.versions("embeddings")[version]
    assert meta["models"]["image:blobs"]["name"] == "image-blobs"
    assert meta["catalog"] == ws.manifest["catalog"]


def test_embeddings_group_like_objects(blob_workspace):
    """Even a one-epoch encoder puts compact sources nearer each other than to double-lobed ones."""
    ws = blob_workspace
    emb = ws.embeddings(embed_workspace(ws, progress=False))
    classes = ws.catalog.rows(emb.ids)["class"].to_numpy()
    sim = emb.vectors @ emb.vectors.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    assert (classes[nearest] == classes).mean() > 0.8


@pytest.mark.slow
def test_dask_localcluster_gives_the_same_vectors(blob_workspace):
    ws = blob_workspace
    a = ws.embeddings(embed_workspace(ws, progress=False))
    b = ws.embeddings(embed_workspace(ws, scheduler="local:2", progress=False))
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)


@pytest.mark.slow
def test_cli_embed_map_score_select_similar(blob_workspace):
    ws = blob_workspace
    for args in (["embed", ws.path], ["map", ws.path, "--method", "pca"], ["score", ws.path]):
        res = run_cli(*args)
        assert res.returncode == 0, res.stderr
    ws = Workspace.open(ws.path)
    coords, meta = ws.map()
    assert meta["embeddings"] == ws.current("embeddings")
    x0, x1 = np.percentile(coords.x, [20, 80])
    y0, y1 = np.percentile(coords.y, [20, 80])
    poly = f"{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"
    res = run_cli("select", ws.path, "--polygon", poly, "--json", "--save", "middle")
    assert res.returncode == 0, res.stderr
    got = set(json.loads(res.stdout)["ids"])
    inside = coords[(coords.x > x0) & (coords.x < x1) & (coords.y > y0) & (coords.y < y1)]
    assert got == set(inside.id)
    res = run_cli("similar", ws.path, "src000", "-k", "5", "--json")
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)["results"]
    assert len(hits) == 5 and "src000" not in [h["id"] for h in hits]
    info = json.loads(run_cli("info", ws.path, "--json").stdout)
    assert set(info["current"]) == {"embeddings", "maps", "scores"}


def test_cli_errors_are_one_line_with_exit_code_2(blob_workspace, tmp_path):
    res = run_cli("map", blob_workspace.path)
    assert res.returncode == 2 and "no embeddings yet" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("info", tmp_path / "nowhere")
    assert res.returncode == 2 and "not a workspace" in res.stderr
    res = run_cli("select", blob_workspace.path, "--polygon", "1,2 3")
    assert res.returncode == 2


def test_scores_default_to_knn_and_a_partitioned_run_keeps_the_fitted_scores(blob_workspace):
    from explorer.analysis.anomaly import AnomalyScorer
    from explorer.analysis.detectors import combine
    from explorer.analysis.distributed import sample_rows
    from explorer.analysis.workspace_ops import score_workspace
    from explorer.errors import DataError

    ws = blob_workspace
    emb = ws.embeddings(embed_workspace(ws, progress=False))
    whole = score_workspace(ws, progress=False)
    scores, meta = ws.scores(whole)
    assert meta["method"] == "knn" and meta["params"]["reference_size"] == AnomalyScorer().reference_size
    assert list(scores["id"]) == list(emb.ids) and np.isfinite(scores["score"]).all()
    expected = AnomalyScorer(random_state=0).fit(np.asarray(emb.vectors), emb.ids).score_samples()
    # cutouts: the kNN score of the embeddings plus the two artefact and the two morphology statistics, combined
    assert meta["detectors"] == ["knn_joint", "hot_pixel", "trail", "ring", "companion", "arc"]
    np.testing.assert_allclose(scores["knn_joint"], expected, rtol=1e-6)
    np.testing.assert_allclose(scores["score"], combine({k: scores[k] for k in meta["detectors"]}), rtol=1e-6)
    # embeddings only: exactly the scorer's scores (what the app's live ranking computes without saved scores)
    plain, plain_meta = ws.scores(score_workspace(ws, detectors=False, progress=False))
    np.testing.assert_allclose(plain["score"], expected, rtol=1e-6)
    assert plain_meta["detectors"] == [] and list(plain.columns) == ["id", "score"]

    parted = score_workspace(ws, sample_size=40, part_rows=16, detectors=False, progress=False)
    p_scores, p_meta = ws.scores(parted)
    rows = sample_rows(len(emb.ids), 40, 0)
    fitted = AnomalyScorer(random_state=0).fit(np.asarray(emb.vectors)[rows], emb.ids[rows]).score_samples()
    assert p_meta["fit_sample"] == 40
    # the fitted sample keeps its fitted scores (a reference object is not its own neighbour)
    np.testing.assert_allclose(p_scores["score"].to_numpy()[rows], fitted, rtol=1e-6)
    assert np.isfinite(p_scores["score"]).all()

    assert ws.scores(score_workspace(ws, method="iforest", progress=False))[1]["method"] == "iforest"
    with pytest.raises(DataError, match="'lof'"):
        score_workspace(ws, method="lof", progress=False)
    small = score_workspace(ws, scorer_params={"reference_size": 16}, progress=False)
    assert ws.scores(small)[1]["params"]["reference_size"] == 16
    with pytest.raises(DataError, match="reference_sise"):
        score_workspace(ws, scorer_params={"reference_sise": 16}, progress=False)


def test_imported_vectors_are_scored_and_a_planted_outlier_comes_first(blob_workspace, tmp_path):
    from explorer.analysis.workspace_ops import score_workspace
    from explorer.models.embed import import_vectors

    ws = blob_workspace
    ids = np.asarray(ws.catalog.ids, dtype=str)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(ids), 8)).astype(np.float32) * 0.1 + np.eye(8, dtype=np.float32)[0]
    X[7] = np.eye(8, dtype=np.float32)[3]  # one vector pointing elsewhere
    np.savez(tmp_path / "vec.npz", ids=ids, vectors=X)
    import_vectors(ws, tmp_path / "vec.npz")
    scores, meta = ws.scores(score_workspace(ws, progress=False))
    assert meta["space"] == "joint"
    assert scores.sort_values("score", ascending=False)["id"].iloc[0] == ids[7]


def test_a_cutout_with_a_cosmic_ray_tops_the_saved_ranking_that_the_embeddings_alone_miss(tmp_path, monkeypatch,
                                                                                          tiny_image_checkpoint):
    import shutil

    from explorer.analysis.workspace_ops import score_workspace
    from explorer.data.ingest import add_objects
    from explorer.data.readers_images import ImageInput
    from explorer.models.registry import record_training_data
    from tests.pipeline.conftest import make_blobs

    table, imgs = make_blobs(96, seed=3)
    imgs[40, 0, 5, 26] += 0.5  # a cosmic-ray hit, far from the source: 25 sigma of the sky, one pixel
    imgs[40, 0, 6, 26] += 0.3
    ws = Workspace.create(tmp_path / "ws")
    inp = ImageInput(table["id"].tolist(), imgs.shape[1:], ("img",), lambda a, b: imgs[a:b], "blobs", len(imgs))
    add_objects(ws, table, source="blobs", images=inp, image_set="blobs", progress=False)
    target = ws.checkpoint_dir("image-blobs")
    shutil.copytree(tiny_image_checkpoint, target)
    record_training_data(target, image_set="blobs")
    embed_workspace(ws, progress=False)
    scores, meta = ws.scores(score_workspace(ws, progress=False))
    ranked = scores.sort_values("score", ascending=False)["id"].tolist()
    assert ranked[0] == "src040"
    assert scores.sort_values("hot_pixel", ascending=False)["id"].iloc[0] == "src040"
    knn_rank = scores.sort_values("knn_joint", ascending=False)["id"].tolist().index("src040")
    assert knn_rank > 5  # the encoder, trained to ignore noise, does not see it
    # re-scoring (after a fine-tune, say) reuses the statistics: they depend on the cutouts, not the embeddings
    again, again_meta = ws.scores(score_workspace(ws, progress=False))
    assert again_meta["seconds"]["artefacts reused from"] == meta["version"]
    np.testing.assert_array_equal(again["hot_pixel"], scores["hot_pixel"])
    # ... unless the statistics are defined differently now (a new release): then they are measured again
    from explorer.analysis import artefacts

    monkeypatch.setattr(artefacts, "MISMATCH", 0.5)
    _, changed = ws.scores(score_workspace(ws, progress=False))
    assert "artefacts reused from" not in changed["seconds"] and "0.5" in changed["definitions"]["hot_pixel"]
    # thresholded cutouts (background clipped to 0, as in the FIRST sample): no noise to measure artefacts
    # against, so no artefact statistics, and the score is the embeddings' own
    clipped = Workspace.create(tmp_path / "clipped")
    flat = np.clip(imgs - 0.1, 0, None)
    inp = ImageInput(table["id"].tolist(), flat.shape[1:], ("img",), lambda a, b: flat[a:b], "blobs", len(flat))
    add_objects(clipped, table, source="blobs", images=inp, image_set="blobs", progress=False)
    shutil.copytree(tiny_image_checkpoint, clipped.checkpoint_dir("image-blobs"))
    record_training_data(clipped.checkpoint_dir("image-blobs"), image_set="blobs")
    embed_workspace(clipped, progress=False)
    plain, plain_meta = clipped.scores(score_workspace(clipped, progress=False))
    assert plain_meta["detectors"] == [] and list(plain.columns) == ["id", "score"]

    res = run_cli("score", ws.path, "--embeddings-only")
    assert res.returncode == 0 and "knn_joint" in res.stdout
    assert Workspace.open(ws.path).scores()[1]["detectors"] == []


def test_many_cutouts_leave_the_artefact_statistics_out_of_the_default_unless_asked(blob_workspace, monkeypatch):
    import explorer.analysis.workspace_ops as ops
    from explorer.analysis import data_detectors

    ws = blob_workspace
    embed_workspace(ws, progress=False)
    monkeypatch.setattr(data_detectors, "ARTEFACT_LIMIT", 10)  # the blob workspace has 64 cutouts
    assert ws.scores(ops.score_workspace(ws, progress=False))[1]["detectors"] == []
    forced = ws.scores(ops.score_workspace(ws, artefacts=True, progress=False))[1]
    assert forced["detectors"] == ["knn_joint", "hot_pixel", "trail", "ring", "companion", "arc"]
