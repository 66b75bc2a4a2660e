"""Synthetic vectors, compact ids, the saved FAISS index and sampled maps/scores behave like their full versions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from explorer.analysis.id_table import IdTable
from explorer.errors import DataError
from explorer.workspace import Workspace
from tests.scale.conftest import N_OBJECTS


def test_id_table_round_trips_variable_length_and_unsorted_ids():
    ids = ["b", "aa", "ccc", "é", "SIM0000000001"]
    table = IdTable(pa.chunked_array([ids[:2], ids[2:]]))
    assert list(table.take([4, 3, 0])) == ["SIM0000000001", "é", "b"]
    assert table.rows_of(["ccc", "é", "b"]).tolist() == [2, 3, 0]
    assert table.rows_of(["zz", "aa"], missing="drop").tolist() == [1]
    with pytest.raises(DataError, match="unknown object id 'zz'"):
        table.rows_of(["zz"])
    with pytest.raises(DataError, match="not unique"):
        IdTable(["a", "b", "a"]).rows_of(["a"])


def test_synthetic_vectors_are_unit_clustered_by_class_and_do_not_depend_on_file_layout(
    sim_workspace, tmp_path
):
    from explorer.data.simulated_survey import add_simulated_partitioned
    from explorer.data.synthetic_vectors import add_synthetic_embeddings

    emb = sim_workspace.embeddings()
    X = np.asarray(emb.vectors, dtype=np.float32)
    assert emb.vectors.dtype == np.float16 and X.shape == (N_OBJECTS, 16)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=2e-3)
    cls = sim_workspace.catalog.table["class"].astype(str).to_numpy()
    sim = X[:800] @ X[:800].T
    np.fill_diagonal(sim, -2)
    assert (cls[:800][sim.argmax(axis=1)] == cls[:800]).mean() > 0.95
    other = Workspace.create(tmp_path / "other")  # the same survey cut into other catalogue parts
    add_simulated_partitioned(other, N_OBJECTS, seed=3, part_rows=777, progress=False)
    add_synthetic_embeddings(other, dim=16, seed=1, dtype="float16", progress=False)
    np.testing.assert_array_equal(np.asarray(other.embeddings().vectors), np.asarray(emb.vectors))


def test_saved_faiss_index_finds_what_exact_search_finds(sim_copy):
    from explorer.analysis.index_store import build_index, index_paths, load_index
    from explorer.analysis.workspace_ops import similar

    exact = load_index(sim_copy, build=False)
    assert exact.method == "exact"
    path = build_index(sim_copy, nlist=32, nprobe=8, progress=False)
    assert path == index_paths(sim_copy, "emb-0001", "joint")[0] and path.exists()
    assert path.name == "emb-0001.joint.faiss" and path.with_suffix(".json").name == "emb-0001.joint.json"
    stored = load_index(sim_copy)
    assert stored.method == "IVF-SQ8"
    recall = []
    for oid in ["SIM0000000001", "SIM0000001234", "SIM0000004321"]:
        a = set(exact.query([oid], k=20)["id"])
        b = stored.query([oid], k=20)
        assert oid not in set(b["id"]) and b["rank"].tolist() == list(range(1, 21))
        recall.append(len(a & set(b["id"])) / 20)
    assert np.mean(recall) >= 0.95
    via_ops = similar(sim_copy, ["SIM0000000001"], ["SIM0000000002"], k=5)
    assert len(via_ops) == 5 and not {"SIM0000000001", "SIM0000000002"} & set(via_ops["id"])


def test_sampled_scores_and_map_cover_every_object(sim_copy):
    from explorer.analysis.workspace_ops import map_workspace, point_index, score_workspace, select

    score_workspace(sim_copy, sample_size=1000, progress=False)
    scores, meta = sim_copy.scores()
    assert len(scores) == N_OBJECTS and meta["fit_sample"] == 1000 and np.isfinite(scores["score"]).all()
    odd = sim_copy.catalog.table.set_index("id").loc[scores.nlargest(50, "score")["id"], "is_oddity"]
    assert odd.mean() > 10 * sim_copy.catalog.table["is_oddity"].mean()  # oddities rank near the top
    map_workspace(sim_copy, method="pca", sample_size=1000, progress=False)
    coords, meta = sim_copy.map()
    assert (
        meta["fit_sample"] == 1000
        and len(coords) == N_OBJECTS
        and np.isfinite(coords[["x", "y"]]).all().all()
    )
    x0, x1 = np.percentile(coords["x"], [30, 70])
    y0, y1 = np.percentile(coords["y"], [30, 70])
    ids = select(sim_copy, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    inside = coords[(coords.x > x0) & (coords.x < x1) & (coords.y > y0) & (coords.y < y1)]
    assert set(ids) == set(inside["id"]) and isinstance(ids[0], str)
    compact = point_index(sim_copy, compact=True)
    assert compact.ids.dtype.kind == "S" and len(compact) == N_OBJECTS


def test_server_map_data_answers_lasso_similar_and_colour_like_the_workspace(sim_copy):
    """MapData (what a server holds at 10M) selects exactly the points inside an outline and searches like exact."""
    from shapely import Polygon, contains_xy

    from explorer.analysis.index_store import load_index
    from explorer.analysis.map_data import MapData
    from explorer.analysis.workspace_ops import map_workspace, score_workspace

    score_workspace(sim_copy, sample_size=1000, detectors=False, progress=False)  # scores are only carried here
    map_workspace(sim_copy, method="pca", sample_size=1000, progress=False)
    data = MapData.load(sim_copy)
    coords, _ = sim_copy.map()
    assert len(data) == N_OBJECTS and list(data.ids.take(np.arange(5))) == list(coords["id"][:5])
    cx, cy = np.median(data.xy, axis=0)
    r = float(np.std(data.xy[:, 0]))
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    outline = np.column_stack([cx + r * np.cos(t), cy + 0.6 * r * np.sin(t)])
    inside = np.flatnonzero(contains_xy(Polygon(outline), data.xy[:, 0], data.xy[:, 1]))
    rows = data.lasso_rows(outline)
    assert 100 < len(inside) < N_OBJECTS and set(rows.tolist()) == set(inside.tolist())
    np.testing.assert_array_equal(data.lasso_rows(outline, sort=True), inside)
    scores, _ = sim_copy.scores()
    by_id = scores.set_index("id")["score"]
    np.testing.assert_allclose(
        data.scores[:50], by_id.loc[data.ids.take(np.arange(50))].to_numpy(), rtol=1e-6
    )
    exact = load_index(sim_copy, build=False)
    got = data.similar(["SIM0000000007"], ["SIM0000000008"], k=10)
    want = exact.query(["SIM0000000007"], ["SIM0000000008"], k=10)
    assert list(got["id"]) == list(want["id"]) and got["rank"].tolist() == list(range(1, 11))
