"""Catalogues from every registered format come out with the same ids, positions and columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.table import Table

from explorer.data import formats
from explorer.data.catalog import normalise_catalog
from explorer.errors import DataError


@pytest.mark.parametrize("fmt,ext", [("csv", ".csv"), ("parquet", ".parquet"), ("fits", ".fits"),
                                     ("votable", ".vot"), ("ecsv", ".ecsv")])
def test_every_catalogue_format_reads_the_same_objects(tmp_path, catalog_frame, fmt, ext):
    path = tmp_path / f"cat{ext}"
    if fmt in ("csv", "parquet"):
        getattr(catalog_frame, f"to_{fmt}")(path, index=False)
    else:
        t = Table.from_pandas(catalog_frame)
        t["ra"].unit, t["dec"].unit = u.deg, u.deg
        t.write(path, format={"fits": "fits", "votable": "votable", "ecsv": "ascii.ecsv"}[fmt])
    assert formats.identify("catalog", path) == fmt
    table = normalise_catalog(formats.read("catalog", path), str(path))
    assert table["id"].tolist() == catalog_frame["id"].tolist()
    np.testing.assert_allclose(table["ra"], catalog_frame["ra"])
    assert table["class"].tolist() == catalog_frame["class"].tolist()


def test_galaxy_datasets_convention_is_recognised(tmp_path):
    df = pd.DataFrame({"id_str": ["g1", "g2"], "file_loc": ["images/g1.png", "images/g2.png"],
                       "smooth-or-featured_smooth_fraction": [0.2, 0.9]})
    path = tmp_path / "train_catalog.csv"
    df.to_csv(path, index=False)
    assert formats.identify("catalog", path) == "galaxy-datasets"
    table = normalise_catalog(formats.read("catalog", path), str(path))
    assert table["id"].tolist() == ["g1", "g2"]
    assert table["file_loc"].iloc[0] == str(tmp_path / "images/g1.png")


def test_unknown_format_lists_the_available_ones(tmp_path):
    with pytest.raises(DataError, match="available: .*csv.*fits"):
        formats.read("catalog", tmp_path / "x.csv", format="excel")


@pytest.mark.parametrize("table,match", [
    (pd.DataFrame({"name": ["a", "a"], "ra": [1.0, 2.0]}), "duplicate id 'a'"),
    (pd.DataFrame({"id": ["a", None], "ra": [1.0, 2.0]}), "row 1 has no id"),
    (pd.DataFrame({"x": [1, 2]}), "no id column"),
    (pd.DataFrame({"id": ["a", "b"], "ra": [1.0, 400.0]}), "'b' has ra outside"),
    (pd.DataFrame({"id": ["a", "b"], "dec": ["1", "north"]}), "non-numeric"),
    (pd.DataFrame({"id": ["a\x00b"]}), "control characters"),
])
def test_bad_catalogues_name_the_problem(table, match):
    with pytest.raises(DataError, match=match):
        normalise_catalog(table, "cat.csv")


def test_integer_ids_become_strings_and_id_column_can_be_named():
    table = normalise_catalog(pd.DataFrame({"objid": [10, 11], "other": [1, 2]}), "c", id_column="objid")
    assert table["id"].tolist() == ["10", "11"]
