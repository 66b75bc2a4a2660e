"""Bad export requests fail with one clear line (exit code 2 on the command line) and leave nothing half-written."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from explorer import export_formats
from explorer.errors import DataError
from explorer.export import export_subset
from explorer.export_formats import TableWriter
from tests.conftest import run_cli
from tests.export.conftest import ALL_IDS


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"labels": ["nope"]},
            r"unknown label 'nope'; labels in this workspace: anomaly, normal, artefact, merger",
        ),
        ({"selection": "nope"}, r"no saved selection 'nope' .*; saved: boxed, picked"),
        ({"selection": "../escape"}, r"selection name '../escape' is not allowed"),
        ({"ids": ["obj0", "ghost"]}, r"unknown object id 'ghost'"),
        ({}, r"choose what to export"),
        ({"all": True, "labels": ["anomaly"]}, r"--all exports every object"),
    ],
)
def test_unknown_or_missing_criteria_are_refused(ws, tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        export_subset(ws, tmp_path / "out.csv", "csv", **kwargs)
    assert _files(tmp_path) == []


def test_an_unknown_format_lists_those_that_exist(ws, tmp_path):
    with pytest.raises(
        DataError, match="no export format 'xlsx'; available: csv, ecsv, fits, parquet, votable"
    ):
        export_subset(ws, tmp_path / "out.xlsx", "xlsx", all=True)
    with pytest.raises(DataError, match="cannot tell the export format from the name; pass --format"):
        export_subset(ws, tmp_path / "out.xlsx", all=True)
    assert _files(tmp_path) == []


def test_an_existing_file_is_kept_unless_overwrite(ws, tmp_path):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(DataError, match="exists already; pass --overwrite"):
        export_subset(ws, out, labels=["anomaly"])
    assert out.read_bytes() == b"precious" and _files(tmp_path) == ["out.parquet"]
    export_subset(ws, out, labels=["anomaly"], overwrite=True)
    assert pd.read_parquet(out)["id"].tolist() == ["obj0", "a/b"] and _files(tmp_path) == ["out.parquet"]


def test_an_existing_sibling_is_kept_unless_overwrite(ws, tmp_path):
    (tmp_path / "out_cutouts.fits").write_bytes(b"precious")
    with pytest.raises(DataError, match="out_cutouts.fits: exists already"):
        export_subset(ws, tmp_path / "out.csv", labels=["anomaly"], with_cutouts=True)
    assert _files(tmp_path) == ["out_cutouts.fits"]


def test_output_folder_must_exist_and_be_a_folder(ws, tmp_path):
    with pytest.raises(DataError, match="folder .*missing does not exist; create it first"):
        export_subset(ws, tmp_path / "missing" / "out.csv", all=True)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="afile is not a folder"):
        export_subset(ws, tmp_path / "afile" / "out.csv", all=True)
    (tmp_path / "adir.csv").mkdir()
    with pytest.raises(DataError, match="adir.csv: is a folder"):
        export_subset(ws, tmp_path / "adir.csv", all=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_unwritable_folder_is_refused(ws, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DataError, match="is not writable"):
            export_subset(ws, folder / "out.csv", all=True)
    finally:
        folder.chmod(0o700)


@pytest.mark.skipif(
    not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs (a folder even root cannot write)"
)
def test_a_folder_the_system_refuses_is_a_clear_error(ws):
    with pytest.raises(DataError, match="cannot write .*choose another output path"):
        export_subset(ws, "/sys/kernel/explorer-export.csv", all=True)


def test_a_writer_failing_half_way_leaves_nothing_behind(ws, tmp_path, monkeypatch):
    def broken(bundle, path):
        path.write_text("half a file")
        raise OSError("disk full")

    real = export_formats.get_writer("csv")
    monkeypatch.setitem(
        export_formats._WRITERS, "csv", TableWriter("csv", broken, real.extensions, real.media_type, "broken")
    )
    (tmp_path / "out.csv").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        export_subset(ws, tmp_path / "out.csv", "csv", all=True, with_cutouts=True, overwrite=True)
    assert _files(tmp_path) == ["out.csv"] and (tmp_path / "out.csv").read_text() == "old"


def test_a_failing_sibling_keeps_the_main_file_from_appearing(ws, tmp_path, monkeypatch):
    import explorer.export as export_module

    def broken(blocks, provenance, path):
        path.write_bytes(b"partial")
        raise RuntimeError("cutout store vanished")

    monkeypatch.setattr(export_module, "write_cutouts_fits", broken)
    with pytest.raises(RuntimeError, match="cutout store vanished"):
        export_subset(ws, tmp_path / "out.votable", all=True, with_cutouts=True)
    assert _files(tmp_path) == []


def test_the_command_line_writes_an_export(ws, tmp_path):
    out = tmp_path / "anom.vot"
    res = run_cli(
        "export",
        ws.path,
        "--format",
        "votable",
        "-o",
        out,
        "--label",
        "anomaly",
        "--label",
        "normal",
        "--embeddings",
    )
    assert res.returncode == 0, res.stderr
    from tests.export.helpers import read_back

    df = read_back(out, "votable")
    assert df["id"].tolist() == ["obj0", "a/b", "ünï"] and "emb_0" in df.columns


@pytest.mark.parametrize(
    "args,match",
    [
        (["--label", "nope"], "unknown label 'nope'"),
        (
            ["--format", "xlsx", "--all"],
            "no export format 'xlsx'; available: csv, ecsv, fits, parquet, votable",
        ),
        (["--selection", "nope"], "no saved selection 'nope'"),
        (
            ["--all", "--training-set", "--format", "tfrecord"],
            "no training-set format 'tfrecord'; available: galaxy-datasets, npz, hdf5",
        ),
    ],
)
def test_the_command_line_reports_bad_input_in_one_line_with_code_2(ws, tmp_path, args, match):
    res = run_cli("export", ws.path, "-o", tmp_path / "out.csv", *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], res.stderr
    assert _files(tmp_path) == []


def test_the_command_line_refuses_to_overwrite_and_to_write_into_a_missing_folder(ws, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    res = run_cli("export", ws.path, "-o", out, "--all")
    assert res.returncode == 2 and "exists already; pass --overwrite" in res.stderr
    assert out.read_text() == "keep me"
    res = run_cli("export", ws.path, "-o", tmp_path / "no" / "such" / "out.csv", "--all")
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_cli("export", ws.path, "-o", out, "--all", "--overwrite")
    assert res.returncode == 0 and pd.read_csv(out)["id"].tolist() == ALL_IDS
