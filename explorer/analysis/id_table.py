"""Millions of object ids in little memory: one fixed-width byte array, rows -> ids and ids -> rows by binary search.

Ten million ids as Python strings cost ~0.7 GB (and a hash index over them as much again); as one
``numpy`` array of fixed-width UTF-8 bytes they cost ``n × longest id`` bytes (130 MB for ``SIM0000000042``-style
ids), load straight from an Arrow column, and look up by binary search (no hash table; a sort order of 4 bytes
per id only when the ids are not already sorted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from explorer.errors import DataError


class IdTable:
    """Object ids in row order.

    Parameters
    ----------
    ids : pyarrow string array, numpy array or sequence of str
        One id per row, unique.

    Attributes
    ----------
    codes : numpy.ndarray
        ``(n,)`` fixed-width bytes (``S<w>``): the UTF-8 ids.
    """

    def __init__(self, ids: pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str]):
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        if isinstance(ids, pa.Array):
            self.codes = _fixed_width(ids)
        else:
            arr = np.asarray(ids)
            self.codes = arr if arr.dtype.kind == "S" else np.char.encode(arr.astype(str), "utf-8")
        self._order: np.ndarray | None = None
        self._sorted: bool | None = None

    @classmethod
    def read(cls, path: str | Path, column: str = "id") -> IdTable:
        """The ``column`` of a Parquet file (or folder of parts), read as Arrow and packed."""
        import pyarrow.parquet as pq

        return cls(pq.read_table(path, columns=[column])[column])

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        """Memory held (the codes plus a sort order once built)."""
        return self.codes.nbytes + (0 if self._order is None else self._order.nbytes)

    def take(self, rows: Iterable[int]) -> np.ndarray:
        """Ids at ``rows`` as an object array of str (~0.3 µs per id)."""
        picked = self.codes[np.asarray(rows, dtype=np.int64)].tolist()
        out = np.empty(len(picked), dtype=object)
        out[:] = [b.decode("utf-8") for b in picked]
        return out

    def take_arrow(self, rows: Iterable[int]) -> pa.StringArray:
        """Ids at ``rows`` as an Arrow string array, without a Python string per id (~40 ns per id)."""
        picked = np.ascontiguousarray(self.codes[np.asarray(rows, dtype=np.int64)])
        width = picked.dtype.itemsize
        raw = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(picked), [None, pa.py_buffer(picked)]
        )
        out = raw.cast(pa.binary()).cast(pa.string())
        if len(picked) and np.any(picked.view(np.uint8).reshape(-1, width)[:, -1] == 0):
            import pyarrow.compute as pc

            out = pc.utf8_rtrim(out, characters="\0")  # shorter ids were padded with NUL bytes
        return out

    def to_numpy(self) -> np.ndarray:
        """Every id as an object array of str (one Python string each: avoid for millions)."""
        return self.take(np.arange(len(self)))

    def positions(self, ids: Iterable[str]) -> np.ndarray:
        """Row of each of ``ids``, -1 where an id is not here (binary search; no hash table)."""
        want = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if want.size == 0:
            return np.empty(0, np.int64)
        self._prepare()
        if want.dtype.kind != "S":
            want = np.char.encode(want.astype(str), "utf-8")
        pos = np.minimum(np.searchsorted(self.codes, want, sorter=self._order), len(self) - 1)
        rows = (pos if self._order is None else self._order[pos]).astype(np.int64)
        return np.where(self.codes[rows] == want, rows, -1)

    def _prepare(self) -> None:
        if self._sorted is None:
            c = self.codes
            self._sorted = bool(len(c) < 2 or np.all(c[1:] > c[:-1]))
            if not self._sorted:
                order = np.argsort(c, kind="stable")
                self._order = order.astype(np.int32 if len(c) < 2**31 else np.int64)
                s = c[self._order]
                dup = np.flatnonzero(s[1:] == s[:-1])
                if dup.size:
                    raise DataError(
                        f"object ids are not unique (e.g. {s[dup[0]].decode()!r}); give every object one id"
                    )

    def rows_of(self, ids: Iterable[str], missing: str = "raise") -> np.ndarray:
        """Rows of ``ids``; ``missing="raise"``: :class:`DataError` naming an unknown id, ``"drop"``: skip it."""
        self._prepare()
        want = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        rows = self.positions(want)
        found = rows >= 0
        if not found.all():
            if missing == "raise":
                bad = want[~found][0]
                bad = bad.decode("utf-8", "replace") if isinstance(bad, bytes) else str(bad)
                raise DataError(
                    f"unknown object id {bad!r} ({int((~found).sum())} unknown in all); "
                    "check the id, or recompute this product for the current catalogue"
                )
            rows = rows[found]
        return rows

    def contains(self, ids: Iterable[str]) -> np.ndarray:
        """Whether each of ``ids`` is here."""
        return self.positions(ids) >= 0


class LazyIds:
    """Object ids kept as one Arrow string array; indexing by rows makes Python strings for those rows only.

    Stands in for a numpy object array of ids where millions of them would otherwise each be a Python string
    (~60 bytes apiece): ``ids[rows]`` is an object array of str, ``ids[i]`` a str, ``len(ids)`` the count, and
    ``np.asarray(ids)`` (every id at once, costly at scale) the full object array.

    Parameters
    ----------
    ids : pyarrow string array or chunked array
    """

    dtype = np.dtype(object)
    ndim = 1

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self.arrow = ids if ids.type == pa.large_string() else ids.cast(pa.large_string())

    def __len__(self) -> int:
        return len(self.arrow)

    @property
    def shape(self) -> tuple[int]:
        """``(n,)``, like a 1-D array."""
        return (len(self.arrow),)

    def __getitem__(self, rows):
        if isinstance(rows, int | np.integer):
            return self.arrow[int(rows)].as_py()
        if isinstance(rows, slice):
            return self.arrow[rows].to_numpy(zero_copy_only=False)
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return self.arrow.take(pa.array(rows.astype(np.int64, copy=False))).to_numpy(zero_copy_only=False)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.arrow.to_numpy(zero_copy_only=False)
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list[str]:
        """Every id as a list of str."""
        return self.arrow.to_pylist()


def _fixed_width(arr: pa.Array) -> np.ndarray:
    """An Arrow string array as ``S<w>`` bytes, straight from its buffers (no Python string per id)."""
    if arr.null_count:
        raise DataError(f"{arr.null_count} object ids are missing; every object needs an id")
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.empty(0, "S1")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    lens = np.diff(offsets)
    w = max(int(lens.max()), 1)
    body = data[offsets[0] : offsets[-1]]
    if (lens == w).all():
        return body.reshape(n, w).copy().view(f"S{w}").ravel()
    out = np.zeros((n, w), np.uint8)
    for a in range(0, n, 1 << 20):  # bounded temporaries
        b = min(a + (1 << 20), n)
        ln = lens[a:b]
        rows = np.repeat(np.arange(a, b), ln)
        cols = np.arange(int(ln.sum())) - np.repeat(np.cumsum(ln) - ln, ln)
        out[rows, cols] = data[offsets[a] : offsets[b]]
    return out.view(f"S{w}").ravel()
