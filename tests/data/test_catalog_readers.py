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


@pytest.mark.parametrize("many", [False, True])
def test_a_lean_catalogue_finds_ids_like_the_ordinary_one(monkeypatch, many):
    """Millions of ids are kept as one Arrow array and found by binary search or Arrow's hash join (no Python
    string per object); both catalogues must give the same rows, -1 for unknown ids, the first of a duplicate."""
    import explorer.data.catalog as catalog_mod
    from explorer.data.catalog import Catalog, lean_id_column

    monkeypatch.setattr(catalog_mod, "_ARROW_LOOKUP_MIN", 5 if many else 10**9)
    rng = np.random.default_rng(1)
    ids = [f"J{v:07d}" for v in rng.permutation(500)] + ["short", "J0000003"]  # unsorted, varied width, a repeat
    plain = Catalog(pd.DataFrame({"id": pd.Series(ids, dtype=object), "ra": 0.0}))
    lean = Catalog(pd.DataFrame({"id": lean_id_column(pd.Series(ids)), "ra": 0.0}))
    assert lean.lean and not plain.lean
    asked = [*rng.choice(ids, 40), "nope", "J00000031", "shor", "short"]
    assert lean.lookup(asked).tolist() == plain.lookup(asked).tolist()
    assert lean.lookup(["J0000003"]).tolist() == [ids.index("J0000003")]  # first of the two
    assert lean.lookup(ids).tolist() == list(range(len(ids)))  # catalogue order, recognised at once
    assert lean.lazy_ids[[3, 0]].tolist() == [ids[3], ids[0]] and lean.lazy_ids[1] == ids[1]
    with pytest.raises(DataError, match="'nope'"):
        lean.rows_of(["nope"])
