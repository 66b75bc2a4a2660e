"""Ingest from real files: FITS per object, FITS cube, PNG, HDF5, light curves; all-or-nothing on bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from explorer.data.ingest import ingest_files
from explorer.errors import DataError
from explorer.workspace import Workspace
from tests.conftest import gaussian_blob, snapshot


def test_fits_folder_and_long_lightcurves(tmp_path, catalog_csv, fits_folder, lightcurve_frame, catalog_frame):
    lc_path = tmp_path / "lc.parquet"
    lightcurve_frame.to_parquet(lc_path)
    ws = Workspace.create(tmp_path / "ws")
    added = ingest_files(ws, catalog_csv, images=fits_folder, lightcurves=lc_path, progress=False)
    assert added["image"] == 6 and added["lightcurve"] == 6
    ws = Workspace.open(ws.path)
    cat = ws.catalog
    assert sorted(cat.ids) == sorted(catalog_frame["id"])
    cut = cat.cutout("obj3")
    assert cut.shape == (1, 32, 32) and cut.dtype == np.float32
    np.testing.assert_allclose(cut[0], gaussian_blob(32, 16, 16, 5), rtol=1e-6)
    lc = cat.lightcurve("obj2")
    assert set(lc["band"]) == {"g", "r"} and len(lc) == 80 and lc["time"].is_monotonic_increasing
    assert cat.skycoord(["obj0"]).ra.deg[0] == pytest.approx(catalog_frame["ra"][0])


def test_fits_cube_with_id_table_and_nans(tmp_path, catalog_frame, catalog_csv):
    cube = np.random.default_rng(0).normal(size=(6, 2, 16, 16)).astype(np.float32)
    cube[1, 0, :4, :4] = np.nan
    ids = catalog_frame["id"].tolist()[::-1]
    hdus = fits.HDUList([fits.PrimaryHDU(cube), fits.BinTableHDU(Table({"id": ids}))])
    hdus.writeto(tmp_path / "cube.fits")
    ws = Workspace.create(tmp_path / "ws")
    ingest_files(ws, catalog_csv, images=tmp_path / "cube.fits", image_format="fits-cube", progress=False)
    got = ws.catalog.cutout(ids[1])
    assert got.shape == (2, 16, 16)
    assert np.isnan(got[0, :4, :4]).all() and np.isfinite(got[1]).all()
    np.testing.assert_array_equal(ws.catalog.cutout(ids[0]), cube[0])


def test_png_per_object_and_hdf5(tmp_path, catalog_frame, catalog_csv):
    folder = tmp_path / "png"
    folder.mkdir()
    for i, oid in enumerate(catalog_frame["id"]):
        Image.fromarray(np.full((20, 20, 3), 10 * i, np.uint8)).save(folder / f"{oid}.png")
    ws = Workspace.create(tmp_path / "ws1")
    ingest_files(ws, catalog_csv, images=folder, progress=False)
    assert ws.catalog.cutout("obj4").shape == (3, 20, 20)
    assert ws.catalog.images["catalog"].bands == ("R", "G", "B")

    with h5py.File(tmp_path / "cut.h5", "w") as f:
        f["images"] = np.arange(6 * 8 * 8, dtype=np.float64).reshape(6, 8, 8)
        f["ids"] = np.array(catalog_frame["id"].tolist(), dtype="S")
    ws2 = Workspace.create(tmp_path / "ws2")
    ingest_files(ws2, catalog_csv, images=tmp_path / "cut.h5", progress=False)
    assert ws2.catalog.cutout("obj1")[0, 0, 0] == 64.0


def test_one_file_per_object_lightcurve_folder(tmp_path, catalog_frame, catalog_csv, lightcurve_frame):
    folder = tmp_path / "lcs"
    folder.mkdir()
    for oid, g in lightcurve_frame.groupby("id"):
        g.drop(columns="id").rename(columns={"err": "magerr", "time": "mjd"}).to_csv(folder / f"{oid}.csv", index=False)
    ws = Workspace.create(tmp_path / "ws")
    ingest_files(ws, catalog_csv, lightcurves=folder, progress=False)
    assert ws.catalog.modalities() == {"image": 0, "lightcurve": 6}
    assert len(ws.catalog.lightcurve("obj5")) == 80


def test_placeholder_magnitudes_are_dropped_with_a_warning_naming_the_file(tmp_path, catalog_csv, lightcurve_frame):
    lc = lightcurve_frame.copy()
    rows = lc.index[lc["id"] == "obj2"][:3]
    lc.loc[rows, ["mag", "err"]] = [[99.99, 99.999], [17.0, 99.999], [-99.0, 0.1]]  # SDSS-style "no measurement"
    path = tmp_path / "lc.csv"
    lc.to_csv(path, index=False)
    ws = Workspace.create(tmp_path / "ws")
    with pytest.warns(UserWarning, match=r"lc.csv: dropped 3 rows whose magnitude or error says there is no"):
        ingest_files(ws, catalog_csv, lightcurves=path, progress=False)
    kept = ws.catalog.lightcurve("obj2")
    assert len(kept) == (lightcurve_frame["id"] == "obj2").sum() - 3 and kept["mag"].abs().max() < 50


def test_second_ingest_extends_and_clashing_ids_are_refused(tmp_path, catalog_csv, fits_folder, catalog_frame):
    ws = Workspace.create(tmp_path / "ws")
    ingest_files(ws, catalog_csv, images=fits_folder, progress=False)
    before = snapshot(ws.path)
    with pytest.raises(DataError, match="already in the workspace"):
        ingest_files(ws, catalog_csv, images=fits_folder, progress=False)
    assert snapshot(ws.path) == before
    other = catalog_frame.assign(id=lambda d: "new_" + d["id"])
    other.to_csv(tmp_path / "cat2.csv", index=False)
    folder2 = tmp_path / "fits2"
    folder2.mkdir()
    for f in fits_folder.iterdir():
        (folder2 / ("new_" + f.name)).write_bytes(f.read_bytes())
    ingest_files(ws, tmp_path / "cat2.csv", images=folder2, progress=False)
    assert len(Workspace.open(ws.path).catalog) == 12


def _corrupt_fits(folder):
    path = folder / "obj2.fits"
    path.write_bytes(path.read_bytes()[:3000])


def _mixed_shapes(folder):
    fits.PrimaryHDU(np.zeros((16, 16), np.float32)).writeto(folder / "obj3.fits", overwrite=True)


def _nan_only(folder):
    fits.PrimaryHDU(np.full((32, 32), np.nan, np.float32)).writeto(folder / "obj1.fits", overwrite=True)


def _not_fits(folder):
    (folder / "obj0.fits").write_text("SIMPLE = this is not a FITS file")


def _huge_header(folder):
    header = fits.Header()
    header["SIMPLE"], header["BITPIX"], header["NAXIS"] = True, -32, 2
    header["NAXIS1"], header["NAXIS2"] = 10**6, 10**6
    (folder / "obj4.fits").write_bytes(header.tostring().encode() + b" " * 2880)


def _stray_image(folder):
    (folder / "nobody.fits").write_bytes((folder / "obj0.fits").read_bytes())


@pytest.mark.parametrize("damage,match", [
    (_corrupt_fits, "obj2.fits: .*(unreadable|truncated)"),
    (_mixed_shapes, "obj3.fits: image shape .* differs"),
    (_nan_only, "'obj1' has no finite pixel"),
    (_not_fits, "obj0.fits: unreadable FITS"),
    (_huge_header, "obj4.fits: .*(not a cutout|unreadable)"),
    (_stray_image, "'nobody' has no catalogue row"),
])
def test_bad_images_fail_cleanly_and_leave_the_workspace_alone(tmp_path, catalog_csv, fits_folder, damage, match):
    ws = Workspace.create(tmp_path / "ws")
    ingest_files(ws, catalog_csv, lightcurves=None, images=fits_folder, progress=False, image_set="first_batch")
    before = snapshot(ws.path)
    other = pd.read_csv(catalog_csv).assign(id=lambda d: d["id"])  # same ids, new folder of images
    folder = tmp_path / "again"
    folder.mkdir()
    for f in fits_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    damage(folder)
    ws2 = Workspace.create(tmp_path / "ws2")
    other.to_csv(tmp_path / "c2.csv", index=False)
    with pytest.raises(DataError, match=match):
        ingest_files(ws2, tmp_path / "c2.csv", images=folder, progress=False)
    assert snapshot(ws.path) == before
    assert Workspace.open(ws2.path).catalog.table.empty
    assert not [p for p in ws2.path.iterdir() if p.name.startswith(".staging")]


def test_skip_bad_drops_unusable_objects_with_a_warning(tmp_path, catalog_csv, fits_folder):
    _nan_only(fits_folder)
    ws = Workspace.create(tmp_path / "ws")
    with pytest.warns(UserWarning, match="no finite pixel"):
        ingest_files(ws, catalog_csv, images=fits_folder, skip_bad=True, progress=False)
    assert "obj1" not in set(ws.catalog.ids) and len(ws.catalog) == 5


@pytest.mark.parametrize("lc,match", [
    (pd.DataFrame({"id": ["obj0"] * 2, "time": ["a", "b"], "mag": [1, 2], "band": ["g", "g"]}), "non-numeric"),
    (pd.DataFrame({"id": ["obj0"], "time": [np.nan], "mag": [1.0], "band": ["g"]}), "no usable"),
    (pd.DataFrame({"id": ["ghost"], "time": [1.0], "mag": [1.0], "band": ["g"]}), "'ghost' has no catalogue row"),
    (pd.DataFrame({"id": ["obj0"], "time": [1.0], "band": ["g"]}), "lacks column"),
])
def test_bad_lightcurves_name_the_problem(tmp_path, catalog_csv, lc, match):
    path = tmp_path / "lc.csv"
    lc.to_csv(path, index=False)
    ws = Workspace.create(tmp_path / "ws")
    with pytest.raises(DataError, match=match):
        ingest_files(ws, catalog_csv, lightcurves=path, progress=False)


def test_catalogue_rows_without_data_are_refused(tmp_path, catalog_csv, lightcurve_frame):
    path = tmp_path / "lc.csv"
    lightcurve_frame[lightcurve_frame["id"] != "obj5"].to_csv(path, index=False)
    ws = Workspace.create(tmp_path / "ws")
    with pytest.raises(DataError, match="'obj5' has neither a cutout nor a light curve"):
        ingest_files(ws, catalog_csv, lightcurves=path, progress=False)


def test_fits_band_names_come_from_the_filter_keywords(tmp_path, catalog_frame, catalog_csv):
    """A user's g-band FITS cutouts are stored as band 'g', a 3-band cube as its FILTER1..3 names."""
    folder = tmp_path / "fits"
    folder.mkdir()
    for oid in catalog_frame["id"]:
        hdu = fits.PrimaryHDU(np.ones((12, 12), np.float32))
        hdu.header["FILTER"] = "g"
        hdu.writeto(folder / f"{oid}.fits")
    ws = Workspace.create(tmp_path / "ws1")
    ingest_files(ws, catalog_csv, images=folder, progress=False)
    assert ws.catalog.images["catalog"].bands == ("g",)

    ids = catalog_frame["id"].tolist()
    primary = fits.PrimaryHDU(np.ones((len(ids), 3, 8, 8), np.float32))
    for i, band in enumerate("gri", start=1):
        primary.header[f"FILTER{i}"] = band
    fits.HDUList([primary, fits.BinTableHDU(Table({"id": ids}))]).writeto(tmp_path / "cube.fits")
    ws2 = Workspace.create(tmp_path / "ws2")
    ingest_files(ws2, catalog_csv, images=tmp_path / "cube.fits", image_format="fits-cube", progress=False)
    assert ws2.catalog.images["catalog"].bands == ("g", "r", "i")
