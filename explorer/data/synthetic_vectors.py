"""An embeddings-only simulation: unit vectors with clusters and rare outliers for every catalogue object, fast.

Embedding 10M simulated objects with the real encoders takes hours on two cores; map placement, scoring, lasso,
find-similar and the app can be measured at 10M without that, on vectors that have the shape of real ones:

- one cluster per ground-truth ``class`` (centre: a seeded random direction), split by ``subclass`` (a smaller
  offset), spread along two seeded in-cluster directions (a continuous property, like size or period) and by
  isotropic noise;
- injected oddities (``is_oddity``) sit in their own small clusters, with three times the noise;
- catalogues without ``class`` get ``n_clusters`` clusters assigned by a hash of the row, with ``outlier_rate``
  lone outliers in random directions.

Vectors are generated in fixed blocks of :data:`BLOCK` rows, each from its own seeded generator, so the result
does not depend on how the work is cut; they are written straight into the embedding file (float16 by default:
its cost is measured in ``benchmarks/RESULTS_scale.md``) and saved as a normal embedding version marked
``synthetic``.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from explorer.errors import DataError, WorkspaceError
from explorer.progress import progress_bar
from explorer.workspace import Workspace, utc_now

log = logging.getLogger(__name__)
BLOCK = 1 << 18


def _direction(seed: int, name: str, dim: int) -> np.ndarray:
    """A seeded unit vector per (seed, name)."""
    h = int.from_bytes(name.encode("utf-8")[:32].ljust(32, b"\0"), "little") % (2**63)
    v = np.random.default_rng([seed, h]).normal(size=dim)
    return v / np.linalg.norm(v)


def synthetic_block(
    block: int,
    offset: int,
    classes: np.ndarray | None,
    subclasses: np.ndarray | None,
    oddity: np.ndarray | None,
    dim: int,
    seed: int,
    n_clusters: int = 20,
    outlier_rate: float = 1e-4,
    noise: float = 0.35,
) -> np.ndarray:
    """Unit vectors ``(m, dim)`` float32 of rows ``offset .. offset + m`` of block ``block``.

    The random numbers of a whole block are drawn from the block's own generator and sliced, so a row's vector
    does not depend on how the catalogue is cut into files or row groups.
    """
    m = len(classes) if classes is not None else len(oddity)
    rng = np.random.default_rng([seed, 7, block])
    rows = slice(offset, offset + m)
    X = rng.standard_normal(size=(BLOCK, dim), dtype=np.float32)[rows] * np.float32(noise / np.sqrt(dim))
    latent = rng.uniform(-1.0, 1.0, size=(BLOCK, 2)).astype(np.float32)[rows]
    extra = rng.standard_normal(size=(BLOCK, dim), dtype=np.float32)[rows]
    lone = rng.uniform(size=BLOCK)[rows] < outlier_rate
    if classes is None:
        labels = (
            np.arange(block * BLOCK + offset, block * BLOCK + offset + m) * 2654435761 % (2**32)
        ) % n_clusters
        classes = np.char.add("cluster", labels.astype(str))
    else:
        lone[:] = False
    for name in np.unique(classes):
        sel = np.flatnonzero(classes == name)
        centre = _direction(seed, f"class:{name}", dim)
        axes = np.stack([_direction(seed, f"axis{j}:{name}", dim) for j in range(2)])
        X[sel] += (centre + 0.45 * latent[sel] @ axes).astype(np.float32)
        if subclasses is not None:
            for sub in np.unique(subclasses[sel]):
                if sub != name:
                    part = sel[subclasses[sel] == sub]
                    X[part] += (0.35 * _direction(seed, f"sub:{name}:{sub}", dim)).astype(np.float32)
    if oddity is not None and oddity.any():
        X[oddity] += np.float32(2.0 * noise / np.sqrt(dim)) * extra[oddity]
    if lone.any():
        X[lone] = extra[lone]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def add_synthetic_embeddings(
    ws: Workspace,
    dim: int = 64,
    seed: int = 0,
    dtype: str = "float16",
    space: str = "joint",
    progress: bool = True,
) -> str:
    """Save synthetic vectors for every catalogue object as a new embedding version (made current).

    Reads the catalogue one Parquet row group at a time (ids, ``class``, ``subclass``, ``is_oddity``) and writes
    the vectors into a memory-mapped ``.npy`` inside the staged product folder; nothing of size ``n × dim``
    is held in memory. Returns the version (e.g. ``emb-0001``).
    """
    if dtype not in ("float16", "float32"):
        raise DataError(f"dtype={dtype!r}; use float16 or float32")
    if dim < 2:
        raise DataError(f"dim={dim}: synthetic vectors need at least 2 dimensions")
    cat_name = ws.manifest.get("catalog")
    if cat_name is None:
        raise WorkspaceError(f"{ws.path}: no catalogue yet; add objects first (`explorer simulate WS --n N`)")
    files = (
        sorted((ws.path / cat_name).glob("*.parquet"))
        if (ws.path / cat_name).is_dir()
        else [ws.path / cat_name]
    )
    n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    t0 = time.perf_counter()
    with ws.change() as (staging, manifest):
        version = ws._next_name("emb-{:04d}", set(manifest["products"]["embeddings"]))
        folder = staging / version
        folder.mkdir()
        out = np.lib.format.open_memmap(
            folder / f"{space}.npy", mode="w+", dtype=np.dtype(dtype), shape=(n, dim)
        )
        writer = pq.ParquetWriter(folder / f"{space}.ids.parquet", pa.schema([("id", pa.large_string())]))
        at = 0
        with progress_bar(
            total=n, desc="synthetic vectors", unit="obj", unit_scale=True, disable=not progress
        ) as bar:
            for ids, classes, subs, odd in _catalog_blocks(files):
                m = len(ids)
                b0 = at // BLOCK
                for b in range(b0, (at + m - 1) // BLOCK + 1):  # fixed blocks, whatever the file layout
                    lo, hi = max(b * BLOCK, at), min((b + 1) * BLOCK, at + m)
                    s = slice(lo - at, hi - at)
                    X = synthetic_block(
                        b,
                        lo - b * BLOCK,
                        None if classes is None else classes[s],
                        None if subs is None else subs[s],
                        None if odd is None else odd[s],
                        dim,
                        seed,
                    )
                    out[lo:hi] = X.astype(dtype)
                writer.write_table(pa.table({"id": ids.cast(pa.large_string())}))
                at += m
                bar.update(m)
        writer.close()
        out.flush()
        del out
        manifest["products"]["embeddings"][version] = {
            "catalog": manifest["catalog"],
            "imported": "synthetic (explorer.data.synthetic_vectors)",
            "synthetic": {"dim": dim, "seed": seed, "dtype": dtype, "block": BLOCK},
            "models": {"synthetic": {"name": "synthetic-clusters"}},
            "spaces": {space: {"n": int(n), "dim": int(dim)}},
            "created": utc_now(),
            "path": f"embeddings/{version}",
        }
        manifest["current"]["embeddings"] = version
        manifest["_moves"].append([version, f"embeddings/{version}"])
    log.info(
        "saved synthetic embeddings %s (%d x %d %s, %.0f s)", version, n, dim, dtype, time.perf_counter() - t0
    )
    return version


def _catalog_blocks(files):
    """Yield ``(ids, class, subclass, is_oddity)`` per row group of the catalogue (Arrow ids, numpy labels)."""
    for f in files:
        pf = pq.ParquetFile(f)
        names = set(pf.schema_arrow.names)
        cols = ["id"] + [c for c in ("class", "subclass", "is_oddity") if c in names]
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=cols)
            label = _labels(t, "class")
            yield (
                t["id"].combine_chunks(),
                label,
                _labels(t, "subclass"),
                t["is_oddity"].to_numpy(zero_copy_only=False).astype(bool) if "is_oddity" in names else None,
            )


def _labels(t: pa.Table, name: str) -> np.ndarray | None:
    if name not in t.column_names:
        return None
    col = t[name].combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return np.asarray(col.fill_null("").to_numpy(zero_copy_only=False), dtype=str)
