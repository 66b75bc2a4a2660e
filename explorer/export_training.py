"""Training-set export: labelled cutouts as a Galaxy Zoo ``galaxy-datasets`` folder, a NumPy ``.npz`` or HDF5 file.

Every format is a folder, written all or nothing (into a hidden temporary folder beside it, then renamed):

``galaxy-datasets``
    ``catalog.csv`` and ``catalog.parquet`` with ``id_str``, ``file_loc`` (path relative to the folder),
    ``label`` (class name, empty if unlabelled), ``label_int`` (index into the sorted class names, -1 if
    unlabelled), ``ra``, ``dec``, ``class``; one image per object under ``images/`` — PNG (8-bit, asinh stretch;
    1 band grey, 3 or more bands RGB from the first three) or FITS (float32, as stored). This is the layout
    Zoobot's fine-tuning reads, and ``explorer ingest WS --catalog FOLDER/catalog.csv`` reads it back.
``npz``
    ``training.npz`` with ``images`` (float32 ``(N, bands, H, W)``), ``ids``, ``labels``, ``label_int``,
    ``label_names`` (unicode arrays: ``np.load`` needs no pickle).
``hdf5``
    ``training.h5`` with the same datasets (strings as UTF-8), the provenance in the file's attributes.

Each folder also holds ``provenance.json`` (versions, export time, criteria, class names).
Objects without a cutout are left out with a warning; with no criteria, every labelled object is exported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.errors import DataError
from explorer.export import current_labels, export_table, provenance, resolve_subset
from explorer.export_formats import WRITE_ERRNOS, write_error
from explorer.progress import progress_bar
from explorer.workspace import Workspace

TRAINING_FORMATS = {
    "galaxy-datasets": "folder with catalog.csv/.parquet (id_str, file_loc, label) and one image per object",
    "npz": "NumPy training.npz: images, ids, labels, label_int, label_names",
    "hdf5": "HDF5 training.h5: images, ids, labels, label_int, label_names",
}
IMAGE_FORMATS = ("png", "fits")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
CHUNK = 256


def asinh_stretch(
    cutout: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5, softening: float = 0.1
) -> np.ndarray:
    """An 8-bit image of one cutout ``(bands, H, W)``: ``(H, W)`` grey, or ``(H, W, 3)`` RGB from the first 3 bands.

    Values are scaled between the ``lo_pct`` and ``hi_pct`` percentiles of all finite pixels (one scale for
    all bands, so colours keep their ratios), then stretched by ``asinh(x / a) / asinh(1 / a)`` (Lupton et al.
    2004). NaN pixels become 0.
    """
    img = np.asarray(cutout, dtype=np.float64)
    img = img[:3] if img.shape[0] >= 3 else img[:1]
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros(img.shape[1:] if img.shape[0] == 1 else (*img.shape[1:], 3), dtype=np.uint8)
    lo, hi = np.percentile(img[finite], [lo_pct, hi_pct])
    if not hi > lo:
        hi = lo + 1.0
    x = np.clip((np.where(finite, img, lo) - lo) / (hi - lo), 0.0, 1.0)
    y = np.arcsinh(x / softening) / np.arcsinh(1.0 / softening)
    out = np.round(y * 255).astype(np.uint8)
    return out[0] if out.shape[0] == 1 else np.moveaxis(out, 0, -1)


def _file_name(row: int, object_id: str, ext: str) -> str:
    slug = _SLUG.sub("_", object_id).strip("._")[:40] or "object"
    return f"{row:06d}_{slug}{ext}"


def _target_folder(out: Path, overwrite: bool) -> None:
    parent = out.parent
    if not parent.is_dir():
        raise DataError(
            f"{out}: folder {parent} does not exist; create it first or choose another output path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{out}: folder {parent} is not writable; choose another output path")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; a training set is a folder, choose a new folder name")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(
            f"{out}: folder exists and is not empty; pass --overwrite (overwrite=True) to replace it"
        )


def _commit_folder(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_training_set(
    ws: Workspace | str | Path,
    out: str | Path,
    fmt: str = "galaxy-datasets",
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    selection: str | None = None,
    all: bool = False,
    image_format: str = "png",
    overwrite: bool = False,
    query: str | None = None,
    progress: bool = True,
) -> Path:
    """Write a training set of the chosen objects' cutouts and labels to the folder ``out``.

    Parameters
    ----------
    fmt : str
        ``galaxy-datasets``, ``npz`` or ``hdf5`` (see the module docstring).
    ids, labels, selection, all
        Which objects (:func:`explorer.export.resolve_subset`); with none, every labelled object.
    image_format : str
        ``png`` or ``fits``, for ``galaxy-datasets``.
    overwrite : bool
        Replace a non-empty folder ``out``.

    Returns
    -------
    Path
        The folder. Nothing is left behind if anything fails.
    """
    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    out = Path(out)
    if fmt not in TRAINING_FORMATS:
        raise DataError(f"no training-set format {fmt!r}; available: {', '.join(TRAINING_FORMATS)}")
    if image_format not in IMAGE_FORMATS:
        raise DataError(f"no training image format {image_format!r}; available: {', '.join(IMAGE_FORMATS)}")
    _target_folder(out, overwrite)
    if ids is None and not labels and selection is None and not all:
        current, _, _ = current_labels(ws)
        labelled = set(current["id"].astype(str))
        chosen = [str(i) for i in ws.catalog.ids if i in labelled]
        auto_query = "every labelled object"
    else:
        chosen, auto_query = resolve_subset(ws, ids=ids, labels=labels, selection=selection, all=all)
    table, versions = export_table(ws, chosen, with_cutouts=True)
    missing = table["cutout_index"] < 0
    if missing.any():
        warnings.warn(
            f"{int(missing.sum())} of {len(table)} objects have no cutout and are left out of the "
            f"training set (first: {table.loc[missing, 'id'].iloc[0]!r})",
            stacklevel=2,
        )
        table = table[~missing].reset_index(drop=True)
    if table.empty:
        raise DataError(f"no object with a cutout matches ({auto_query}); a training set needs images")
    names = sorted({str(v) for v in table["label"].dropna()})
    code = {name: i for i, name in enumerate(names)}
    table["label_int"] = [code.get(v, -1) if isinstance(v, str) else -1 for v in table["label"]]
    prov = {**provenance(ws, query or auto_query, len(table), versions), "format": fmt, "label_names": names}

    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.mkdir()
        if fmt == "galaxy-datasets":
            _write_galaxy_datasets(ws, table, tmp, image_format, progress)
        else:
            _write_arrays(ws, table, tmp, fmt, names, prov)
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=2, ensure_ascii=False), encoding="utf-8")
        _commit_folder(tmp, out)
    except OSError as err:
        if err.errno in WRITE_ERRNOS:
            raise write_error(out, err) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_galaxy_datasets(
    ws: Workspace, table: pd.DataFrame, folder: Path, image_format: str, progress: bool
) -> None:
    from astropy.io import fits
    from PIL import Image

    (folder / "images").mkdir()
    ext = ".png" if image_format == "png" else ".fits"
    files = [f"images/{_file_name(i, oid, ext)}" for i, oid in enumerate(table["id"])]
    ids = table["id"].astype(str).tolist()
    with progress_bar(
        range(0, len(ids), CHUNK),
        desc="training images",
        unit="chunk",
        disable=not progress or len(ids) <= CHUNK,
    ) as bar:
        for start in bar:
            for k, cutout in enumerate(_cutouts(ws, table.iloc[start : start + CHUNK])):
                path = folder / files[start + k]
                if image_format == "png":
                    Image.fromarray(asinh_stretch(cutout)).save(path)
                else:
                    data = cutout[0] if cutout.shape[0] == 1 else cutout
                    fits.PrimaryHDU(np.asarray(data, dtype=np.float32)).writeto(path)
    catalog = pd.DataFrame(
        {
            "id_str": ids,
            "file_loc": files,
            "label": table["label"].fillna("").astype(str),
            "label_int": table["label_int"].astype(np.int64),
            "ra": table["ra"],
            "dec": table["dec"],
            "class": table["class"],
        }
    )
    catalog.to_csv(folder / "catalog.csv", index=False, encoding="utf-8")
    catalog.to_parquet(folder / "catalog.parquet", index=False)


def _cutouts(ws: Workspace, rows: pd.DataFrame) -> list[np.ndarray]:
    """Cutouts of ``rows`` (export-table rows with cutouts) in row order, read per image set."""
    out: list[np.ndarray | None] = [None] * len(rows)
    positions = np.arange(len(rows))
    for name in dict.fromkeys(rows["image_set"]):
        where = positions[(rows["image_set"] == name).to_numpy()]
        block = ws.catalog.images[name].get(rows["id"].iloc[where].astype(str).tolist())
        for k, pos in enumerate(where):
            out[pos] = block[k]
    return out


def _write_arrays(
    ws: Workspace, table: pd.DataFrame, folder: Path, fmt: str, names: list[str], prov: dict
) -> None:
    shapes = {tuple(ws.catalog.images[s].shape) for s in table["image_set"].unique()}
    if len(shapes) > 1:
        raise DataError(
            f"the chosen objects have cutouts of different shapes {sorted(shapes)}; one {fmt} file "
            "holds one shape: export one image set at a time (e.g. with --selection)"
        )
    shape = shapes.pop()
    ids = np.array(table["id"].astype(str).tolist(), dtype=str)
    labels = np.array(table["label"].fillna("").astype(str).tolist(), dtype=str)
    label_int = table["label_int"].to_numpy(np.int64)
    label_names = np.array(names, dtype=str) if names else np.array([], dtype="U1")
    if fmt == "npz":
        images = np.empty((len(table), *shape), dtype=np.float32)
        for start in range(0, len(table), CHUNK):
            images[start : start + CHUNK] = np.stack(_cutouts(ws, table.iloc[start : start + CHUNK]))
        with open(folder / "training.npz", "wb") as fh:
            np.savez(fh, images=images, ids=ids, labels=labels, label_int=label_int, label_names=label_names)
        return
    import h5py

    text = h5py.string_dtype("utf-8")
    with h5py.File(folder / "training.h5", "w") as h5:
        images = h5.create_dataset(
            "images", shape=(len(table), *shape), dtype=np.float32, chunks=(min(len(table), 64), *shape)
        )
        for start in range(0, len(table), CHUNK):
            images[start : start + CHUNK] = np.stack(_cutouts(ws, table.iloc[start : start + CHUNK]))
        h5.create_dataset("ids", data=ids.tolist(), dtype=text)
        h5.create_dataset("labels", data=labels.tolist(), dtype=text)
        h5.create_dataset("label_int", data=label_int)
        h5.create_dataset("label_names", data=label_names.tolist(), dtype=text)
        for key, value in prov.items():
            h5.attrs[key] = json.dumps(value) if not isinstance(value, str) else value


__all__ = ["IMAGE_FORMATS", "TRAINING_FORMATS", "asinh_stretch", "export_training_set"]
