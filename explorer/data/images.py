"""Image cutout stores: float32 ``(N, bands, H, W)`` arrays on disk, memory-mapped, keyed by object id.

Why memory-mapped ``.npy`` rather than HDF5 or zarr: a gallery page or an embedding batch reads a few hundred
cutouts by row with no decompression and no library lock, several processes (the served app, Dask workers) can
read one file at once, and the operating system's page cache does the caching. The cost is disk space (no
compression); a simulated survey too big for that renders its cutouts on demand instead
(:class:`explorer.data.simulated_store.SimulatedImageStore`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from explorer.errors import DataError, WorkspaceError

CUTOUTS_FILE = "cutouts.npy"
IDS_FILE = "ids.parquet"
META_FILE = "meta.json"


class CutoutSource(Protocol):
    """What the rest of the package needs from a set of cutouts (stored or rendered on demand)."""

    name: str
    bands: tuple[str, ...]

    @property
    def ids(self) -> np.ndarray:
        """Object ids, one per cutout, in storage order."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(bands, H, W)`` of every cutout in the set."""

    def __len__(self) -> int: ...

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Cutouts of ``ids`` in that order, float32 ``(n, bands, H, W)``."""

    def get_rows(self, rows: np.ndarray) -> np.ndarray:
        """Cutouts at storage rows ``rows`` in that order, float32 ``(n, bands, H, W)``."""


class _IdLookup:
    """Row lookup from object id for any store that keeps an id array."""

    _ids: np.ndarray
    _row_of: pd.Series | None = None
    name: str

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; :class:`DataError` naming the first unknown id."""
        if self._row_of is None:
            self._row_of = pd.Series(np.arange(len(self._ids)), index=pd.Index(self._ids))
        wanted = pd.Index(np.asarray(ids, dtype=object))
        pos = self._row_of.reindex(wanted)
        if pos.isna().any():
            missing = wanted[pos.isna().to_numpy()][0]
            raise DataError(f"object {missing!r} has no cutout in image set {self.name!r}")
        return pos.to_numpy(dtype=np.int64)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Cutouts of ``ids`` in that order, float32 ``(n, bands, H, W)``."""
        return self.get_rows(self.rows_of(ids))

    def iter_batches(self, batch_size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids, cutouts)`` in storage order, ``batch_size`` at a time."""
        for start in range(0, len(self), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self)))
            yield self._ids[rows], self.get_rows(rows)


class ImageStore(_IdLookup):
    """Cutouts of one image set, stored as a memory-mapped ``.npy`` file in a folder.

    Parameters
    ----------
    path : Path
        The folder holding ``cutouts.npy``, ``ids.parquet`` and ``meta.json``.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            meta = json.loads((self.path / META_FILE).read_text())
            self._ids = pd.read_parquet(self.path / IDS_FILE)["id"].to_numpy(dtype=object)
            self._array = np.load(self.path / CUTOUTS_FILE, mmap_mode="r")
        except (OSError, ValueError, KeyError) as err:
            raise WorkspaceError(
                f"{self.path}: image set is unreadable ({err}); re-ingest the images into a new workspace"
            ) from err
        self.name = meta["name"]
        self.bands = tuple(meta["bands"])
        self.meta = meta
        if self._array.shape[0] != len(self._ids):
            raise WorkspaceError(
                f"{self.path}: {self._array.shape[0]} cutouts but {len(self._ids)} ids; the image set is "
                "damaged, re-ingest it"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(bands, H, W)`` of every cutout in the set."""
        return tuple(self._array.shape[1:])

    @property
    def array(self) -> np.ndarray:
        """The whole set as a read-only memory-mapped ``(N, bands, H, W)`` array (nothing is loaded)."""
        return self._array

    def get_rows(self, rows: np.ndarray) -> np.ndarray:
        """Cutouts at storage rows ``rows`` in that order, read into memory: float32 ``(n, bands, H, W)``."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # sorted reads are kinder to the page cache
        out = np.empty((len(rows), *self.shape), dtype=np.float32)
        out[order] = self._array[rows[order]]
        return out


class ImageStoreWriter:
    """Fill a new image set batch by batch without holding it in memory, then :meth:`close` it.

    The caller writes into a temporary folder of the workspace; the workspace moves it into place once the
    whole ingest succeeded, so a failure never leaves half an image set behind.
    """

    def __init__(self, path: Path, name: str, ids: Sequence[str], shape: tuple[int, int, int],
                 bands: Sequence[str], provenance: dict | None = None):
        if len(bands) != shape[0]:
            raise DataError(f"image set {name!r}: {shape[0]} bands in the cutouts but band names {list(bands)}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=False)
        self.ids = np.asarray(ids, dtype=object)
        self._array = np.lib.format.open_memmap(
            self.path / CUTOUTS_FILE, mode="w+", dtype=np.float32, shape=(len(self.ids), *shape)
        )
        self._filled = np.zeros(len(self.ids), dtype=bool)
        self.meta = {"name": name, "bands": list(bands), "shape": list(shape), "kind": "array",
                     "provenance": provenance or {}}

    def write(self, rows: slice | np.ndarray, cutouts: np.ndarray) -> None:
        """Store ``cutouts`` (``(n, bands, H, W)``) at ``rows``."""
        self._array[rows] = cutouts
        self._filled[rows] = True

    def close(self) -> None:
        """Flush the array and write the id index and metadata."""
        if not self._filled.all():
            missing = self.ids[~self._filled][0]
            raise DataError(f"image set {self.meta['name']!r}: no cutout was written for object {missing!r}")
        self._array.flush()
        del self._array
        pd.DataFrame({"id": pd.array(self.ids, dtype="string")}).to_parquet(self.path / IDS_FILE, index=False)
        (self.path / META_FILE).write_text(json.dumps(self.meta, indent=2))


def open_image_set(path: Path) -> CutoutSource:
    """Open an image set folder, whichever kind it is (stored array or rendered on demand)."""
    meta_path = Path(path) / META_FILE
    if not meta_path.exists():
        raise WorkspaceError(f"{path}: not an image set (no {META_FILE}); the workspace is damaged")
    kind = json.loads(meta_path.read_text()).get("kind", "array")
    if kind == "simulated":
        from explorer.data.simulated_store import SimulatedImageStore

        return SimulatedImageStore(Path(path))
    return ImageStore(Path(path))
