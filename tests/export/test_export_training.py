"""Training-set export: a galaxy-datasets folder our own ingest reads back, NumPy .npz and HDF5 files."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.data.ingest import ingest_files
from explorer.errors import DataError
from explorer.export_training import asinh_stretch, export_training_set
from explorer.workspace import Workspace
from tests.conftest import run_cli

SET_A_LABELLED = ["obj0", "a/b", "<b>x</b>", "ünï"]  # catalogue order
SET_A_LABELS = ["anomaly", "anomaly", "artefact", "normal"]
IMAGE_ROW = {"obj0": 0, "obj1": 1, "obj2": 2, "a/b": 3, "<b>x</b>": 4, "ünï": 5}


def test_galaxy_datasets_png_folder_round_trips_through_explorer_ingest(ws, truth, tmp_path):
    out = export_training_set(
        ws, tmp_path / "train", labels=["anomaly", "normal", "artefact"], progress=False
    )
    cat = pd.read_csv(out / "catalog.csv", dtype={"id_str": str})
    assert cat["id_str"].tolist() == SET_A_LABELLED and cat["label"].tolist() == SET_A_LABELS
    assert pd.read_parquet(out / "catalog.parquet")["file_loc"].tolist() == cat["file_loc"].tolist()
    names = json.loads((out / "provenance.json").read_text())["label_names"]
    assert [names[i] for i in cat["label_int"]] == SET_A_LABELS
    png = Image.open(out / cat["file_loc"][0])
    assert png.mode == "L" and png.size == (16, 16)

    res = run_cli("ingest", tmp_path / "ws2", "--catalog", out / "catalog.csv")
    assert res.returncode == 0, res.stderr
    back = Workspace.open(tmp_path / "ws2").catalog
    assert sorted(back.ids) == sorted(SET_A_LABELLED)
    rows = back.rows(SET_A_LABELLED)
    assert rows["label"].tolist() == SET_A_LABELS
    np.testing.assert_allclose(rows["ra"], ws.catalog.rows(SET_A_LABELLED)["ra"])
    for oid in SET_A_LABELLED:  # the images are the 8-bit stretch of the originals
        want = asinh_stretch(truth["cube_a"][IMAGE_ROW[oid]])
        np.testing.assert_array_equal(back.cutout(oid)[0], want.astype(np.float32))


def test_galaxy_datasets_fits_images_keep_the_float_values(ws, truth, tmp_path):
    out = export_training_set(
        ws, tmp_path / "train", image_format="fits", ids=["ünï", "obj2"], progress=False
    )
    ws2 = Workspace.create(tmp_path / "ws2")
    ingest_files(ws2, out / "catalog.csv", progress=False)
    for oid in ("ünï", "obj2"):
        np.testing.assert_array_equal(ws2.catalog.cutout(oid), truth["cube_a"][IMAGE_ROW[oid]])
    # ids keep their order; obj2 is unlabelled
    assert pd.read_csv(out / "catalog.csv")["label_int"].tolist() == [0, -1]


def test_default_training_set_is_every_labelled_object_with_a_cutout(ws, tmp_path):
    out = export_training_set(ws, tmp_path / "train", progress=False)
    cat = pd.read_csv(out / "catalog.csv")
    assert cat["id_str"].tolist() == [*SET_A_LABELLED, "m0"] and cat["label"].iloc[-1] == "merger"
    assert Image.open(out / cat["file_loc"].iloc[-1]).size == (8, 8)


def test_objects_without_cutouts_are_left_out_with_a_warning(ws, tmp_path):
    with pytest.warns(UserWarning, match="1 of 2 objects have no cutout .*'lc0'"):
        out = export_training_set(ws, tmp_path / "t", ids=["lc0", "obj1"], progress=False)
    assert pd.read_csv(out / "catalog.csv")["id_str"].tolist() == ["obj1"]
    with pytest.raises(DataError, match="a training set needs images"), pytest.warns(UserWarning):
        export_training_set(ws, tmp_path / "t2", ids=["lc0"], progress=False)
    assert not (tmp_path / "t2").exists()


def test_npz_holds_images_ids_and_labels_without_pickles(ws, truth, tmp_path):
    out = export_training_set(
        ws, tmp_path / "t", "npz", labels=["anomaly", "normal", "artefact"], progress=False
    )
    with np.load(out / "training.npz", allow_pickle=False) as data:
        assert data["ids"].tolist() == SET_A_LABELLED and data["labels"].tolist() == SET_A_LABELS
        np.testing.assert_array_equal(data["images"], truth["cube_a"][[IMAGE_ROW[i] for i in SET_A_LABELLED]])
        names = data["label_names"].tolist()
        assert [names[i] for i in data["label_int"]] == SET_A_LABELS


def test_hdf5_holds_the_same_and_its_provenance(ws, truth, tmp_path):
    out = export_training_set(ws, tmp_path / "t", "hdf5", labels=["anomaly"], progress=False)
    with h5py.File(out / "training.h5") as h5:
        assert [s.decode() for s in h5["ids"][:]] == ["obj0", "a/b"]
        assert [s.decode() for s in h5["labels"][:]] == ["anomaly", "anomaly"]
        np.testing.assert_array_equal(h5["images"][:], truth["cube_a"][[0, 3]])
        assert h5.attrs["map_version"] == truth["versions"][1] and "anomaly" in h5.attrs["query"]


def test_one_array_file_cannot_mix_cutout_shapes(ws, tmp_path):
    with pytest.raises(DataError, match=r"different shapes \[\(1, 16, 16\), \(2, 8, 8\)\]"):
        export_training_set(ws, tmp_path / "t", "npz", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_kept_unless_overwrite(ws, tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="not empty; pass --overwrite"):
        export_training_set(ws, out, labels=["anomaly"], progress=False)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    export_training_set(ws, out, labels=["anomaly"], overwrite=True, progress=False)
    assert (out / "catalog.csv").exists() and not (out / "mine.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t"]  # no temporary folders left


def test_asinh_stretch_is_8_bit_monotone_and_handles_nan_and_colour():
    img = np.linspace(0, 100, 64, dtype=np.float32).reshape(1, 8, 8)
    img[0, 0, 0] = np.nan
    out = asinh_stretch(img)
    assert out.dtype == np.uint8 and out.shape == (8, 8) and out[0, 0] == 0
    flat = out.ravel()[1:]
    assert (np.diff(flat.astype(int)) >= 0).all() and flat[-1] == 255
    assert flat[len(flat) // 4] > 255 // 4  # asinh lifts faint values above a linear scale
    rgb = asinh_stretch(np.stack([img[0], img[0] * 0.5, img[0] * 0.1]))
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] >= rgb[..., 2]).all()
    assert asinh_stretch(np.full((1, 4, 4), np.nan)).max() == 0


def test_the_command_line_writes_a_training_set(ws, tmp_path):
    res = run_cli(
        "export", ws.path, "--training-set", "--format", "npz", "-o", tmp_path / "t", "--label", "anomaly"
    )
    assert res.returncode == 0, res.stderr
    with np.load(tmp_path / "t" / "training.npz") as data:
        assert data["ids"].tolist() == ["obj0", "a/b"]


@pytest.mark.skipif(
    not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs (a folder even root cannot write)"
)
def test_a_folder_the_system_refuses_is_a_clear_error(ws):
    with pytest.raises(DataError, match="cannot write .*choose another output path"):
        export_training_set(ws, "/sys/kernel/explorer-training", labels=["anomaly"], progress=False)
