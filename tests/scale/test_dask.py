"""Dask on a 2-worker LocalCluster gives what the in-process path gives (embedding, scoring, map placement), and a
worker killed mid-run is replaced and its partitions rerun, so the result is still complete and identical."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.distributed import partitions, place_part, score_part
from explorer.scale import run_partitions
from tests.pipeline.conftest import add_blobs, tiny_image_checkpoint  # noqa: F401 - fixtures used below
from tests.scale.helpers import KillOnce

pytestmark = pytest.mark.slow  # a LocalCluster starts in ~3-5 s on two shared cores


@pytest.fixture
def blob_workspace(tmp_path, tiny_image_checkpoint):  # noqa: F811 - the fixture imported above
    """96 blob cutouts and the tiny trained encoder: 6 partitions of 16 when partitions are cut small."""
    import shutil

    from explorer.models.registry import record_training_data
    from explorer.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    add_blobs(ws, n=96)
    target = ws.checkpoint_dir("image-blobs")
    shutil.copytree(tiny_image_checkpoint, target)
    record_training_data(target, image_set="blobs")
    return ws


@pytest.fixture
def small_partitions(monkeypatch):
    """Cut the embedding work into partitions of 16 objects (whole batches of 16), so a run has several."""
    from explorer.models import embed

    monkeypatch.setattr(embed, "BATCH", 16)
    monkeypatch.setattr(embed, "PARTITION_BATCHES", 1)


def _embed(ws, scheduler):
    from explorer.models.embed import plan, run_jobs

    jobs = plan(ws)
    return jobs, run_jobs(ws, jobs, scheduler=scheduler, progress=False)


def test_embedding_on_dask_equals_in_process(blob_workspace, cluster_address, small_partitions):
    jobs, local = _embed(blob_workspace, None)
    _, dask = _embed(blob_workspace, cluster_address)
    assert len(jobs) == 1 and local[jobs[0].key].shape == (96, 16)
    np.testing.assert_array_equal(dask[jobs[0].key], local[jobs[0].key])


def test_embedding_survives_a_worker_killed_mid_run(
    blob_workspace, cluster_address, small_partitions, monkeypatch, tmp_path
):
    from explorer.models import embed

    jobs, local = _embed(blob_workspace, None)
    marker = tmp_path / "killed"
    monkeypatch.setattr(embed, "embed_partition", KillOnce(embed.embed_partition, marker))
    _, dask = _embed(blob_workspace, cluster_address)
    assert marker.exists(), "a worker process was killed during the run"
    np.testing.assert_array_equal(dask[jobs[0].key], local[jobs[0].key])


def test_scores_on_dask_equal_in_process(sim_copy, cluster_address):
    from explorer.analysis.data_detectors import cutout_statistics, lightcurve_variability
    from explorer.analysis.workspace_ops import score_workspace

    a = score_workspace(sim_copy, sample_size=1500, part_rows=1024, progress=False)
    b = score_workspace(sim_copy, sample_size=1500, part_rows=1024, scheduler=cluster_address, progress=False)
    sa, sb = sim_copy.scores(a)[0], sim_copy.scores(b)[0]
    assert sim_copy.versions("scores")[b]["scheduler"] == cluster_address
    assert list(sa["id"]) == list(sb["id"]) and len(sa) == 5000
    np.testing.assert_array_equal(sa["score"].to_numpy(), sb["score"].to_numpy())
    # every detector: the light curves' variability and the cutout artefact statistics included
    assert sim_copy.versions("scores")[b]["detectors"] == [
        "knn_joint", "variability", "hot_pixel", "trail", "ring", "companion", "arc"]
    assert sb["variability"].notna().sum() == int(sim_copy.catalog.table["has_lightcurve"].sum())
    # the second run reused the first's statistics (same catalogue); measured by the workers, they are the same
    assert sim_copy.versions("scores")[b]["seconds"]["artefacts reused from"] == a
    on_workers = cutout_statistics(sim_copy, scheduler=cluster_address, progress=False)
    for name in ("hot_pixel", "trail", "ring", "companion", "arc"):
        assert sb[name].notna().sum() > 1000
        np.testing.assert_array_equal(on_workers[name].reindex(sa["id"]).to_numpy(), sa[name].to_numpy(), err_msg=name)
    # the curves' statistics too, measured by the workers in several parts
    variability = lightcurve_variability(sim_copy, scheduler=cluster_address, chunk=500, progress=False)
    np.testing.assert_allclose(variability.reindex(sa["id"]).to_numpy(), sa["variability"].to_numpy(), rtol=1e-12)


def test_map_placement_on_dask_equals_in_process(sim_copy, cluster_address):
    from explorer.analysis.workspace_ops import map_workspace

    a = map_workspace(sim_copy, method="pca", sample_size=1500, part_rows=1024, progress=False)
    b = map_workspace(
        sim_copy, method="pca", sample_size=1500, part_rows=1024, scheduler=cluster_address, progress=False
    )
    ca, cb = sim_copy.map(a)[0], sim_copy.map(b)[0]
    assert list(ca["id"]) == list(cb["id"])
    np.testing.assert_array_equal(ca[["x", "y"]].to_numpy(), cb[["x", "y"]].to_numpy())


def test_knn_placement_and_scoring_survive_a_killed_worker(sim_workspace, cluster_address, tmp_path):
    from explorer.analysis.anomaly import AnomalyScorer
    from explorer.analysis.distributed import take_rows
    from explorer.analysis.index_store import embedding_files
    from explorer.analysis.placement import KnnPlacer

    _, path, _, _ = embedding_files(sim_workspace)
    X = np.load(path, mmap_mode="r")
    fit_rows = np.arange(0, len(X), 4)
    Xs = take_rows(X, fit_rows)
    placer = KnnPlacer(n_neighbors=10).fit(Xs, Xs[:, :2] * 10)  # any 2-d layout of the fitted sample
    scorer = AnomalyScorer(random_state=0).fit(Xs, fit_rows.astype(str))
    parts = partitions(str(path), len(X), rows=700)
    for fn, shared, name in ((place_part, placer, "place"), (score_part, scorer, "score")):
        local = np.concatenate(run_partitions(fn, parts, shared=shared, progress=False))
        marker = tmp_path / f"killed-{name}"
        dask = run_partitions(
            KillOnce(fn, marker), parts, shared=shared, scheduler=cluster_address, progress=False
        )
        assert marker.exists() and len(dask) == len(parts)
        np.testing.assert_array_equal(np.concatenate(dask), local)
