"""Bring objects into a workspace: check a catalogue against its cutouts and light curves, then commit all at once."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data import formats
from explorer.data.catalog import normalise_catalog
from explorer.data.images import ImageStoreWriter
from explorer.data.lightcurves import LightCurveStore
from explorer.data.readers_images import ImageInput, read_files_by_catalog
from explorer.errors import DataError
from explorer.progress import progress_bar
from explorer.workspace import Workspace, safe_name

FILE_COLUMNS = ("file_loc", "file", "filename", "image_file", "path")
CHUNK = 1024


def add_objects(ws: Workspace, table: pd.DataFrame, *, source: str, images: ImageInput | None = None,
                lightcurves: pd.DataFrame | None = None, image_set: str | None = None, skip_bad: bool = False,
                provenance: dict | None = None, progress: bool = True) -> dict:
    """Add catalogue rows with their cutouts and/or light curves to ``ws`` in one atomic change.

    Parameters
    ----------
    table : DataFrame
        Normalised catalogue rows (``id`` first; see :func:`explorer.data.catalog.normalise_catalog`).
    source : str
        Where they came from (a name recorded in the manifest and in the ``source`` column).
    images : ImageInput or OnDemandImages, optional
        Cutouts whose ``ids`` are all in ``table`` (pixels to store, or parameters to render them from).
    lightcurves : DataFrame, optional
        Long-form light curves whose ids are all in ``table``.
    skip_bad : bool
        Drop objects with unusable data (all-NaN cutout, no data at all, data with no catalogue row) with a
        warning, instead of failing.

    Returns
    -------
    dict
        What was added: counts per modality and the names of the new image set / light-curve part.
    """
    table = table.copy()
    existing = ws.catalog
    clash = existing.contains(table["id"])
    if clash.any():
        raise DataError(f"{source}: object {table['id'][clash].iloc[0]!r} is already in the workspace "
                        f"({int(clash.sum())} ids clash); give the new objects other ids")
    ids = pd.Index(table["id"])
    on_demand = images is not None and hasattr(images, "write_set")
    image_rows = _match_ids(images, table, source, skip_bad) if images is not None and not on_demand else None
    lc = lightcurves
    if lc is not None:
        stray = ~lc["id"].isin(ids)
        if stray.any():
            msg = (f"{source}: light curve of {lc['id'][stray].iloc[0]!r} has no catalogue row "
                   f"({lc['id'][stray].nunique()} objects)")
            _refuse_or_skip(msg, "add the rows to the catalogue or pass --skip-bad", skip_bad, stacklevel=2)
            lc = lc[~stray]
    lc_ids = pd.Index(lc["id"].unique()) if lc is not None else pd.Index([])

    with ws.change() as (staging, manifest):
        added = {"source": source, "image": 0, "lightcurve": 0}
        if image_rows is not None and len(image_rows):
            name = image_set or source
            name = safe_name(_unique(name, manifest["image_sets"]), "image set")
            good = _write_images(staging / "imgset", images, image_rows, name, provenance, skip_bad, progress)
            image_ids = np.asarray(images.ids, dtype=object)[image_rows[good]]
            if len(image_ids):
                manifest["image_sets"][name] = f"images/{name}"
                manifest["_moves"].append(["imgset", f"images/{name}"])
                table.loc[table["id"].isin(image_ids), "image_set"] = name
                added["image"], added["image_set"] = len(image_ids), name
        if on_demand:
            name = safe_name(_unique(image_set or source, manifest["image_sets"]), "image set")
            images.write_set(staging / "imgset", name)
            manifest["image_sets"][name] = f"images/{name}"
            manifest["_moves"].append(["imgset", f"images/{name}"])
            table.loc[table["id"].isin(images.ids), "image_set"] = name
            added["image"], added["image_set"] = len(images.ids), name
        if "image_set" not in table:
            table["image_set"] = pd.Series([None] * len(table), dtype=object)
        table["has_lightcurve"] = table["id"].isin(lc_ids)
        if len(lc_ids):
            part = ws._next_name("lightcurves/part-{:04d}.parquet", manifest["lightcurve_parts"])
            LightCurveStore.write_part(staging / "lc.parquet", lc.reset_index(drop=True), provenance)
            manifest["_moves"] += [["lc.parquet", part], ["lc.json", part.replace(".parquet", ".json")]]
            manifest["lightcurve_parts"].append(part)
            added["lightcurve"], added["lightcurve_part"] = len(lc_ids), part
        empty = table["image_set"].isna() & ~table["has_lightcurve"]
        if empty.any() and (images is not None or lightcurves is not None):
            msg = f"{source}: object {table['id'][empty].iloc[0]!r} has neither a cutout nor a light curve ({int(empty.sum())} objects)"
            _refuse_or_skip(msg, "remove those rows, supply their data, or pass --skip-bad", skip_bad, stacklevel=2)
            table = table[~empty]
        if "source" not in table:
            table["source"] = source
        merged = pd.concat([existing.table, table], ignore_index=True) if len(existing) else table
        merged = _harmonise(merged)
        cat_name = ws._next_name("catalog-{:04d}.parquet", [manifest.get("catalog") or ""])
        merged.to_parquet(staging / "catalog.parquet", index=False)
        manifest["_moves"].append(["catalog.parquet", cat_name])
        manifest["_old_catalog"] = manifest.get("catalog")
        manifest["catalog"] = cat_name
        manifest["n_objects"] = len(merged)
        added["objects"] = len(table)
        manifest["sources"].append({**added, "provenance": provenance or {}})
        old = manifest.pop("_old_catalog")
    if old and (ws.path / old).exists():
        (ws.path / old).unlink()
    return added


def _unique(name: str, taken) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name}-{i}" in taken:
        i += 1
    return f"{name}-{i}"


def _harmonise(table: pd.DataFrame) -> pd.DataFrame:
    """Make mixed-type object columns storable in Parquet (e.g. a column that is numbers in one source)."""
    for col in table.columns:
        if table[col].dtype == object and col not in ("id", "image_set"):
            kinds = {type(v) for v in table[col].dropna()}
            if len(kinds) > 1:
                table[col] = table[col].map(lambda v: v if pd.isna(v) else str(v))
    table["has_lightcurve"] = table["has_lightcurve"].fillna(False).astype(bool)
    return table


def _match_ids(images: ImageInput, table: pd.DataFrame, source: str, skip_bad: bool) -> np.ndarray:
    if images.ids is None:
        if images.n != len(table):
            raise DataError(f"{images.source}: {images.n} cutouts but {len(table)} catalogue rows and no ids "
                            "stored with the cutouts; add an id table to the file or make the counts match")
        images.ids = table["id"].tolist()
    img_ids = np.asarray(images.ids, dtype=object)
    dup = pd.Index(img_ids).duplicated()
    if dup.any():
        raise DataError(f"{images.source}: two cutouts for object {img_ids[dup][0]!r}; ids must be unique")
    known = pd.Index(img_ids).isin(table["id"])
    if not known.all():
        msg = (f"{images.source}: cutout {img_ids[~known][0]!r} has no catalogue row ({int((~known).sum())} "
               "cutouts)")
        _refuse_or_skip(msg, "add them to the catalogue, check --id-column, or pass --skip-bad", skip_bad, stacklevel=3)
    return np.flatnonzero(known)


def _refuse_or_skip(msg: str, fix: str, skip_bad: bool, stacklevel: int) -> None:
    """The ``--skip-bad`` rule: raise ``msg; fix`` as a :class:`DataError`, or with ``skip_bad`` warn ``msg; skipped``
    (``stacklevel`` counted from the caller, as ``warnings.warn`` counts it)."""
    if not skip_bad:
        raise DataError(f"{msg}; {fix}")
    warnings.warn(msg + "; skipped", stacklevel=stacklevel + 1)


def _write_images(folder: Path, images: ImageInput, rows: np.ndarray, name: str, provenance, skip_bad: bool,
                  progress: bool) -> np.ndarray:
    """Stream the cutouts at ``rows`` into a new image set; returns which of ``rows`` are usable.

    An all-NaN cutout is an error, or with ``skip_bad`` stays in the file but its object gets no image.
    """
    ids = np.asarray(images.ids, dtype=object)
    keep = np.ones(len(rows), dtype=bool)
    writer = ImageStoreWriter(folder, name, ids[rows], images.shape, images.bands, provenance)
    chunks = range(0, len(rows), CHUNK)
    quiet = not progress or len(rows) <= CHUNK
    with progress_bar(chunks, desc=f"cutouts ({name})", unit="chunk", disable=quiet) as bar:
        for a in bar:
            sel = rows[a : a + CHUNK]
            lo, hi = int(sel.min()), int(sel.max()) + 1
            block = images.read(lo, hi)[sel - lo]
            if block.shape[1:] != tuple(images.shape):
                raise DataError(f"{images.source}: cutouts of shape {block.shape[1:]} and {images.shape}; "
                                "one image set holds one shape")
            nan_only = np.isnan(block).all(axis=(1, 2, 3))
            if nan_only.any():
                msg = (f"{images.source}: cutout of {ids[sel][nan_only][0]!r} has no finite pixel (all NaN/inf) "
                       f"({int(nan_only.sum())} in this chunk)")
                _refuse_or_skip(msg, "remove the object or pass --skip-bad", skip_bad, stacklevel=3)
                keep[a : a + CHUNK] = ~nan_only
            writer.write(slice(a, a + len(sel)), block)
    writer.close()
    return keep


def ingest_files(ws: Workspace, catalog: str | Path, *, images: str | Path | None = None,
                 image_format: str | None = None, lightcurves: str | Path | None = None,
                 lightcurve_format: str | None = None, id_column: str | None = None,
                 catalog_format: str | None = None, image_set: str | None = None, skip_bad: bool = False,
                 progress: bool = True) -> dict:
    """Read a catalogue and its cutouts and/or light curves from files and add them to ``ws``.

    With a catalogue that names a file per object (``file_loc`` as in Galaxy Zoo's ``galaxy-datasets``, or
    ``file``/``filename``) and no ``images``, the cutouts are read from those files.
    """
    catalog = Path(catalog)
    raw = formats.read("catalog", catalog, catalog_format)
    table = normalise_catalog(raw, str(catalog), id_column)
    image_input = None
    if images is not None:
        fmt = image_format or formats.identify("images", _probe_path(images))
        image_input = formats.read("images", images, fmt)
    else:
        file_col = next((c for c in FILE_COLUMNS if c in table.columns), None)
        if file_col is not None:
            paths = [p if Path(p).is_absolute() else str(catalog.parent / p) for p in table[file_col].astype(str)]
            image_input = read_files_by_catalog(paths, table["id"].tolist())
    lc = None
    if lightcurves is not None:
        lc = formats.read("lightcurves", lightcurves, lightcurve_format)
    if image_input is None and lc is None:
        raise DataError(f"{catalog}: no cutouts or light curves given; pass --images and/or --lightcurves "
                        "(or a catalogue with a file_loc column)")
    provenance = {"catalog": str(catalog), "images": str(images) if images else None,
                  "lightcurves": str(lightcurves) if lightcurves else None}
    return add_objects(ws, table, source=image_set or name_from(Path(catalog).stem), images=image_input, lightcurves=lc,
                       image_set=image_set, skip_bad=skip_bad, provenance=provenance, progress=progress)


def name_from(stem: str) -> str:
    """A safe image-set / source name made from a file name: other characters become ``_``."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:64] or "images"
    return name if name[0].isalnum() else f"x{name}"[:64]


def _probe_path(images: str | Path) -> Path:
    """A representative file for format identification (first match of a glob or folder)."""
    from explorer.data.readers_images import FITS_ENDINGS, PNG_ENDINGS, expand_files

    p = Path(images)
    if p.is_file():
        return p
    return expand_files(images, FITS_ENDINGS + PNG_ENDINGS + (".h5", ".hdf5"))[0]
