"""A large simulated workspace stays small on disk: parameters regenerate from ids, cutouts and light curves render
identically every time, and the partitioned catalogue reads back whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.data import simulate
from explorer.data.simulated_index import ids_of, index_of, simulate_rows
from explorer.data.simulated_lightcurves import SimulatedLightCurveStore, open_lightcurves
from explorer.errors import DataError
from explorer.workspace import Workspace
from tests.scale.conftest import N_OBJECTS


def _du(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def truth():
    """The same survey drawn the ordinary way, all at once (seed 3, like the fixture)."""
    return simulate.simulate_parameters(N_OBJECTS, seed=3)


def test_rows_regenerate_from_global_index_scattered_and_repeated(truth):
    rows = np.array([4999, 17, 17, 2500, 0, 1999, 2000])
    got = simulate_rows(rows, seed=3)
    pd.testing.assert_frame_equal(got, truth.iloc[rows].reset_index(drop=True))


def test_ids_and_indices_convert_both_ways():
    assert list(ids_of(np.array([0, 42]))) == ["SIM0000000000", "SIM0000000042"]
    assert index_of(["SIM0000000042", "SIM9999999999"]).tolist() == [42, 9_999_999_999]
    with pytest.raises(DataError, match="'gal7' is not a simulated object"):
        index_of(["SIM0000000001", "gal7"])


def test_partitioned_catalogue_reads_back_every_object(sim_workspace, truth):
    cat = sim_workspace.catalog
    assert len(cat) == N_OBJECTS == sim_workspace.manifest["n_objects"]
    assert (sim_workspace.path / sim_workspace.manifest["catalog"]).is_dir()
    assert list(cat.ids[:2]) == ["SIM0000000000", "SIM0000000001"] and cat.ids[-1] == "SIM0000004999"
    np.testing.assert_array_equal(cat.table["ra"].to_numpy(), truth["ra"].to_numpy())
    assert (cat.table["class"].astype(str).to_numpy() == truth["class"].astype(str).to_numpy()).all()
    assert not any(c.startswith("p_") for c in cat.table.columns), "parameters are regenerated, not stored"


def test_workspace_stays_small_on_disk(sim_workspace):
    image_dir = sim_workspace.path / "images" / "simulated"
    lc_dir = sim_workspace.path / "lightcurves" / "simulated"
    # 8 bytes per object for each on-demand set; a stored cutout alone would be 3 x 64 x 64 x 4 = 49,152 bytes
    assert _du(image_dir) < 8 * N_OBJECTS + 4096
    assert _du(lc_dir) < 8 * N_OBJECTS + 4096
    assert _du(sim_workspace.path) < 200 * N_OBJECTS


def test_cutouts_render_identically_and_match_the_eager_renderer(sim_workspace, truth):
    store = sim_workspace.catalog.images["simulated"]
    assert len(store) == int(truth["has_image"].sum()) and store.shape == (3, 64, 64)
    ids = ["SIM0000004998", "SIM0000000003", "SIM0000002001"]
    first = store.get(ids)
    np.testing.assert_array_equal(first, store.get(ids))
    np.testing.assert_array_equal(first[1], store.get(["SIM0000000003"])[0])  # alone = in a batch
    expected = simulate.render_cutouts(truth.set_index("id").loc[ids].reset_index(), seed=3, size=64)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(store.array[2:4], store.get_rows(np.array([2, 3])))


def test_lightcurves_render_identically_in_the_order_asked(sim_workspace, truth):
    ws = sim_workspace
    store = open_lightcurves(ws.path, ws.manifest["lightcurve_parts"], ws.manifest["lightcurve_sets"])
    assert isinstance(store, SimulatedLightCurveStore)
    have = truth.loc[truth["has_lightcurve"], "id"].to_numpy()
    assert len(store) == len(have)
    want = [have[-1], have[0], have[len(have) // 2]]
    got = store.get_many(want)
    assert list(dict.fromkeys(got["id"])) == want
    pd.testing.assert_frame_equal(got, store.get_many(want))
    ref = simulate.render_lightcurves(truth.set_index("id").loc[want].reset_index(), seed=3)
    key = ["id", "time"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        ref.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )
    with pytest.raises(DataError, match="has no light curve"):
        store.get_many([truth.loc[~truth["has_lightcurve"], "id"].iloc[0]])


def test_adding_to_an_existing_workspace_keeps_its_objects_and_continues_the_numbering(tmp_path):
    from explorer.data.defaults import add_simulated
    from explorer.data.simulated_survey import add_simulated_partitioned

    ws = Workspace.create(tmp_path / "ws")
    add_simulated(ws, 40, seed=1, progress=False)  # eager: stored cutouts and light curves
    added = add_simulated_partitioned(ws, 300, seed=1, part_rows=128, progress=False)
    assert added["objects"] == 300 and added["image_set"] == "simulated-2"
    cat = Workspace.open(ws.path).catalog
    assert len(cat) == 340 and cat.ids[40] == "SIM0000000040" and len(set(cat.ids)) == 340
    assert cat.table.loc[cat.table["id"] == "SIM0000000000", "image_set"].item() == "simulated"
    truth = simulate.simulate_parameters(340, seed=1)
    np.testing.assert_array_equal(
        cat.images["simulated-2"].get(["SIM0000000300"]),
        simulate.render_cutouts(truth.iloc[[300]], seed=1, size=64),
    )
    assert len(list(ws.path.glob("catalog-*"))) == 1, "the replaced catalogue is removed"


def test_on_demand_flag_of_add_simulated_stores_indices_only(tmp_path):
    from explorer.data.defaults import add_simulated

    ws = Workspace.create(tmp_path / "ws")
    add_simulated(ws, 60, seed=2, on_demand=True, progress=False)
    folder = ws.path / "images" / "simulated"
    assert (folder / "index.npy").exists() and not (folder / "params.parquet").exists()
    truth = simulate.simulate_parameters(60, seed=2)
    got = Workspace.open(ws.path).catalog.images["simulated"].get(["SIM0000000059"])
    np.testing.assert_array_equal(got, simulate.render_cutouts(truth.iloc[[59]], seed=2, size=64))


def test_the_workspace_sees_its_on_demand_light_curves_and_ranks_the_odd_ones_high(sim_workspace, truth):
    from explorer.analysis.data_detectors import lightcurve_variability
    from explorer.info import describe, format_info

    store = sim_workspace.catalog.lightcurves  # the catalogue the app, the encoders and the scorer read
    assert store is not None and len(store) == int(truth["has_lightcurve"].sum())
    info = describe(sim_workspace)  # `explorer info`: counted without rendering every curve
    assert info["lightcurves"]["objects"] == len(store) and info["lightcurves"]["points"] is None
    assert "points rendered on demand" in format_info(info)
    variability = lightcurve_variability(sim_workspace, progress=False, chunk=500)  # several chunks
    assert len(variability) == len(store) and variability.notna().all()
    odd = truth.set_index("id").loc[variability.index, "class"].isin(["microlensing", "flare", "dipper"])
    top = variability.sort_values(ascending=False).index[:20]
    # 14 injected light-curve oddities among 1,759 curves: at random 0.16 would be in the top 20
    assert odd[top].sum() >= 6


def test_many_light_curves_leave_variability_out_of_the_default_unless_asked(sim_copy, monkeypatch, caplog):
    from explorer.analysis import data_detectors
    from explorer.analysis.workspace_ops import score_workspace

    monkeypatch.setattr(data_detectors, "VARIABILITY_LIMIT", 100)  # the copy has 1,759 light curves
    with caplog.at_level("WARNING"):
        plain = score_workspace(sim_copy, artefacts=False, progress=False)
    assert sim_copy.versions("scores")[plain]["detectors"] == []
    assert "--variability" in caplog.text and "1,759 light curves" in caplog.text
    forced = score_workspace(sim_copy, artefacts=False, variability=True, progress=False)
    meta = sim_copy.versions("scores")[forced]
    assert meta["detectors"] == ["knn_joint", "variability"] and "variability" in meta["references"]
