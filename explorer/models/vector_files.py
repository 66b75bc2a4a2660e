"""Read precomputed embedding vectors keyed by object id (bring your own embeddings, no model needed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.errors import DataError


def read_vectors(path: Path, id_column: str = "id") -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` from a table (Parquet/CSV/FITS: an id column plus ``emb_*`` or all numeric columns),
    an ``.npz`` (arrays ``ids`` and ``vectors``) or HDF5 (datasets ``ids`` and ``vectors``/``embeddings``)."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if "ids" not in z or "vectors" not in z:
                    raise DataError(f"{path}: an .npz of vectors needs arrays 'ids' and 'vectors' (has {list(z)})")
                ids, X = z["ids"].astype(str), z["vectors"]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise DataError(f"{path}: unreadable .npz ({err}); save ids as a string array (not objects) with "
                            "numpy.savez(path, ids=ids.astype(str), vectors=X)") from err
    elif suffix in (".h5", ".hdf5"):
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise DataError(f"{path}: not a readable HDF5 file ({err})") from err
        with f:
            key = next((k for k in ("vectors", "embeddings", "X") if k in f), None)
            if key is None or "ids" not in f:
                raise DataError(f"{path}: HDF5 vectors need datasets 'ids' and 'vectors' (has {list(f)})")
            ids = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in f["ids"][()]])
            X = f[key][()]
    else:
        from explorer.data import formats

        df = formats.read("catalog", path)
        if id_column not in df.columns:
            raise DataError(f"{path}: no id column {id_column!r}; pass --id-column")
        cols = [c for c in df.columns if str(c).startswith("emb_")]
        if not cols:
            cols = [c for c in df.columns if c != id_column and pd.api.types.is_numeric_dtype(df[c])]
        ids, X = df[id_column].astype(str).to_numpy(), df[cols].to_numpy()
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) != len(ids) or X.shape[1] == 0:
        raise DataError(f"{path}: expected one vector per id; got {len(ids)} ids and an array of shape {X.shape}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} vectors contain NaN/inf (first: {ids[bad][:3].tolist()})")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate ids among the vectors")
    return np.asarray(ids, dtype=object), X
