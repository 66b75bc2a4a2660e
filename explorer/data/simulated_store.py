"""Simulated cutouts rendered on demand, so a 10M-object simulated survey stays small on disk.

An on-demand image set folder holds ``meta.json`` (``kind = "simulated"``, seed, oddity rate, cutout shape) and
``index.npy``: the sorted global indices of its objects (format 2, 8 bytes per object). Reading rows regenerates
their parameters from the survey seed (:func:`explorer.data.simulated_index.simulate_rows`) and renders them
(:func:`explorer.data.simulate.render_cutouts`); both are deterministic per object, so the pixels are the same
every time, alone or in any batch, and equal to what an eagerly stored set would hold.

Format 1 folders (``params.parquet`` with every parameter, written before format 2) are still read.
10M stored 3×64×64 float32 cutouts would take 490 GB; a format-2 set of 10M objects takes 80 MB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data.images import IDS_FILE, META_FILE, _IdLookup
from explorer.data.simulated_index import IndexedSet, index_of, regenerable
from explorer.errors import WorkspaceError

PARAMS_FILE = "params.parquet"


class SimulatedImageStore:
    """An image set whose cutouts are rendered when read (same interface as :class:`~explorer.data.images.ImageStore`).

    Parameters
    ----------
    path : Path
        The image set folder (format 2: ``index.npy``; format 1: ``params.parquet``).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            meta = json.loads((self.path / META_FILE).read_text())
        except (OSError, ValueError) as err:
            raise WorkspaceError(f"{self.path}: simulated image set unreadable ({err})") from err
        self._impl = (
            _IndexedImages(self.path) if meta.get("format", 1) >= 2 else _ParamImages(self.path, meta)
        )
        self.meta = meta
        self.name = meta["name"]
        self.bands = tuple(meta["bands"])
        self.seed = int(meta["seed"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(bands, H, W)`` of every cutout."""
        return tuple(self.meta["shape"])

    @property
    def ids(self) -> np.ndarray:
        """Object ids in row order."""
        return self._impl.ids

    def __len__(self) -> int:
        return len(self._impl)

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; :class:`~explorer.errors.DataError` naming the first unknown id."""
        return self._impl.rows_of(ids)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Cutouts of ``ids`` in that order, float32 ``(n, bands, H, W)``."""
        return self.get_rows(self.rows_of(ids))

    def get_rows(self, rows: np.ndarray) -> np.ndarray:
        """Render rows ``rows`` of the set: float32 ``(len(rows), bands, H, W)``."""
        from explorer.data.simulate import render_cutouts

        params = self._impl.params_of_rows(np.asarray(rows, dtype=np.int64))
        return render_cutouts(params, seed=self.seed, size=self.shape[-1])

    def iter_batches(self, batch_size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids, cutouts)`` in storage order, ``batch_size`` at a time."""
        for start in range(0, len(self), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self)))
            yield self._impl.ids_at(rows), self.get_rows(rows)

    @property
    def array(self) -> RenderedArray:
        """An array-like view (``len``, slicing) that renders the rows it is asked for."""
        return RenderedArray(self)


class _IndexedImages(IndexedSet):
    """Format 2: global indices only; parameters regenerated per request."""

    what = "cutout"


class _ParamImages(_IdLookup):
    """Format 1: every parameter stored in ``params.parquet`` (loaded whole when the set opens)."""

    def __init__(self, path: Path, meta: dict):
        try:
            self._params = pd.read_parquet(path / PARAMS_FILE)
        except (OSError, ValueError) as err:
            raise WorkspaceError(f"{path}: simulated image set unreadable ({err})") from err
        self._ids = self._params["id"].to_numpy(dtype=object)
        self.name = meta["name"]

    def params_of_rows(self, rows: np.ndarray) -> pd.DataFrame:
        return self._params.iloc[rows]

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        return self._ids[rows]


class RenderedArray:
    """``store.array[a:b]`` renders rows ``a..b``; enough for batch-wise readers such as the training loops."""

    def __init__(self, store: SimulatedImageStore):
        self.store = store
        self.shape = (len(store), *store.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = 4

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):  # a range object: no 8-byte row number per object of a 10M set
            return self.store.get_rows(np.asarray(range(len(self.store))[key], dtype=np.int64))
        rows = np.asarray(key)
        if rows.ndim == 0:
            return self.store.get_rows(np.array([int(range(len(self.store))[int(rows)])]))[0]
        return self.store.get_rows(np.arange(len(self.store))[rows])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


class OnDemandImages:
    """Cutouts to be rendered on demand: what :func:`explorer.data.ingest.add_objects` stores instead of pixels.

    Parameters
    ----------
    params : DataFrame
        Rows of :func:`explorer.data.simulate.simulate_parameters` (at least ``id`` and ``p_key``; every
        rendering column if they cannot be regenerated from their ids).
    seed, size, bands :
        Survey / render seed, cutout size and band names.
    oddity_rate : float
        The oddity rate the parameters were drawn with.
    """

    def __init__(
        self, params: pd.DataFrame, seed: int, size: int, bands: Sequence[str], oddity_rate: float = 0.005
    ):
        self.params = params.reset_index(drop=True)
        self.ids = self.params["id"].tolist()
        self.seed, self.size, self.bands = seed, size, tuple(bands)
        self.oddity_rate = float(oddity_rate)
        self.source = "simulated survey (on demand)"

    def write_set(self, folder: Path, name: str) -> None:
        """Write the set folder: indices only when the rows regenerate from their ids, else every parameter."""
        meta = {
            "name": name,
            "kind": "simulated",
            "bands": list(self.bands),
            "seed": self.seed,
            "oddity_rate": self.oddity_rate,
            "shape": [len(self.bands), self.size, self.size],
            "provenance": {"simulator": "explorer.data.simulate"},
        }
        if regenerable(self.params, self.seed, self.oddity_rate):
            IndexedSet.write(folder, index_of(self.params["id"].to_numpy()), meta)
            return
        folder.mkdir(parents=True)
        self.params.to_parquet(folder / PARAMS_FILE, index=False)
        pd.DataFrame({"id": pd.array(self.ids, dtype="string")}).to_parquet(folder / IDS_FILE, index=False)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
