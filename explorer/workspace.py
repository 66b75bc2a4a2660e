"""One folder per project: catalogue, modality stores, derived products and a manifest tying their versions together.

Layout::

    WS/manifest.json              what is here, which version is current, what each product was computed from
    WS/catalog-NNNN.parquet       the catalogue (a new file per change; the manifest names the live one)
    WS/images/<set>/              cutouts of one image set (see explorer.data.images)
    WS/lightcurves/part-NNNN.parquet
    WS/embeddings/emb-NNNN/       <space>.npy + <space>.ids.parquet per embedding space (joint, image, lightcurve)
    WS/maps/map-NNNN/coords.parquet
    WS/scores/score-NNNN/scores.parquet
    WS/selections/<name>.json     saved selections (geometry + map version)
    WS/checkpoints/<name>/        model.safetensors + config.json
    WS/labels.sqlite              the label store

Every change is staged in a hidden folder and becomes visible in one step, when the new manifest replaces the
old one (``os.replace`` is atomic), so a failed or interrupted ingest leaves the workspace as it was. Opening a
workspace reads the manifest and nothing else; products load lazily and are never recomputed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explorer import __version__
from explorer.data.catalog import LEAN_IDS_MIN_ROWS, Catalog, lean_id_column
from explorer.data.images import open_image_set
from explorer.data.simulated_lightcurves import open_lightcurves
from explorer.errors import DataError, WorkspaceError

MANIFEST = "manifest.json"
FORMAT = "astro-embedding-explorer workspace"
FORMAT_VERSION = 1
PRODUCT_KINDS = {"embeddings": "emb", "maps": "map", "scores": "score"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def safe_name(name: str, what: str) -> str:
    """Check that ``name`` can be a file name inside the workspace (no separators, no ``..``)."""
    if not _SAFE_NAME.match(name or ""):
        raise DataError(f"{what} name {name!r} is not allowed; use letters, digits, '.', '_' or '-' "
                        "(at most 64, starting with a letter or digit)")
    return name


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Embeddings:
    """Vectors of one embedding space, keyed by id, with the metadata of the version they came from."""

    version: str
    space: str
    ids: np.ndarray
    vectors: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.ids)


class Workspace:
    """A project folder. Use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._catalog: Catalog | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | Path) -> Workspace:
        """Make a new, empty workspace at ``path`` (an empty or absent folder)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if (path / MANIFEST).exists():
                raise WorkspaceError(f"{path}: a workspace exists already; open it instead")
            raise WorkspaceError(f"{path}: folder is not empty and not a workspace; choose a new folder")
        path.mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": utc_now(), "updated": utc_now(),
                    "explorer_version": __version__, "catalog": None, "image_sets": {}, "lightcurve_parts": [],
                    "sources": [], "products": {k: {} for k in PRODUCT_KINDS}, "current": {}}
        _write_json_atomic(path / MANIFEST, manifest)
        return cls(path, manifest)

    @classmethod
    def open(cls, path: str | Path) -> Workspace:
        """Open an existing workspace (reads the manifest only)."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.exists():
            raise WorkspaceError(f"{path}: not a workspace (no {MANIFEST}); create one with "
                                 "`explorer demo`, `explorer simulate` or `explorer ingest`")
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as err:
            raise WorkspaceError(f"{mpath}: unreadable manifest ({err}); the workspace is damaged") from err
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise WorkspaceError(f"{mpath}: not an astro-embedding-explorer manifest")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise WorkspaceError(f"{mpath}: written by a newer explorer (format {manifest['format_version']}); "
                                 "upgrade astro-embedding-explorer")
        return cls(path, manifest)

    @classmethod
    def open_or_create(cls, path: str | Path) -> Workspace:
        """Open the workspace at ``path``, or create one there when it has no manifest yet."""
        path = Path(path)
        return cls.open(path) if (path / MANIFEST).exists() else cls.create(path)

    def reload(self) -> Workspace:
        """Re-read the manifest (another process may have added products)."""
        fresh = Workspace.open(self.path)
        self.manifest, self._catalog = fresh.manifest, None
        return self

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r}, objects={self.manifest.get('n_objects', 0)})"

    # ------------------------------------------------------------------ changing it
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.path / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def change(self) -> Iterator[tuple[Path, dict]]:
        """Stage a change: yields ``(staging folder, manifest copy)``; on success the caller's edits are committed.

        Files written into the staging folder are moved to the paths the caller records in
        ``manifest["_moves"]`` (a list of ``[staged_relative, final_relative]``); then the manifest is replaced
        atomically. On an exception, the staging folder is removed and nothing changes.
        """
        with self._lock():
            current = Workspace.open(self.path).manifest
            staging = self.path / f".staging-{uuid.uuid4().hex[:12]}"
            staging.mkdir()
            manifest = json.loads(json.dumps(current))
            manifest["_moves"] = []
            try:
                yield staging, manifest
                for staged, final in manifest.pop("_moves"):
                    target = self.path / final
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.exists():
                        raise WorkspaceError(f"{target}: exists already; refusing to overwrite")
                    os.replace(staging / staged, target)
                manifest["updated"] = utc_now()
                manifest["explorer_version"] = __version__
                _write_json_atomic(self.path / MANIFEST, manifest)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        self.manifest, self._catalog = manifest, None

    def _next_name(self, pattern: str, taken: set[str] | list[str]) -> str:
        i = 1
        while pattern.format(i) in taken or (self.path / pattern.format(i)).exists():
            i += 1
        return pattern.format(i)

    # ------------------------------------------------------------------ catalogue
    @property
    def catalog(self) -> Catalog:
        """The catalogue with its image sets and light curves (loaded once, lazily)."""
        if self._catalog is None:
            name = self.manifest.get("catalog")
            if name is None:
                table = pd.DataFrame({"id": pd.Series([], dtype=object)})
            else:
                try:
                    table = pd.read_parquet(self.path / name)
                except (OSError, ValueError) as err:
                    raise WorkspaceError(f"{self.path / name}: catalogue unreadable ({err})") from err
                table["id"] = (
                    lean_id_column(table["id"]) if len(table) >= LEAN_IDS_MIN_ROWS else table["id"].astype(object)
                )
            images = {n: open_image_set(self.path / rel) for n, rel in self.manifest["image_sets"].items()}
            lcs = open_lightcurves(self.path, self.manifest.get("lightcurve_parts", []),
                                   self.manifest.get("lightcurve_sets"))
            self._catalog = Catalog(table=table, images=images, lightcurves=lcs)
        return self._catalog

    # ------------------------------------------------------------------ derived products
    def versions(self, kind: str) -> dict[str, dict]:
        """Metadata of every saved version of a product kind (``embeddings``, ``maps``, ``scores``)."""
        return self.manifest["products"].get(kind, {})

    def current(self, kind: str) -> str | None:
        """The version of ``kind`` the app and commands use by default."""
        return self.manifest["current"].get(kind)

    def _resolve(self, kind: str, version: str | None) -> tuple[str, dict]:
        version = version or self.current(kind)
        if version is None:
            hints = {"embeddings": "explorer embed WS", "maps": "explorer map WS", "scores": "explorer score WS"}
            raise WorkspaceError(f"{self.path}: no {kind} yet; run `{hints.get(kind, kind)}` first")
        meta = self.versions(kind).get(version)
        if meta is None:
            raise WorkspaceError(f"{self.path}: no {kind} version {version!r}; "
                                 f"have {sorted(self.versions(kind)) or 'none'}")
        return version, meta

    def save_product(self, kind: str, tables: dict[str, pd.DataFrame] | None = None,
                     arrays: dict[str, np.ndarray] | None = None, meta: dict | None = None,
                     make_current: bool = True) -> str:
        """Save a new version of a derived product and return its name (e.g. ``map-0003``).

        ``tables`` are written as Parquet, ``arrays`` as ``.npy``, both inside the version's folder;
        ``meta`` (what it was computed from, parameters) goes into the manifest.
        """
        prefix = PRODUCT_KINDS[kind]
        with self.change() as (staging, manifest):
            version = self._next_name(prefix + "-{:04d}", set(manifest["products"][kind]))
            folder = staging / version
            folder.mkdir()
            for name, df in (tables or {}).items():
                df.to_parquet(folder / f"{name}.parquet", index=False)
            for name, arr in (arrays or {}).items():
                np.save(folder / f"{name}.npy", arr)
            manifest["products"][kind][version] = {**(meta or {}), "created": utc_now(),
                                                   "path": f"{kind}/{version}"}
            if make_current:
                manifest["current"][kind] = version
            manifest["_moves"].append([version, f"{kind}/{version}"])
        return version

    def set_current(self, kind: str, version: str) -> None:
        """Make ``version`` the one used by default."""
        with self.change() as (_, manifest):
            if version not in manifest["products"][kind]:
                raise WorkspaceError(f"no {kind} version {version!r}")
            manifest["current"][kind] = version

    def product_path(self, kind: str, version: str | None = None) -> tuple[Path, dict]:
        """Folder and metadata of a saved product version (the current one by default)."""
        version, meta = self._resolve(kind, version)
        return self.path / meta["path"], {**meta, "version": version}

    def save_embeddings(self, spaces: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict,
                        make_current: bool = True) -> str:
        """Save vectors per embedding space: ``{"joint": (ids, X), "image": (ids, X), ...}``."""
        tables, arrays = {}, {}
        for space, (ids, vectors) in spaces.items():
            space = safe_name(space, "embedding space")
            vectors = np.asarray(vectors)
            if vectors.ndim != 2 or len(ids) != len(vectors):
                raise DataError(f"embedding space {space!r}: {len(ids)} ids for vectors of shape {vectors.shape}")
            bad = ~np.isfinite(vectors).all(axis=1)
            if bad.any():
                raise DataError(f"embedding space {space!r}: {int(bad.sum())} vectors contain NaN/inf "
                                f"(first: {np.asarray(ids)[bad][:5].tolist()}); fix their input data")
            tables[f"{space}.ids"] = pd.DataFrame({"id": pd.array(list(ids), dtype="string")})
            arrays[space] = vectors
        meta = {**meta, "spaces": {s: {"n": len(v[0]), "dim": int(np.asarray(v[1]).shape[1])}
                                   for s, v in spaces.items()}}
        return self.save_product("embeddings", tables, arrays, meta, make_current)

    def embeddings(self, version: str | None = None, space: str = "joint", mmap: bool = True,
                   lazy_ids: bool = False) -> Embeddings:
        """Vectors of one space of an embedding version (the current one by default), memory-mapped.

        ``lazy_ids=True`` keeps the ids as one Arrow array (:class:`~explorer.analysis.id_table.LazyIds`: indexable
        by rows, no Python string per object) -- what a server over millions of objects wants.
        """
        folder, meta = self.product_path("embeddings", version)
        if space not in meta.get("spaces", {}):
            raise WorkspaceError(f"embeddings {meta['version']} have no space {space!r}; "
                                 f"have {sorted(meta.get('spaces', {}))}")
        try:
            if lazy_ids:
                import pyarrow.parquet as pq

                from explorer.analysis.id_table import LazyIds

                ids = LazyIds(pq.read_table(folder / f"{space}.ids.parquet", columns=["id"])["id"])
            else:
                ids = pd.read_parquet(folder / f"{space}.ids.parquet")["id"].to_numpy(dtype=object)
            vectors = np.load(folder / f"{space}.npy", mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as err:
            raise WorkspaceError(f"{folder / space}.npy: embeddings unreadable ({err}); re-run "
                                 "`explorer embed` to make a new version") from err
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise WorkspaceError(f"{folder / space}.npy: {vectors.shape} vectors for {len(ids)} ids; re-run "
                                 "`explorer embed`")
        return Embeddings(meta["version"], space, ids, vectors, meta)

    def map(self, version: str | None = None) -> tuple[pd.DataFrame, dict]:
        """Map coordinates (``id, x, y``) of a map version and its metadata."""
        folder, meta = self.product_path("maps", version)
        return pd.read_parquet(folder / "coords.parquet"), meta

    def scores(self, version: str | None = None, columns: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict]:
        """Anomaly scores (``id, score``, then one column per detector and ``flagged_by`` when several were
        combined; higher = more anomalous) and their metadata. ``columns``: read only those of them the version
        has (a server over millions of objects needs ``id, score``, not every detector's raw score)."""
        folder, meta = self.product_path("scores", version)
        path = folder / "scores.parquet"
        if columns is not None:
            import pyarrow.parquet as pq

            have = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in have]
        return pd.read_parquet(path, columns=columns), meta

    # ------------------------------------------------------------------ other stores
    @property
    def labels_path(self) -> Path:
        """Path of the label store's SQLite file (it may not exist yet)."""
        return self.path / "labels.sqlite"

    def labels(self):
        """The workspace's label store (created on first use)."""
        from explorer.labels import LabelStore

        return LabelStore(self.labels_path)

    def checkpoint_dir(self, name: str) -> Path:
        """Folder for a named model checkpoint inside the workspace."""
        return self.path / "checkpoints" / safe_name(name, "checkpoint")

    def selection_path(self, name: str) -> Path:
        """Path of saved selection ``name`` (may not exist); :class:`DataError` for an unsafe ``name``."""
        return self.path / "selections" / f"{safe_name(name, 'selection')}.json"

    def inside(self, relative: str | Path) -> Path:
        """``relative`` resolved inside the workspace; :class:`DataError` if it would escape it."""
        root = self.path.resolve()
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise DataError(f"path {str(relative)!r} leaves the workspace {root}; use a path inside it")
        return target
