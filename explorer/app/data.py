"""Workspace data every session of one process shares: catalogue, map, scores, embeddings, indexes, label store.

Loaded once per process and workspace version (``pn.state.as_cached``), never per browser session, and never
recomputed on a request: the app only reads what the pipeline saved. Anything missing (no map, no scores, no
embeddings) is recorded as a note that tells the user which command makes it; the parts show that note instead
of breaking.
"""

from __future__ import annotations

import getpass
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.analysis.id_table import LazyIds
from explorer.data.catalog import Catalog, as_arrow_strings
from explorer.errors import ExplorerError
from explorer.workspace import Embeddings, Workspace

MAX_CATEGORIES = 24
SCORE = "anomaly score"
FLAGGED = "flagged by (top 1 %)"
#: Fraction of the map's objects, by saved score, whose detector the "flagged by" colouring shows.
FLAGGED_TOP = 0.01
LABEL = "label"
NONE = "density"
UNLABELLED = "(unlabelled)"
#: The category of a categorical colouring that holds everything not named (rare values, unflagged objects).
OTHER = "other"
CUTOUT_CACHE = 512  # raw cutouts kept per process (64 x 64 x 3 float32: 48 kB each)
_SKIP_COLUMNS = {"id", "image_set", "file_loc", "file", "filename", "path"}


@dataclass(frozen=True)
class ColourSpec:
    """How to colour the map by one column.

    Attributes
    ----------
    name : str
        The option shown to the user (a catalogue column, ``"label"``, ``"anomaly score"`` or ``"density"``).
    kind : str
        ``"count"`` (density only), ``"categorical"`` (legend) or ``"continuous"`` (colour bar).
    categories : tuple of str
        Category names in legend order (categorical only).
    """

    name: str
    kind: str
    categories: tuple[str, ...] = ()


@dataclass
class AppData:
    """What the app reads from one workspace, aligned on the map's rows.

    Attributes
    ----------
    ws : Workspace
    catalog : Catalog
    frame : DataFrame
        One row per object on the map: ``id, x, y`` (empty when the workspace has no map).
    rows : ndarray
        Catalogue row of each ``frame`` row.
    index : PointIndex or None
        The selection index over ``frame`` (None without a map).
    scores : ndarray or None
        Anomaly score per ``frame`` row from the saved scores (higher = more anomalous), NaN where unscored.
    score_reasons : ndarray or None
        Per ``frame`` row, the position in ``score_reason_names`` of the detector that gave the saved score
        (saved scores with several detectors only; NaN where unscored).
    score_references : dict
        What "ordinary" was for a detector's statistics when the scores were saved (their ``references``).
    embeddings : Embeddings or None
    notes : dict
        What is missing, by part (``"map"``, ``"scores"``, ``"embeddings"``), as a message with the fix.
    """

    ws: Workspace
    catalog: Catalog
    frame: pd.DataFrame
    rows: np.ndarray
    index: object | None
    map_version: str | None
    scores: np.ndarray | None
    score_version: str | None
    embeddings: Embeddings | None
    notes: dict[str, str] = field(default_factory=dict)
    score_reasons: np.ndarray | None = None
    score_reason_names: tuple[str, ...] = ()
    score_references: dict = field(default_factory=dict)
    _labels: object | None = None
    _colour_cache: dict = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _frame_of: np.ndarray | None = None
    _shared: dict = field(default_factory=dict)
    _similarity: object | None = None
    _embedded_index: pd.Index | None = None
    thumbnails: OrderedDict = field(default_factory=OrderedDict)
    _cutouts: OrderedDict = field(default_factory=OrderedDict)

    # ------------------------------------------------------------------ lookups
    @property
    def has_map(self) -> bool:
        """Whether there is a map to show: a selection index and at least one object in ``frame``."""
        return self.index is not None and len(self.frame) > 0

    @property
    def embedding_version(self) -> str | None:
        """Version of the loaded embeddings, ``None`` when the workspace has none."""
        return None if self.embeddings is None else self.embeddings.version

    def frame_positions(self, ids) -> np.ndarray:
        """Row of ``frame`` holding each of ``ids``, -1 where an id is not on the map.

        One hash lookup in the catalogue's id index (shared by every part; see :meth:`Catalog.lookup`) and one
        gather through a catalogue-row -> map-row table: no second index of a million ids.
        """
        if self._frame_of is None:
            inv = np.full(len(self.catalog), -1, dtype=np.int64)
            inv[self.rows] = np.arange(len(self.rows), dtype=np.int64)
            self._frame_of = inv
        if len(ids) == 0:
            return np.empty(0, np.int64)
        cat = self.catalog.lookup(ids)
        return np.where(cat >= 0, self._frame_of[np.maximum(cat, 0)], -1)

    def frame_rows(self, ids) -> np.ndarray:
        """Rows of ``frame`` holding ``ids``, in the order of ``ids`` (ids not on the map are dropped)."""
        pos = self.frame_positions(ids)
        return pos[pos >= 0]

    def score_of(self, ids) -> np.ndarray:
        """Saved anomaly score of each of ``ids`` (NaN where unknown)."""
        out = np.full(len(ids), np.nan)
        if self.scores is None or len(ids) == 0:
            return out
        pos = self.frame_positions(ids)
        ok = pos >= 0
        out[ok] = self.scores[pos[ok]]
        return out

    def reason_of(self, object_id: str) -> str | None:
        """The detector that gave ``object_id`` its saved anomaly score (e.g. ``"trail"``), None if not known."""
        if self.score_reasons is None:
            return None
        pos = self.frame_positions(np.array([object_id], dtype=object))
        code = self.score_reasons[pos[0]] if pos[0] >= 0 else np.nan
        return self.score_reason_names[int(code)] if np.isfinite(code) else None

    def flag_explanation(self, object_id: str) -> str | None:
        """Why the saved scores flagged ``object_id``: the detector (:meth:`reason_of`) and what it looks for
        (:func:`~explorer.analysis.detectors.describe`, e.g. ``"ring: a ring of light about the centre"``) or, for
        ``variability``, the statistic of its light curve farthest from ordinary, e.g. ``"variability: skew in g
        +8.1σ"`` (the survey's median and scatter are saved with the scores); when labels have moved the live
        ranking's trust in that detector, by how much (" · trusted less after the labels (-0.5 decades)"). None
        if not known."""
        reason = self.reason_of(object_id)
        text = self._flag_text(reason, object_id)
        trust = self._trust_note(reason)
        return text + trust if text and trust else text

    def _trust_note(self, reason: str | None) -> str:
        """" · trusted less after the labels (-0.5 decades)" when the live ranking's labels moved ``reason``."""
        ranking = getattr(self, "_live_ranking", None)
        change = ranking.trust().get(reason, 0.0) if ranking is not None and reason else 0.0
        if abs(change) < 0.05:
            return ""
        return f" · trusted {'less' if change < 0 else 'more'} after the labels ({change:+.1f} decades)"

    def _flag_text(self, reason: str | None, object_id: str) -> str | None:
        from explorer.analysis.detectors import describe

        reference = self.score_references.get(reason) if reason else None
        if reason != "variability" or not reference or self.catalog.lightcurves is None:
            return f"{reason}: {describe(reason)}" if reason and describe(reason) else reason
        from explorer.analysis.variability import CURVE_STATISTICS, strongest, variability_features

        try:
            found = strongest(variability_features(self.catalog.lightcurve(object_id), bands=reference["bands"]),
                              reference)
        except ExplorerError:  # no light curve after all: the detector's name is all there is to say
            return reason
        if found is None:
            return reason
        name, z = found
        digits = 1 if abs(z) < 10 else 0
        if name in CURVE_STATISTICS:  # of the whole curve, not of one band
            return f"{reason}: {CURVE_STATISTICS[name]} {z:+.{digits}f}σ"
        statistic, band = str(name).split("_", 1)
        return f"{reason}: {statistic} in {band} {z:+.{digits}f}σ"

    def row(self, object_id: str | None) -> pd.Series | None:
        """One object's catalogue row, or None if the id is unknown (a hash lookup, no scan of the catalogue)."""
        if object_id is None:
            return None
        pos = int(self.catalog.lookup([object_id])[0])
        return None if pos < 0 else self.catalog.table.iloc[pos]

    def cutouts(self, ids) -> list[tuple[np.ndarray, tuple[str, ...]] | None]:
        """``(cutout (bands, H, W), band names)`` of each of ``ids``, None where an object has no cutout.

        One read (or render) per image set for all the ids not seen lately, instead of one per object: a gallery
        page costs one call into each store. The last :data:`CUTOUT_CACHE` cutouts are kept for every session
        of the process (the focused object is usually one the gallery has just shown).
        """
        ids = [str(i) for i in ids]
        out: list = [None] * len(ids)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for k, oid in enumerate(ids):
                hit = self._cutouts.get(oid)
                if hit is not None:
                    self._cutouts.move_to_end(oid)
                    out[k] = hit
                else:
                    missing.setdefault(oid, []).append(k)
        if not missing:
            return out
        for name, members in self.catalog.image_sets_of(list(missing)).items():
            store = self.catalog.images[name]
            bands = tuple(str(b) for b in store.bands)
            try:
                pixels = store.get(members)
            except ExplorerError:  # one bad id must not blank the others: fall back to one read each
                pixels = [self._one_cutout(store, oid) for oid in members]
            with self._lock:
                for oid, pix in zip(members, pixels, strict=True):
                    if pix is None:
                        continue
                    found = (np.asarray(pix), bands)
                    self._cutouts[oid] = found
                    for k in missing[oid]:
                        out[k] = found
                while len(self._cutouts) > CUTOUT_CACHE:
                    self._cutouts.popitem(last=False)
        return out

    @staticmethod
    def _one_cutout(store, object_id: str) -> np.ndarray | None:
        try:
            return store.get([object_id])[0]
        except ExplorerError:
            return None

    def shared(self, key: tuple, make, limit: int = 8):
        """``make()`` computed once per process and ``key`` and then handed to every session (plot elements,
        rasters, thinned backgrounds: anything read-only derived from this data).

        ``key[0]`` names the kind of thing; of each kind only the ``limit`` most recently used are kept (a
        categorical raster of a large map is ~20 MB).
        """
        with self._lock:
            store = self._shared.setdefault(key[0], OrderedDict())
            if key in store:
                store.move_to_end(key)
                return store[key]
        value = make()  # outside the lock: a slow build must not stall other sessions' lookups
        with self._lock:
            store[key] = value
            while len(store) > limit:
                store.popitem(last=False)
        return value

    # ------------------------------------------------------------------ labels
    @property
    def labels(self):
        """The workspace's label store, opened once per process (None if :mod:`explorer.labels` is missing)."""
        with self._lock:
            if self._labels is None:
                try:
                    self._labels = self.ws.labels()
                except ImportError:
                    self.notes.setdefault(
                        "labels", "labelling is unavailable: explorer.labels is not installed"
                    )
                    return None
            return self._labels

    def label_column(self) -> np.ndarray:
        """Current label per ``frame`` row (``"(unlabelled)"`` where none)."""
        out = np.full(len(self.frame), UNLABELLED, dtype=object)
        store = self.labels
        if store is None or not len(self.frame):
            return out
        current = store.current()
        if len(current):
            pos = self.frame_positions(current["id"].to_numpy(dtype=object))
            on_map = pos >= 0
            out[pos[on_map]] = current["label"].to_numpy(dtype=object)[on_map]
        return out

    def labelled_mask(self) -> np.ndarray:
        """Whether each ``frame`` row has a label now."""
        mask = np.zeros(len(self.frame), dtype=bool)
        store = self.labels
        if store is not None and len(self.frame):
            current = store.current()
            mask[self.frame_rows(current["id"].to_numpy(dtype=object))] = True
        return mask

    # ------------------------------------------------------------------ colouring
    def colour_options(self) -> dict[str, ColourSpec]:
        """Every way the map can be coloured: density, class-like columns, label, anomaly score, numeric columns."""
        with self._lock:
            if "__options__" not in self._colour_cache:
                self._colour_cache["__options__"] = self._colour_options()
            return dict(self._colour_cache["__options__"])

    def _colour_options(self) -> dict[str, ColourSpec]:
        opts: dict[str, ColourSpec] = {NONE: ColourSpec(NONE, "count")}
        table = self.catalog.table
        first = [c for c in ("class", "source") if c in table.columns]
        rest = [c for c in table.columns if c not in first and c not in _SKIP_COLUMNS]
        for col in first:
            spec = self._spec_for(col, table[col])
            if spec is not None:
                opts[col] = spec
        opts[LABEL] = ColourSpec(LABEL, "categorical")
        if self.scores is not None:
            opts[SCORE] = ColourSpec(SCORE, "continuous")
        if self.score_reasons is not None and self.score_reason_names:
            names = tuple(n.replace("_", " ") for n in self.score_reason_names)
            opts[FLAGGED] = ColourSpec(FLAGGED, "categorical", (*names, OTHER))
        for col in rest:
            spec = self._spec_for(col, table[col])
            if spec is not None:
                opts[col] = spec
        return opts

    @staticmethod
    def _spec_for(name: str, column: pd.Series) -> ColourSpec | None:
        if pd.api.types.is_bool_dtype(column):
            return ColourSpec(name, "categorical", ("False", "True"))
        if pd.api.types.is_numeric_dtype(column):
            return ColourSpec(name, "continuous") if column.notna().any() else None
        values = column.dropna().astype(str)
        uniques = values.value_counts()
        if len(uniques) == 0 or len(uniques) > MAX_CATEGORIES * 40:
            return None
        cats = [str(c) for c in uniques.index[:MAX_CATEGORIES]]
        if len(uniques) > MAX_CATEGORIES or column.isna().any():
            cats.append(OTHER)
        return ColourSpec(name, "categorical", tuple(cats))

    def colour_values(self, spec: ColourSpec) -> np.ndarray:
        """The values of ``spec`` per ``frame`` row: float32 (continuous) or category strings (categorical)."""
        if spec.name == LABEL:
            return self.label_column()
        with self._lock:
            cached = self._colour_cache.get(spec.name)
            if cached is not None:
                return cached
            if spec.name == SCORE:
                values = np.asarray(self.scores, dtype=np.float32)
            elif spec.name == FLAGGED:
                values = self._flagged_column(spec.categories)
            elif spec.kind == "count":
                values = np.zeros(len(self.frame), np.float32)
            else:
                column = self.catalog.table[spec.name].iloc[self.rows]
                if spec.kind == "continuous":
                    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32)
                else:
                    text = column.astype(str).where(column.notna(), OTHER).to_numpy(dtype=object)
                    known = pd.Index(spec.categories)
                    values = np.where(known.get_indexer(text) >= 0, text, OTHER).astype(object)
            self._colour_cache[spec.name] = values
            return values

    def _flagged_column(self, categories: tuple[str, ...]) -> np.ndarray:
        """Per map row: the detector that flagged it when its saved score is in the top :data:`FLAGGED_TOP`,
        else :data:`OTHER`."""
        scores = np.asarray(self.scores, dtype=np.float64)
        codes = np.asarray(self.score_reasons, dtype=np.float64)
        out = np.full(len(scores), OTHER, dtype=object)
        finite = np.isfinite(scores) & np.isfinite(codes)
        if finite.any():
            cut = np.quantile(scores[finite], 1.0 - FLAGGED_TOP)
            top = finite & (scores >= cut)
            out[top] = np.asarray(categories[:-1], dtype=object)[codes[top].astype(np.int64)]
        return out

    def label_categories(self) -> tuple[str, ...]:
        """Label classes for the legend: built-ins, then user classes."""
        store = self.labels
        classes = store.classes() if store is not None else ["anomaly", "normal", "artefact"]
        return tuple(classes)

    # ------------------------------------------------------------------ similarity
    def similarity_index(self):
        """The similarity index over the embeddings, made once per process on first use.

        A :attr:`~explorer.data.catalog.Catalog.lean` workspace (millions of objects) searches its memory-mapped
        vectors through the saved FAISS index (``explorer index WS``), or exactly in chunks when none was saved
        (:func:`~explorer.analysis.index_store.load_index`); a smaller one fits an in-memory
        :class:`~explorer.analysis.neighbours.SimilarityIndex` (exact below its FAISS threshold).
        """
        if self.embeddings is None:
            raise ExplorerError(self.notes.get("embeddings", "no embeddings in this workspace"))
        with self._lock:
            if self._similarity is None:
                if self.catalog.lean:
                    from explorer.analysis.index_store import load_index

                    emb_ids = self.embeddings.ids
                    shared = isinstance(emb_ids, LazyIds) and emb_ids.arrow is self.catalog.lazy_ids.arrow
                    self._similarity = load_index(
                        self.ws,
                        space=self.embeddings.space,
                        version=self.embeddings.version,
                        build=False,
                        ids=self.catalog.id_table() if shared else None,
                    )
                else:
                    from explorer.analysis.neighbours import SimilarityIndex

                    self._similarity = SimilarityIndex().fit(
                        np.asarray(self.embeddings.vectors), self.embeddings.ids
                    )
            return self._similarity

    def embedded(self, ids) -> np.ndarray:
        """Whether each of ``ids`` has an embedding vector (boolean array)."""
        ids = np.asarray(ids, dtype=object)
        if self.embeddings is None or not len(ids):
            return np.zeros(len(ids), bool)
        if isinstance(self.embeddings.ids, LazyIds):  # lean: the index's packed ids, binary search
            return self.similarity_index().ids.contains(ids)
        with self._lock:
            if self._embedded_index is None:
                self._embedded_index = pd.Index(self.embeddings.ids)
        return self._embedded_index.get_indexer(ids) >= 0


def current_user() -> str:
    """Who is labelling: the authenticated Panel user when served with auth, else the OS user, else anonymous."""
    try:
        import panel as pn

        user = pn.state.user
        if user:
            return str(user)
    except Exception:  # noqa: BLE001 - outside a server Panel may not know a user
        pass
    try:
        return getpass.getuser() or "anonymous"
    except Exception:  # noqa: BLE001 - no login name (containers)
        return "anonymous"


def _versions_key(ws: Workspace) -> str:
    cur = ws.manifest.get("current", {})
    return "|".join(
        [str(ws.path.resolve()), str(ws.manifest.get("catalog"))]
        + [str(cur.get(k)) for k in ("embeddings", "maps", "scores")]
    )


def load_app_data(ws: Workspace | str | Path) -> AppData:
    """The shared data of a workspace, loaded once per process and versions (cached across sessions)."""
    if not isinstance(ws, Workspace):
        ws = Workspace.open(ws)
    key = "explorer-app-data:" + _versions_key(ws)
    try:
        import panel as pn

        return pn.state.as_cached(key, lambda: _load(ws))  # no kwargs: they would become part of the key
    except ImportError:  # pragma: no cover - panel is a dependency
        return _load(ws)


def _load(ws: Workspace) -> AppData:
    notes: dict[str, str] = {}
    catalog = ws.catalog
    lean = catalog.lean  # millions of objects: ids stay Arrow strings (see Catalog.lean)
    cat_ids = catalog.lazy_ids  # one set of ids that the frame, index and embeddings all share
    emb = None
    try:
        emb = _share_ids(ws.embeddings(space="joint", lazy_ids=lean), catalog)
    except ExplorerError as err:
        notes["embeddings"] = f"Find similar needs embeddings: {err}"
    frame = pd.DataFrame(
        {"id": pd.Series([], dtype=object), "x": np.empty(0, np.float32), "y": np.empty(0, np.float32)}
    )
    rows = np.empty(0, np.int64)
    index, map_version = None, None
    try:
        coords, meta = ws.map()
        map_version = meta.get("version")
        pos = catalog.lookup(coords["id"])  # catalogue row per map row, -1 where unknown
        x = coords["x"].to_numpy(dtype=np.float32)
        y = coords["y"].to_numpy(dtype=np.float32)
        keep = (pos >= 0) & np.isfinite(x) & np.isfinite(y)
        rows = pos[keep] if not keep.all() else pos
        if lean:  # an Arrow-backed id column and a LazyIds over it: no Python string per object
            column = catalog.table["id"]
            if len(rows) == len(column) and bool((rows == np.arange(len(rows))).all()):
                ids, index_ids = column.reset_index(drop=True), cat_ids
            else:
                ids = column.take(rows).reset_index(drop=True)
                index_ids = LazyIds(as_arrow_strings(ids))
        else:
            ids = index_ids = cat_ids[rows]
        frame = pd.DataFrame({"id": ids, "x": x[keep], "y": y[keep]}, copy=False)
        del coords
        from explorer.analysis.selection import PointIndex

        index = PointIndex(frame["x"].to_numpy(), frame["y"].to_numpy(), index_ids, map_version=map_version)
    except ExplorerError as err:
        notes["map"] = f"No map to draw yet: {err}"
    scores, score_version, reasons, reason_names, references = None, None, None, (), {}
    if len(frame):
        try:
            table, meta = ws.scores(columns=("id", "score", "flagged_by"))
            score_version = meta.get("version")
            references = dict(meta.get("references") or {})
            scores = _aligned(table["id"], table["score"].to_numpy(dtype=np.float64), catalog, rows)
            if "flagged_by" in table:
                flagged = table["flagged_by"].astype("category")
                reason_names = tuple(map(str, flagged.cat.categories))
                codes = flagged.cat.codes.to_numpy(dtype=np.float64)
                reasons = _aligned(table["id"], np.where(codes >= 0, codes, np.nan), catalog, rows)
        except ExplorerError as err:
            notes["scores"] = f"No anomaly scores yet: {err}"
    _give_back_freed_memory()
    return AppData(
        ws=ws,
        catalog=catalog,
        frame=frame,
        rows=rows,
        index=index,
        map_version=map_version,
        scores=scores,
        score_version=score_version,
        score_reasons=reasons,
        score_reason_names=reason_names,
        score_references=references,
        embeddings=emb,
        notes=notes,
    )


def _give_back_freed_memory() -> None:
    """Return to the system what loading freed: Arrow's allocator keeps freed Parquet buffers for reuse (at 10M
    objects ~0.3 GB of a server's RSS that nothing uses)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):  # pragma: no cover - old pyarrow
        pass


def _aligned(ids, values: np.ndarray, catalog: Catalog, rows: np.ndarray) -> np.ndarray:
    """``values`` (one per id of ``ids``) re-ordered onto the map's rows (catalogue ``rows``), NaN where missing."""
    per_catalogue = np.full(len(catalog), np.nan)
    pos = catalog.lookup(ids)
    known = pos >= 0
    per_catalogue[pos[known]] = values[known]
    return per_catalogue[rows]


def _share_ids(emb: Embeddings, catalog: Catalog) -> Embeddings:
    """The embeddings with the catalogue's own id strings when they list the same ids in the same order (one set
    of a million Python strings in memory instead of two)."""
    from dataclasses import replace

    if catalog.lean:
        mine = catalog.lazy_ids
        same = isinstance(emb.ids, LazyIds) and emb.ids.arrow.equals(mine.arrow)
        return replace(emb, ids=mine) if same else emb
    cat_ids, ids = catalog.ids, emb.ids
    same = (
        len(ids) == len(cat_ids) > 0
        and ids[0] == cat_ids[0]
        and ids[-1] == cat_ids[-1]
        and np.array_equal(ids, cat_ids)
    )
    return replace(emb, ids=cat_ids) if same else emb
