"""Simulated cutouts rendered on demand from their stored parameters, so a 10M-object survey stays small on disk.

The image set folder holds ``params.parquet`` (one row of rendering parameters per object, in the order of
``ids.parquet``) and ``meta.json`` with ``kind = "simulated"``, the seed and the cutout size. Rendering is
deterministic per object (see :mod:`explorer.data.simulate`), so the pixels are the same every time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data.images import IDS_FILE, META_FILE, _IdLookup
from explorer.errors import WorkspaceError

PARAMS_FILE = "params.parquet"


class SimulatedImageStore(_IdLookup):
    """An image set whose cutouts are rendered when read (same interface as :class:`~explorer.data.images.ImageStore`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.meta = json.loads((self.path / META_FILE).read_text())
            self._params = pd.read_parquet(self.path / PARAMS_FILE)
        except (OSError, ValueError) as err:
            raise WorkspaceError(f"{self.path}: simulated image set unreadable ({err})") from err
        self._ids = self._params["id"].to_numpy(dtype=object)
        self.name = self.meta["name"]
        self.bands = tuple(self.meta["bands"])
        self.seed = int(self.meta["seed"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["shape"])

    def get_rows(self, rows: np.ndarray) -> np.ndarray:
        from explorer.data.simulate import render_cutouts

        return render_cutouts(self._params.iloc[np.asarray(rows, dtype=np.int64)], seed=self.seed,
                              size=self.shape[-1])

    @property
    def array(self) -> RenderedArray:
        """An array-like view (``len``, slicing) that renders the rows it is asked for."""
        return RenderedArray(self)


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
        rows = np.arange(len(self.store))[key]
        return self.store.get_rows(np.atleast_1d(rows)) if np.ndim(rows) else self.store.get_rows([rows])[0]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


class OnDemandImages:
    """Cutouts to be rendered on demand: what :func:`explorer.data.ingest.add_objects` stores instead of pixels."""

    def __init__(self, params: pd.DataFrame, seed: int, size: int, bands: Sequence[str]):
        self.params = params.reset_index(drop=True)
        self.ids = self.params["id"].tolist()
        self.seed, self.size, self.bands = seed, size, tuple(bands)
        self.source = "simulated survey (on demand)"

    def write_set(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True)
        self.params.to_parquet(folder / PARAMS_FILE, index=False)
        pd.DataFrame({"id": pd.array(self.ids, dtype="string")}).to_parquet(folder / IDS_FILE, index=False)
        meta = {"name": name, "kind": "simulated", "bands": list(self.bands), "seed": self.seed,
                "shape": [len(self.bands), self.size, self.size], "provenance": {"simulator": "explorer.data.simulate"}}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
