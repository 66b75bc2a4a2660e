"""The catalogue of objects: one row per object keyed by a unique string id, plus its modality stores."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from explorer.data.images import CutoutSource
from explorer.data.lightcurves import LightCurveStore
from explorer.errors import DataError

ID_ALIASES = ("id", "id_str", "object_id", "objid", "objectid", "source_id", "name", "oid")
RA_ALIASES = ("ra", "ra_deg", "raj2000", "ra_j2000", "ra_icrs")
DEC_ALIASES = ("dec", "dec_deg", "dej2000", "decj2000", "dec_j2000", "de_icrs", "dec_icrs")
MAX_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _find(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    lower = {str(c).lower(): c for c in columns}
    return next((lower[a] for a in aliases if a in lower), None)


def normalise_catalog(table: pd.DataFrame, source: str, id_column: str | None = None) -> pd.DataFrame:
    """Check a catalogue table and return it with an ``id`` column first and ``ra``/``dec`` in degrees.

    Raises :class:`DataError` naming the file, column or id for: no id column, missing or blank ids,
    duplicate ids, ids with control characters or over 256 characters, non-numeric or out-of-range ra/dec.
    """
    if table.empty:
        raise DataError(f"{source}: the catalogue has no rows")
    if id_column is not None and id_column not in table.columns:
        raise DataError(f"{source}: no column {id_column!r} (columns: {list(table.columns)}); pass --id-column")
    col = id_column or _find(table.columns, ID_ALIASES)
    if col is None:
        raise DataError(f"{source}: no id column (looked for {', '.join(ID_ALIASES)}); "
                        f"name one with --id-column (columns: {list(table.columns)})")
    raw = table[col]
    blank = raw.isna() | (raw.astype(str).str.strip() == "")
    if blank.any():
        raise DataError(f"{source}: row {int(np.flatnonzero(blank.to_numpy())[0])} has no id in column {col!r}; "
                        "every object needs a unique id")
    ids = raw.map(_id_to_str)
    bad = ids[ids.map(lambda s: bool(_CONTROL.search(s)) or len(s) > MAX_ID_LENGTH)]
    if len(bad):
        raise DataError(f"{source}: id {bad.iloc[0][:60]!r} has control characters or is longer than "
                        f"{MAX_ID_LENGTH} characters; clean the id column")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(f"{source}: duplicate id {dup.iloc[0]!r} ({int(ids.duplicated(keep=False).sum())} rows "
                        "share an id); ids must be unique")
    out = table.drop(columns=[col]).copy()
    out.insert(0, "id", ids.to_numpy(dtype=object))
    for name, aliases, lo, hi in (("ra", RA_ALIASES, 0.0, 360.0), ("dec", DEC_ALIASES, -90.0, 90.0)):
        found = _find(out.columns[1:], aliases)
        if found is None:
            continue
        values = pd.to_numeric(out[found], errors="coerce")
        if (values.isna() & out[found].notna()).any():
            raise DataError(f"{source}: column {found!r} has a non-numeric value; {name} must be in degrees")
        if ((values < lo) | (values > hi)).any():
            first = out.loc[(values < lo) | (values > hi), "id"].iloc[0]
            raise DataError(f"{source}: object {first!r} has {name} outside [{lo}, {hi}] degrees")
        out = out.drop(columns=[found])
        out[name] = values.astype(np.float64)
    return out.reset_index(drop=True)


_ARROW_LOOKUP_MIN = 200_000  # below this the hash index (~1 µs per id) beats building an Arrow hash table

#: From this many objects on, a workspace's catalogue keeps its ids as Arrow strings (pandas ``str`` dtype backed
#: by pyarrow) and looks them up by binary search (:class:`~explorer.analysis.id_table.IdTable`) instead of a
#: pandas hash index over Python strings: at 10M objects that is ~0.3 GB instead of ~1.4 GB. Below it, ids are a
#: plain object column: at 1M that costs ~0.2 GB more, but turning a 200k-object selection into ids is 3.6 ms
#: instead of 17 ms (the dashboard's lasso path; measured in the commit that set this).
LEAN_IDS_MIN_ROWS = 2_000_000


def lean_id_column(ids: pd.Series) -> pd.Series:
    """``ids`` as pandas strings held in one contiguous Arrow array (no Python string per id), so that
    :meth:`Catalog._arrow` can hand the same buffers to Arrow without a copy."""
    try:
        dtype = pd.StringDtype("pyarrow", na_value=np.nan)
    except TypeError:  # pandas < 2.3
        dtype = pd.StringDtype("pyarrow")
    arrow = as_arrow_strings(ids)
    if arrow is None:
        arrow = as_arrow_strings(ids.map(_id_to_str))
    return pd.Series(pd.array(arrow, dtype=dtype), index=ids.index, name=ids.name)


def as_arrow_strings(ids):
    """``ids`` (Series, Index, array, list, Arrow array) as one Arrow string array, or None if they are not str."""
    import pyarrow as pa

    try:
        if isinstance(ids, pa.ChunkedArray):
            return ids.combine_chunks().cast(pa.large_string())
        if isinstance(ids, pa.Array):
            return ids.cast(pa.large_string())
        if isinstance(ids, pd.Series | pd.Index) and not pd.api.types.is_object_dtype(ids.dtype):
            arr = pa.array(ids.array)
            return (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).cast(pa.large_string())
        return pa.array(_object_array(ids), type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _object_array(ids) -> np.ndarray:
    if isinstance(ids, pd.Series | pd.Index):
        return ids.to_numpy(dtype=object)
    if isinstance(ids, np.ndarray):
        return ids.astype(object, copy=False) if ids.dtype != object else ids
    return np.asarray(list(ids), dtype=object)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two id arrays hold the same ids in the same order."""
    if a is b:
        return True
    try:
        return bool(a[0] == b[0] and a[-1] == b[-1] and np.array_equal(a, b))
    except (TypeError, ValueError):
        return False


def _arrow_lookup(wanted: np.ndarray, value_set) -> np.ndarray | None:
    """Positions of ``wanted`` in ``value_set`` with Arrow's hash join (-1 where absent); None if not strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if not isinstance(wanted, pa.Array):
            wanted = pa.array(wanted, type=pa.string(), from_pandas=True)
        found = pc.index_in(wanted, value_set=value_set)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _id_to_str(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class Catalog:
    """Objects (rows keyed by id) and the stores that hold their cutouts and light curves.

    Attributes
    ----------
    table : DataFrame
        ``id`` first, then ``ra``/``dec`` (deg, NaN where unknown), ``source``, ``class`` and any metadata.
        ``image_set`` names the image set holding an object's cutout (missing: no image);
        ``has_lightcurve`` says whether it has a light curve.
    images : dict
        Image sets by name.
    lightcurves : LightCurveStore or None
    """

    table: pd.DataFrame
    images: Mapping[str, CutoutSource] = field(default_factory=dict)
    lightcurves: LightCurveStore | None = None

    def __post_init__(self):
        self.lean = not pd.api.types.is_object_dtype(self.table["id"].dtype) and len(self.table) > 0
        self._row_of = (
            None if self.lean else pd.Series(np.arange(len(self.table)), index=pd.Index(self.table["id"]))
        )
        self._id_array: np.ndarray | None = None
        self._arrow_ids = None
        self._id_table = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> np.ndarray:
        """Object id of every catalogue row, in table order (object array; one Python string per object, so
        prefer :attr:`lazy_ids` for millions)."""
        return self.table["id"].to_numpy(dtype=object)

    @property
    def lazy_ids(self):
        """Ids indexable by row (``lazy_ids[rows]`` -> object array) without a Python string per object when the
        catalogue is :attr:`lean` (a :class:`~explorer.analysis.id_table.LazyIds`); else the object array."""
        if not self.lean:
            return self._ids_array()
        from explorer.analysis.id_table import LazyIds

        return LazyIds(self._arrow())

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """Row number of each of ``ids`` in :attr:`table`, -1 where an id is not in the catalogue.

        Fast at any size: ids in the catalogue's own order (a map or embeddings saved from it) are recognised by
        one comparison (~20 ms per million); many ids are looked up with Arrow's hash join (~0.25 s per million);
        a few with the catalogue's hash index (built once, then microseconds per id).
        """
        if self.lean:
            return self._lean_lookup(ids)
        wanted = _object_array(ids)
        if wanted.size == 0:
            return np.empty(0, np.int64)
        mine = self._ids_array()
        if wanted.shape == mine.shape and _same(wanted, mine):
            return np.arange(len(mine), dtype=np.int64)
        index = self._row_of.index
        if wanted.size > _ARROW_LOOKUP_MIN and index.is_unique:
            found = _arrow_lookup(wanted, self._arrow())
            if found is not None:
                return found
        if index.is_unique:
            return index.get_indexer(wanted).astype(np.int64, copy=False)
        pos = self._row_of[~index.duplicated()].reindex(pd.Index(wanted, dtype=object))  # first of duplicates
        return pos.fillna(-1).to_numpy(dtype=np.int64)

    def _lean_lookup(self, ids) -> np.ndarray:
        """:meth:`lookup` without Python strings: Arrow equality for ids in catalogue order, Arrow's hash join
        for many ids, binary search in the packed ids (:class:`IdTable`) for a few."""

        wanted = as_arrow_strings(ids)
        if wanted is None:
            wanted = as_arrow_strings(np.asarray([_id_to_str(v) for v in _object_array(ids)], dtype=object))
        if len(wanted) == 0:
            return np.empty(0, np.int64)
        mine = self._arrow()
        if len(wanted) == len(mine) and wanted.equals(mine):
            return np.arange(len(mine), dtype=np.int64)
        table = self.id_table() if len(wanted) <= _ARROW_LOOKUP_MIN else None
        if table is not None and wanted.null_count == 0:
            from explorer.analysis.id_table import _fixed_width

            return table.positions(_fixed_width(wanted))
        return _arrow_lookup(wanted, mine)

    def id_table(self):
        """The ids packed for binary search (:class:`~explorer.analysis.id_table.IdTable`, built once), for a
        :attr:`lean` catalogue of unique ids; None otherwise."""
        if not self.lean:
            return None
        if self._id_table is None:
            from explorer.analysis.id_table import IdTable
            from explorer.errors import DataError

            table = IdTable(self._arrow())
            try:
                table.positions(table.codes[:1])  # sorts once; raises on duplicate ids
                self._id_table = table
            except DataError:
                self._id_table = False  # duplicate ids: Arrow's join gives the first of each
        return self._id_table or None

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; :class:`DataError` naming the first unknown id."""
        wanted = _object_array(ids)
        pos = self.lookup(wanted)
        if (pos < 0).any():
            raise DataError(f"unknown object id {wanted[pos < 0][0]!r}; it is not in this catalogue")
        return pos

    def rows(self, ids: Sequence[str]) -> pd.DataFrame:
        """Catalogue rows of ``ids`` in that order."""
        return self.table.iloc[self.rows_of(ids)].reset_index(drop=True)

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        """Whether each of ``ids`` is in the catalogue (boolean array; see :meth:`lookup` for the speed)."""
        return self.lookup(ids) >= 0

    def _ids_array(self) -> np.ndarray:
        if self._id_array is None or len(self._id_array) != len(self.table):
            self._id_array = self.table["id"].to_numpy(dtype=object)
            self._arrow_ids = None
        return self._id_array

    def _arrow(self):
        if self._arrow_ids is None or len(self._arrow_ids) != len(self.table):
            import pyarrow as pa

            self._arrow_ids = (
                as_arrow_strings(self.table["id"])
                if self.lean
                else pa.array(self._ids_array(), type=pa.string(), from_pandas=True)
            )
        return self._arrow_ids

    def skycoord(self, ids: Sequence[str] | None = None):
        """Sky positions as an astropy ``SkyCoord`` (ICRS); NaN where a row has no position."""
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        rows = self.table if ids is None else self.rows(ids)
        if "ra" not in rows or "dec" not in rows:
            raise DataError("this catalogue has no ra/dec columns")
        return SkyCoord(ra=rows["ra"].to_numpy() * u.deg, dec=rows["dec"].to_numpy() * u.deg, frame="icrs")

    def modalities(self) -> dict[str, int]:
        """How many objects have each modality."""
        out = {"image": int(self.table["image_set"].notna().sum()) if "image_set" in self.table else 0,
               "lightcurve": int(self.table["has_lightcurve"].sum()) if "has_lightcurve" in self.table else 0}
        return out

    def image_set_ids(self, name: str) -> np.ndarray:
        """Ids (object array, catalogue order) of the objects whose cutout image set ``name`` holds."""
        return self.table.loc[self.table["image_set"] == name, "id"].to_numpy(dtype=object)

    def image_sets_of(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """``{image set: those of ids whose cutout it holds}``, in the order given; ids without a cutout, or not in
        the catalogue, are in none."""
        wanted = _object_array(ids)
        pos = self.lookup(wanted)
        if "image_set" not in self.table.columns or not len(wanted):
            return {}
        # only the rows asked for: converting the whole column (1M rows) cost ~50 ms per gallery page
        names = self.table["image_set"].take(np.maximum(pos, 0)).to_numpy(dtype=object)
        groups: dict[str, list[str]] = {}
        for oid, p, name in zip(wanted.tolist(), pos.tolist(), names.tolist(), strict=True):
            if p >= 0 and isinstance(name, str) and name in self.images:
                groups.setdefault(name, []).append(str(oid))
        return groups

    def cutouts(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Cutouts of ``ids`` by image set (:meth:`image_sets_of`); see :meth:`cutout` for one object."""
        self.rows_of(ids)  # an unknown id: DataError naming it
        groups = self.image_sets_of(ids)
        have = {oid for members in groups.values() for oid in members}
        lacking = [str(oid) for oid in _object_array(ids).tolist() if str(oid) not in have]
        if lacking or not groups:
            raise DataError(f"object {lacking[0] if lacking else ids[0]!r} has no cutout")
        return {name: self.images[name].get(members) for name, members in groups.items()}

    def cutout(self, object_id: str) -> np.ndarray:
        """One object's cutout, float32 ``(bands, H, W)``."""
        row = self.rows([object_id]).iloc[0]
        name = row.get("image_set")
        if not isinstance(name, str):
            raise DataError(f"object {object_id!r} has no cutout")
        return self.images[name].get([object_id])[0]

    def lightcurve(self, object_id: str) -> pd.DataFrame:
        """One object's light curve (long form)."""
        if self.lightcurves is None:
            raise DataError(f"object {object_id!r} has no light curve (the workspace has none)")
        return self.lightcurves.get(object_id)
