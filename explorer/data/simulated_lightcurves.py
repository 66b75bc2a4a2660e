"""Simulated light curves rendered on demand from the survey seed, and the light-curve sources of a workspace.

A 10M-object simulated survey has ~3.6M light curves of ~200 points each (~700M rows, ~15 GB as Parquet
columns): they are not stored. A light-curve set folder ``lightcurves/<name>/`` holds ``meta.json``
(``kind = "simulated"``, seed, oddity rate) and ``index.npy`` (sorted global indices of the objects that have a
light curve); :class:`SimulatedLightCurveStore` regenerates the parameters of the objects asked for and renders
their curves (:func:`explorer.data.simulate.render_lightcurves`), identically every time.

:func:`open_lightcurves` gives the workspace one object with the :class:`~explorer.data.lightcurves.LightCurveStore`
interface over stored parts and on-demand sets together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data.lightcurves import LightCurveStore
from explorer.data.simulated_index import IndexedSet, index_of, regenerable
from explorer.errors import DataError

#: Above this many objects, :attr:`SimulatedLightCurveStore.table` refuses to render everything at once.
TABLE_LIMIT = 200_000


class SimulatedLightCurveStore(IndexedSet):
    """Light curves of simulated objects, rendered when read (the interface of ``LightCurveStore``)."""

    what = "light curve"
    value_column = "mag"

    @property
    def bands(self) -> list[str]:
        """The simulator's light-curve bands, sorted."""
        from explorer.data.simulate import LC_BANDS

        return sorted(LC_BANDS)

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        """Whether each of ``ids`` has a light curve here (never raises)."""
        arr = np.atleast_1d(np.asarray(ids, dtype=object))
        out = np.zeros(len(arr), bool)
        sim = np.char.startswith(arr.astype(str), "SIM") if arr.size else out
        if not sim.any():
            return out
        try:
            want = index_of(arr[sim])
        except DataError:
            return np.array([self._has_one(i) for i in arr])
        rows = np.searchsorted(self.index, want)
        out[sim] = (rows < len(self.index)) & (
            np.asarray(self.index)[np.minimum(rows, len(self.index) - 1)] == want
        )
        return out

    def _has_one(self, oid) -> bool:
        try:
            self.rows_of([oid])
        except DataError:
            return False
        return True

    def get(self, object_id: str) -> pd.DataFrame:
        """One object's light curve (long form); :class:`DataError` if it has none."""
        return self.get_many([object_id])

    def get_many(self, ids: Sequence[str]) -> pd.DataFrame:
        """The light curves of ``ids`` (long form ``id, time, mag, err, band``, in the order given)."""
        ids = list(ids)
        if not ids:
            return _empty()
        rows = self.rows_of(ids)
        return self.render_rows(rows, order=rows)

    def render_rows(self, rows: np.ndarray, order: np.ndarray | None = None) -> pd.DataFrame:
        """Render rows ``rows`` of the set; ``order`` (rows, repeats allowed) fixes the output order of objects."""
        from explorer.data.simulate import render_lightcurves

        unique = np.unique(np.asarray(rows, dtype=np.int64))
        df = render_lightcurves(self.params_of_rows(unique), seed=self.seed)
        if order is None or np.array_equal(np.asarray(order), unique):
            return df.reset_index(drop=True)
        # render_lightcurves sorts by id, and ids sort like rows: span k of df belongs to unique[k]
        obj = df["id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, obj[1:] != obj[:-1]]) if len(obj) else np.empty(0, np.int64)
        stops = np.r_[starts[1:], len(obj)]
        at = np.searchsorted(unique, np.asarray(order, dtype=np.int64))
        take = np.concatenate([np.arange(starts[k], stops[k]) for k in at] or [np.empty(0, np.int64)])
        return df.iloc[take].reset_index(drop=True)

    @property
    def table(self) -> pd.DataFrame:
        """Every light curve, rendered now (refused above :data:`TABLE_LIMIT` objects: use :meth:`sample`)."""
        if len(self) > TABLE_LIMIT:
            raise DataError(
                f"simulated light-curve set {self.name!r} has {len(self):,} objects; rendering all at "
                f"once would not fit in memory: take store.sample(n) (n <= {TABLE_LIMIT:,}) instead"
            )
        return self.render_rows(np.arange(len(self)))

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """The light curves of ``n`` objects drawn without replacement (seeded), e.g. to pretrain an encoder."""
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(self), min(int(n), len(self)), replace=False))
        return self.render_rows(rows)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": pd.Series([], dtype=object),
            "time": np.empty(0),
            "mag": np.empty(0, np.float32),
            "err": np.empty(0, np.float32),
            "band": pd.Series([], dtype=object),
        }
    )


class OnDemandLightCurves:
    """Light curves to be rendered on demand: what a simulation stores instead of their points.

    Parameters
    ----------
    params : DataFrame
        Rows of :func:`explorer.data.simulate.simulate_parameters` that have a light curve.
    seed : int
        Survey / render seed.
    oddity_rate : float
        The oddity rate the parameters were drawn with.
    """

    def __init__(self, params: pd.DataFrame, seed: int, oddity_rate: float = 0.005):
        self.params = params.reset_index(drop=True)
        self.ids = self.params["id"].tolist()
        self.seed, self.oddity_rate = int(seed), float(oddity_rate)

    def write_set(self, folder: Path, name: str) -> None:
        """Write the set folder (indices only); :class:`DataError` if the rows do not regenerate from their ids."""
        if not regenerable(self.params, self.seed, self.oddity_rate):
            raise DataError(
                f"light-curve set {name!r}: these parameters are not the simulated survey with seed "
                f"{self.seed}; store their rendered light curves instead"
            )
        write_lightcurve_set(
            folder, index_of(self.params["id"].to_numpy()), name, self.seed, self.oddity_rate
        )


def write_lightcurve_set(folder: Path, index: np.ndarray, name: str, seed: int, oddity_rate: float) -> None:
    """Create an on-demand light-curve set folder for the simulated objects at global ``index``."""
    from explorer.data.simulate import LC_BANDS

    IndexedSet.write(
        folder,
        index,
        {
            "name": name,
            "kind": "simulated",
            "seed": int(seed),
            "oddity_rate": float(oddity_rate),
            "bands": list(LC_BANDS),
            "provenance": {"simulator": "explorer.data.simulate"},
        },
    )


class LightCurveSources:
    """Several light-curve stores (stored parts and on-demand sets) behind the ``LightCurveStore`` interface."""

    def __init__(self, stores: Sequence):
        self.stores = list(stores)

    def __len__(self) -> int:
        return sum(len(s) for s in self.stores)

    @property
    def ids(self) -> np.ndarray:
        """Ids of objects with a light curve: each store's ids in turn, in store order."""
        return np.concatenate([np.asarray(s.ids, dtype=object) for s in self.stores])

    @property
    def value_column(self) -> str:
        """The stores' value column (``"mag"`` or ``"flux"``), ``"mag"`` when they differ."""
        kinds = {s.value_column for s in self.stores}
        return kinds.pop() if len(kinds) == 1 else "mag"

    @property
    def bands(self) -> list[str]:
        """Sorted union of the bands of every store."""
        return sorted({b for s in self.stores for b in s.bands})

    @property
    def table(self) -> pd.DataFrame:
        """Every point of every store's light curves, one long-form table, store after store.

        An on-demand store over its size limit refuses with :class:`DataError` (see
        :attr:`SimulatedLightCurveStore.table`).
        """
        return pd.concat([s.table for s in self.stores], ignore_index=True)

    def _owner(self, ids: list) -> np.ndarray:
        owner = np.full(len(ids), -1)
        for k, store in enumerate(self.stores):
            free = owner < 0
            if not free.any():
                break
            if isinstance(store, SimulatedLightCurveStore):
                has = store.contains(np.asarray(ids, dtype=object)[free])
            else:
                has = pd.Index(np.asarray(ids, dtype=object)[free]).isin(store.ids)
            owner[np.flatnonzero(free)[has]] = k
        if (owner < 0).any():
            raise DataError(
                f"object {ids[int(np.flatnonzero(owner < 0)[0])]!r} has no light curve in this workspace"
            )
        return owner

    def get(self, object_id: str) -> pd.DataFrame:
        """One object's light curve from whichever store holds it; :class:`DataError` if none does."""
        return self.get_many([object_id])

    def get_many(self, ids: Sequence[str]) -> pd.DataFrame:
        """The light curves of ``ids`` from whichever store holds each, in the order given."""
        ids = list(ids)
        if not ids:
            return _empty()
        owner = self._owner(ids)
        if (owner == owner[0]).all():
            return self.stores[int(owner[0])].get_many(ids)
        parts = [self.stores[int(owner[i])].get(ids[i]) for i in range(len(ids))]
        return pd.concat(parts, ignore_index=True)


def open_lightcurves(workspace_path: Path, parts: Sequence[str], sets: dict[str, str] | None = None):
    """The light curves of a workspace: stored ``parts`` and on-demand ``sets`` ({name: relative folder}).

    Returns ``None`` (none at all), the one store there is, or a :class:`LightCurveSources` over several.
    """
    root = Path(workspace_path)
    stores = []
    if parts:
        stores.append(LightCurveStore(root / "lightcurves", parts=[Path(p).name for p in parts]))
    for rel in (sets or {}).values():
        stores.append(SimulatedLightCurveStore(root / rel))
    if not stores:
        return None
    return stores[0] if len(stores) == 1 else LightCurveSources(stores)
