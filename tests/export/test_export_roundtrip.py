"""Every export format read back with pandas/astropy gives the same ids, labels and values, with units and provenance."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.io import fits

from explorer.data import formats
from explorer.export import export_bytes, export_subset, resolve_subset
from explorer.export_formats import get_writer
from tests.export.conftest import ALL_IDS, EMB_DIM, LABELS, MODEL_LINE, NO_SCORE, NO_VECTOR
from tests.export.helpers import FORMATS, read_astropy, read_back, texts

CONTRACT = ["id", "ra", "dec", "label", "anomaly_score", "map_x", "map_y", "class"]


def _export(ws, tmp_path, fmt, name="out", **kw):
    kw.setdefault("all", not any(k in kw for k in ("ids", "labels", "selection")))
    return export_subset(ws, tmp_path / f"{name}{FORMATS[fmt]}", fmt, **kw)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_round_trips_ids_labels_and_values(ws, truth, tmp_path, fmt):
    path = _export(ws, tmp_path, fmt, embeddings=True)
    df = read_back(path, fmt)
    assert df["id"].tolist() == ALL_IDS  # catalogue order; "a/b", "<b>x</b>", "ünï" survive
    assert set(CONTRACT) <= set(df.columns)
    assert [f"emb_{i}" for i in range(EMB_DIM)] == [c for c in df.columns if c.startswith("emb_")]
    expected_labels = [LABELS.get(i, (None, None))[0] for i in ALL_IDS]
    assert texts(df["label"]) == expected_labels
    assert texts(df["label_user"]) == [LABELS.get(i, (None, None))[1] for i in ALL_IDS]
    cat = ws.catalog.rows(ALL_IDS)
    np.testing.assert_allclose(df["ra"].to_numpy(float), cat["ra"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(df["dec"].to_numpy(float), cat["dec"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(df["mag_r"].to_numpy(float), cat["mag_r"].to_numpy(), rtol=1e-12)
    assert texts(df["class"]) == cat["class"].tolist()
    assert texts(df["source"]) == cat["source"].tolist()
    assert "image_set" not in df.columns  # internal unless cutouts are exported

    scores = truth["scores"].set_index("id")["score"].reindex(ALL_IDS).to_numpy()
    np.testing.assert_allclose(df["anomaly_score"].to_numpy(float), scores, equal_nan=True)
    assert np.isnan(df.loc[df["id"] == NO_SCORE, "anomaly_score"]).all()
    coords = truth["coords"].set_index("id").reindex(ALL_IDS)
    np.testing.assert_allclose(df["map_x"].to_numpy(float), coords["x"].to_numpy(), equal_nan=True)
    np.testing.assert_allclose(df["map_y"].to_numpy(float), coords["y"].to_numpy(), equal_nan=True)
    vectors = pd.DataFrame(truth["vectors"], index=truth["emb_ids"]).reindex(ALL_IDS).to_numpy()
    emb = df[[f"emb_{i}" for i in range(EMB_DIM)]].to_numpy(float)
    np.testing.assert_allclose(emb, vectors, rtol=1e-6, equal_nan=True)
    assert (
        np.isnan(emb[ALL_IDS.index(NO_VECTOR)]).all()
        and np.isfinite(np.delete(emb, ALL_IDS.index(NO_VECTOR), 0)).all()
    )
    labelled = df["labelled_at"][df["id"] == "obj0"].iloc[0]
    assert pd.Timestamp(labelled).tzinfo is not None


@pytest.mark.parametrize("fmt", ["fits", "votable", "ecsv"])
def test_ra_dec_carry_degrees_and_ucds(ws, tmp_path, fmt):
    path = _export(ws, tmp_path, fmt, labels=["anomaly"])
    table = read_astropy(path, fmt)
    assert table["ra"].unit == u.deg and table["dec"].unit == u.deg
    if fmt == "votable":
        from astropy.io.votable import parse

        fields = {f.name: f for f in parse(str(path)).get_first_table().fields}
        assert fields["ra"].ucd == "pos.eq.ra;meta.main" and fields["dec"].ucd == "pos.eq.dec;meta.main"
        assert fields["ra"].unit == u.deg
    if fmt == "fits":
        header = fits.getheader(path, "OBJECTS")
        ucds = {header[f"TTYPE{i}"]: header.get(f"TUCD{i}") for i in range(1, header["TFIELDS"] + 1)}
        assert ucds["ra"] == "pos.eq.ra;meta.main" and ucds["dec"] == "pos.eq.dec;meta.main"


def _provenance(path, fmt) -> dict:
    if fmt == "csv":
        return json.loads(path.with_name(path.stem + "_provenance.json").read_text())["provenance"]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(path).metadata[b"explorer.provenance"])
    if fmt == "ecsv":
        return read_astropy(path, fmt).meta["provenance"]
    if fmt == "votable":
        from astropy.io.votable import parse

        return {i.name: i.value for i in parse(str(path)).resources[0].infos}
    header = fits.getheader(path, "OBJECTS")
    assert any("provenance" in str(c) for c in header["COMMENT"])
    assert fits.getheader(path, 0)["MAPVERS"] == header["MAPVERS"]
    keys = {
        "embeddings_version": "EMBVERS",
        "map_version": "MAPVERS",
        "scores_version": "SCOREVER",
        "tool_version": "EXPLVERS",
        "exported_at": "DATE",
        "query": "QUERY",
        "model": "MODEL",
    }
    return {k: header[v] for k, v in keys.items()}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_provenance_names_versions_time_and_query(ws, truth, tmp_path, fmt):
    path = _export(ws, tmp_path, fmt, labels=["anomaly", "artefact"])
    prov = _provenance(path, fmt)
    emb_version, map_version, scores_version = truth["versions"]
    assert prov["embeddings_version"] == emb_version and prov["map_version"] == map_version
    assert prov["scores_version"] == scores_version and prov["model"] == MODEL_LINE
    from explorer import __version__

    assert prov["tool_version"] == __version__
    when = pd.Timestamp(prov["exported_at"])
    assert when.tzinfo is not None and abs(pd.Timestamp.now(tz="UTC") - when) < pd.Timedelta(minutes=5)
    assert "anomaly" in prov["query"] and "artefact" in prov["query"]


def test_provenance_names_the_encoders_the_embedding_step_recorded(fresh_ws, tmp_path, monkeypatch):
    """The names come from what ``embed_workspace`` writes (its ``models`` record), not from a test's guess."""
    from explorer.models import embed
    from explorer.models.registry import ASSETS, read_ref

    ws, _ = fresh_ws
    image, lightcurve = read_ref(ASSETS / "image_encoder_simulated"), read_ref(ASSETS / "lightcurve_encoder")
    table = ws.catalog.table
    jobs = [
        embed.Job(
            f"image:{name}", "image", name, image, table.loc[table["image_set"] == name, "id"].to_numpy()
        )
        for name in ("set_a", "set_b")
    ]
    jobs.append(
        embed.Job(
            "lightcurve", "lightcurve", None, lightcurve, table.loc[table["has_lightcurve"], "id"].to_numpy()
        )
    )
    rng = np.random.default_rng(0)
    monkeypatch.setattr(embed, "plan", lambda *a, **k: jobs)  # no encoder runs: only the record matters here
    monkeypatch.setattr(
        embed, "run_jobs", lambda ws, jobs, **k: {j.key: rng.normal(size=(len(j.ids), 3)) for j in jobs}
    )
    version = embed.embed_workspace(ws, progress=False)
    assert set(ws.versions("embeddings")[version]["models"]) == {"image:set_a", "image:set_b", "lightcurve"}

    sha_i, sha_l = image.config["weights_sha256"][:12], lightcurve.config["weights_sha256"][:12]
    expected = (
        f"image:set_a=image_encoder_simulated (sha256 {sha_i}); "
        f"image:set_b=image_encoder_simulated (sha256 {sha_i}); lightcurve=lightcurve_encoder (sha256 {sha_l})"
    )
    for fmt in ("fits", "votable", "parquet"):
        prov = _provenance(_export(ws, tmp_path, fmt, labels=["anomaly"]), fmt)
        assert prov["model"] == expected, fmt
        assert prov["embeddings_version"] == version
    assert "image_encoder_simulated" in fits.getheader(tmp_path / "out.fits", 0)["MODEL"]


def test_csv_reads_with_plain_pandas(ws, tmp_path):
    path = _export(ws, tmp_path, "csv")
    df = pd.read_csv(path)  # no comment= or skiprows needed
    assert df["id"].tolist() == ALL_IDS and set(CONTRACT) <= set(df.columns)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_export_with_no_rows_is_a_valid_file_with_every_column(ws, tmp_path, fmt):
    ids, _ = resolve_subset(ws, labels=["anomaly"], selection="picked")
    assert ids == []
    path = _export(ws, tmp_path, fmt, labels=["anomaly"], selection="picked", embeddings=True)
    df = read_back(path, fmt)
    assert len(df) == 0
    full = read_back(_export(ws, tmp_path, fmt, name="full", embeddings=True), fmt)
    assert list(df.columns) == list(full.columns)


def test_criteria_union_of_labels_intersection_of_kinds_and_id_order(ws, truth):
    assert resolve_subset(ws, labels=["anomaly", "Normal"])[0] == ["obj0", "a/b", "ünï"]
    assert resolve_subset(ws, labels=["artefact"], selection="picked")[0] == ["<b>x</b>"]
    assert resolve_subset(ws, ids=["lc0", "ünï", "obj1"])[0] == ["lc0", "ünï", "obj1"]
    assert resolve_subset(ws, ids=["lc0", "ünï", "obj1"], selection="picked")[0] == ["obj1", "lc0"]
    assert resolve_subset(ws, labels=["merger"])[0] == ["m0"]  # a user class
    ids, query = resolve_subset(ws, selection="boxed")  # geometry drawn on the map, resolved on demand
    assert ids == truth["boxed"] and "boxed" in query


def test_fits_holds_cutout_cubes_and_lightcurves(ws, truth, tmp_path):
    path = _export(
        ws, tmp_path, "fits", ids=["m1", "obj2", "lc0", "ünï"], with_cutouts=True, with_lightcurves=True
    )
    table = read_back(path, "fits")
    assert table["id"].tolist() == ["m1", "obj2", "lc0", "ünï"]
    with fits.open(path) as hdul:
        cubes = {h.header["IMAGESET"]: (h.data, h.header) for h in hdul if h.name == "CUTOUTS"}
        ids = {h.header["IMAGESET"]: _decoded(h.data["id"]) for h in hdul if h.name == "CUTOUT_IDS"}
        lc = hdul["LIGHTCURVES"].data
        assert set(cubes) == {"set_a", "set_b"}
        assert cubes["set_b"][1]["BANDS"] == "g,r" and cubes["set_b"][0].shape == (1, 2, 8, 8)
        for _, row in table.iterrows():
            if row["cutout_index"] < 0:
                assert row["id"] == "lc0" and pd.isna(row["image_set"])
                continue
            cube = cubes[row["image_set"]][0]
            assert ids[row["image_set"]][row["cutout_index"]] == row["id"]
            np.testing.assert_array_equal(cube[row["cutout_index"]], ws.catalog.cutout(row["id"]))
        want = truth["lightcurves"][truth["lightcurves"]["id"] == "lc0"]
        assert _decoded(lc["id"]) == ["lc0"] * len(want)
        np.testing.assert_allclose(lc["time"], want["time"].to_numpy())


def _decoded(column) -> list[str]:
    """FITS text as written: UTF-8 bytes (astropy may hand them out as bytes or str)."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(column).tolist()]


@pytest.mark.parametrize("fmt", ["csv", "votable", "parquet"])
def test_other_formats_write_cutouts_and_lightcurves_beside_the_table(ws, truth, tmp_path, fmt):
    with pytest.warns(UserWarning, match="none of the 2 exported objects has a light curve"):
        path = _export(
            ws,
            tmp_path,
            fmt,
            name="sel",
            labels=["anomaly"],
            with_cutouts=True,
            with_lightcurves=True,
            ids=["obj0", "a/b", "lc0"],
        )
    assert read_back(path, fmt)["id"].tolist() == ["obj0", "a/b"]
    cut = tmp_path / "sel_cutouts.fits"
    images = formats.read("images", cut, "fits-cube")  # our own reader takes the sibling back as a cube
    assert images.ids == ["obj0", "a/b"]
    np.testing.assert_array_equal(images.read(0, 2), truth["cube_a"][[0, 3]])
    lc = read_back(tmp_path / f"sel_lightcurves{FORMATS[fmt]}", fmt)
    assert list(lc.columns[:2]) == ["id", "time"] and len(lc) == 0  # neither object has a light curve


def test_lightcurves_sibling_holds_the_points(ws, truth, tmp_path):
    path = _export(ws, tmp_path, "csv", name="lcs", ids=["lc1", "lc0"], with_lightcurves=True)
    lc = pd.read_csv(path.with_name("lcs_lightcurves.csv"))
    want = truth["lightcurves"].set_index("id").loc[["lc1", "lc0"]].reset_index()
    assert lc["id"].tolist() == want["id"].tolist()
    np.testing.assert_allclose(lc["mag"], want["mag"], rtol=1e-6)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_export_bytes_for_browser_downloads(ws, tmp_path, fmt):
    data, name = export_bytes(ws, ["ünï", "obj0"], fmt)
    assert name.endswith(get_writer(fmt).extensions[0])
    path = tmp_path / name
    path.write_bytes(data)
    assert read_back(path, fmt)["id"].tolist() == ["ünï", "obj0"]


def test_clashing_catalogue_columns_are_renamed_with_a_warning(fresh_ws, tmp_path):
    ws, _ = fresh_ws
    from explorer.data.catalog import normalise_catalog
    from explorer.data.ingest import add_objects

    rows = normalise_catalog(
        pd.DataFrame({"id": ["clash"], "ra": [1.0], "dec": [2.0], "label": ["theirs"]}), "t"
    )
    add_objects(
        ws,
        rows,
        source="clashy",
        lightcurves=pd.DataFrame(
            {"id": ["clash"], "time": [1.0], "mag": [np.float32(1)], "err": [np.float32(0.1)], "band": ["g"]}
        ),
        progress=False,
    )
    with pytest.warns(UserWarning, match="'label' clashes"):
        path = export_subset(ws, tmp_path / "c.parquet", ids=["clash"])
    df = pd.read_parquet(path)
    assert df["catalog_label"].tolist() == ["theirs"] and df["label"].isna().all()


def test_a_workspace_without_products_still_exports_the_contract_columns(tmp_path):
    from explorer.data.ingest import add_objects
    from explorer.workspace import Workspace
    from tests.export.conftest import _catalog, _lightcurves

    ws = Workspace.create(tmp_path / "bare")
    add_objects(
        ws,
        _catalog(["s0", "s1"], 0, "star"),
        source="s",
        lightcurves=_lightcurves(["s0", "s1"]),
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = export_subset(ws, tmp_path / "bare.fits", all=True)
    df = read_back(path, "fits")
    assert set(CONTRACT) <= set(df.columns) and np.isnan(df["map_x"]).all() and df["label"].isna().all()
    assert not (ws.path / "labels.sqlite").exists()  # reading labels does not create a database
    assert fits.getheader(path, "OBJECTS")["MAPVERS"] == "none"
