"""Simulated objects addressed by their global index: regenerate any rows' parameters, ids <-> indices, index files.

A simulated object is fully determined by the survey seed, the oddity rate and its global index (see
:mod:`explorer.data.simulate`: object ``i`` draws from its own Philox block). So an on-demand store needs to keep
no parameters at all: it keeps the sorted global indices of its objects (``index.npy``, 8 bytes per object) and
regenerates the parameters of the rows it is asked for, scattered or not, in one vectorised pass
(~30 µs per object in a batch, ~4 ms for 48 scattered objects), then renders them.

The ids are ``SIM`` plus ten digits of the global index, so ids and rows convert without any lookup table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.errors import DataError, WorkspaceError

INDEX_FILE = "index.npy"
META_FILE = "meta.json"
ID_PREFIX = "SIM"
ID_DIGITS = 10
FORMAT = 2  # on-demand sets that store indices only (format 1 stored every parameter in params.parquet)


def simulate_rows(index: np.ndarray, seed: int, oddity_rate: float = 0.005) -> pd.DataFrame:
    """Parameters of the simulated objects at global ``index`` (any order, repeats allowed).

    Equal, row for row, to ``simulate_parameters(n, seed)`` taken at those rows, without drawing the rows in
    between. Uses the simulator's per-object draws (:func:`explorer.data.simulate._object_words`) and its
    vectorised filler; proposed to move into :mod:`explorer.data.simulate` as a public function.

    Parameters
    ----------
    index : array of int
        Global object indices (0 .. 1e10 - 1).
    seed : int
        Survey seed.
    oddity_rate : float
        The oddity rate the survey was drawn with.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`explorer.data.simulate.simulate_parameters`, one row per ``index``.
    """
    from explorer.data import simulate as sim

    index = np.asarray(index, dtype=np.int64).ravel()
    if index.size and (index.min() < 0 or index.max() >= 10**ID_DIGITS):
        raise DataError(f"simulated object index {int(index.min())}..{int(index.max())} is outside 0..1e10-1")
    n = len(index)
    cols = sim._new_columns(n)
    for at in range(0, n, sim._CHUNK):
        part = index[at : at + sim._CHUNK]
        words = _words_at(seed, part)
        sim._fill(cols, at, sim._Draws(words), float(oddity_rate))
    data = {
        "id": pd.Series(ids_of(index), dtype="str"),
        "ra": cols.pop("ra"),
        "dec": cols.pop("dec"),
        "class": pd.Categorical.from_codes(cols.pop("class_code"), categories=list(sim.CLASSES)),
        "subclass": pd.Categorical.from_codes(cols.pop("subclass_code"), categories=list(sim.SUBCLASSES)),
        "is_oddity": cols.pop("is_oddity"),
        "has_image": cols.pop("has_image"),
        "has_lightcurve": cols.pop("has_lightcurve"),
        "source": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["simulated"]),
        "p_key": cols.pop("p_key"),
    }
    data.update(cols)
    return pd.DataFrame(data, copy=False)


def _words_at(seed: int, index: np.ndarray) -> np.ndarray:
    """The per-object draws of objects ``index``: contiguous runs are drawn in one call each."""
    from explorer.data import simulate as sim

    if index.size == 0:
        return np.empty((0, 2 * sim._WORDS), np.uint32)
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    runs = np.split(index, breaks)
    return np.concatenate([sim._object_words(seed, int(r[0]), len(r)) for r in runs])


def ids_of(index: np.ndarray) -> np.ndarray:
    """``SIM%010d`` ids of global indices, as an object array of str."""
    index = np.asarray(index, dtype=np.int64)
    return np.char.add(ID_PREFIX, np.char.zfill(index.astype("U"), ID_DIGITS)).astype(object)


def index_of(ids: Sequence[str]) -> np.ndarray:
    """Global indices of ``SIM%010d`` ids; :class:`DataError` naming the first id that is not one."""
    arr = np.atleast_1d(np.asarray(ids, dtype=object)).astype(str)
    if arr.size == 0:
        return np.empty(0, np.int64)
    tail = np.char.replace(arr, ID_PREFIX, "", count=1)
    ok = (np.char.str_len(arr) == len(ID_PREFIX) + ID_DIGITS) & np.char.startswith(arr, ID_PREFIX)
    ok &= np.char.isdigit(tail)
    if not ok.all():
        raise DataError(
            f"object {str(arr[~ok][0])!r} is not a simulated object (ids look like SIM0000000042)"
        )
    return tail.astype(np.int64)


class IndexedSet:
    """A folder holding the sorted global indices of some simulated objects, plus ``meta.json``.

    Base of the on-demand image and light-curve stores: row ``r`` of the set is the object with global index
    ``index[r]``. Nothing but the index array (memory-mapped) is read when the set opens.
    """

    kind = "simulated"

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.meta = json.loads((self.path / META_FILE).read_text())
            self.index = np.load(self.path / INDEX_FILE, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise WorkspaceError(f"{self.path}: simulated set unreadable ({err}); re-simulate it") from err
        self.name = self.meta["name"]
        self.seed = int(self.meta["seed"])
        self.oddity_rate = float(self.meta.get("oddity_rate", 0.005))
        self._ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def ids(self) -> np.ndarray:
        """Object ids in row order (built on first use: one str per object)."""
        if self._ids is None:
            self._ids = ids_of(np.asarray(self.index))
        return self._ids

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        """Ids of ``rows`` (without building every id)."""
        return ids_of(np.asarray(self.index)[np.asarray(rows, dtype=np.int64)])

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids`` (binary search on the index); :class:`DataError` naming the first unknown id."""
        want = index_of(ids)
        rows = np.searchsorted(self.index, want)
        found = (rows < len(self.index)) & (
            np.asarray(self.index)[np.minimum(rows, len(self.index) - 1)] == want
        )
        if not found.all():
            bad = np.asarray(ids if not isinstance(ids, str) else [ids])[~found][0]
            raise DataError(f"object {bad!r} has no {self.what} in simulated set {self.name!r}")
        return rows.astype(np.int64)

    what = "data"

    def params_of_rows(self, rows: np.ndarray) -> pd.DataFrame:
        """Regenerated parameters of rows ``rows`` of the set (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return simulate_rows(np.asarray(self.index)[rows], self.seed, self.oddity_rate)

    @staticmethod
    def write(folder: Path, index: np.ndarray, meta: dict) -> None:
        """Create the set folder: sorted unique ``index`` and ``meta`` (``name``, ``seed``, ``oddity_rate``...)."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and np.any(np.diff(index) <= 0):
            raise DataError("simulated set: object indices must be strictly increasing")
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / INDEX_FILE, index)
        (folder / META_FILE).write_text(
            json.dumps({**meta, "format": FORMAT, "n": int(index.size)}, indent=2)
        )


def regenerable(params: pd.DataFrame, seed: int, oddity_rate: float = 0.005, probe: int = 8) -> bool:
    """True when ``params`` rows are what :func:`simulate_rows` regenerates from their ids (probing a few rows)."""
    if "id" not in params or "p_key" not in params or not len(params):
        return False
    try:
        index = index_of(params["id"].to_numpy())
    except DataError:
        return False
    if np.any(np.diff(index) <= 0):
        return False
    take = np.unique(np.linspace(0, len(params) - 1, min(probe, len(params))).astype(np.int64))
    again = simulate_rows(index[take], seed, oddity_rate)
    return bool(np.array_equal(again["p_key"].to_numpy(), params["p_key"].to_numpy()[take]))
