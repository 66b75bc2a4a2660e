"""Table writers registered per export format (CSV, Parquet, FITS, VOTable, ECSV) and all-or-nothing file output.

A writer is registered with :func:`register_writer` under a format name with the file endings that identify it,
astropy-style. :func:`get_writer` lists the formats that exist when asked for one that does not, and
:class:`AtomicOutputs` writes every file of an export to a temporary name in the target folder first, then
moves them into place with ``os.replace``, refusing to overwrite unless told: a failed export leaves nothing
half-written behind.

What each format holds (see :class:`ExportBundle`):

======== ========================================== =========================== ===========================
format   provenance                                 cutouts                     light curves
======== ========================================== =========================== ===========================
fits     header cards of the PRIMARY and OBJECTS    in the file: one CUTOUTS    in the file: a LIGHTCURVES
         HDUs (short keywords + COMMENT)            cube per image set          BinTable HDU
votable  INFO elements of the RESOURCE              sibling ``_cutouts.fits``   sibling ``_lightcurves.vot``
ecsv     table meta (YAML header), key provenance   sibling ``_cutouts.fits``   sibling ``_lightcurves.ecsv``
parquet  key-value metadata ``explorer.provenance`` sibling ``_cutouts.fits``   sibling ``_lightcurves.parquet``
csv      sibling ``_provenance.json``               sibling ``_cutouts.fits``   sibling ``_lightcurves.csv``
======== ========================================== =========================== ===========================

Cutouts in FITS: for each image set ``k`` (1, 2, ...) an image HDU ``EXTNAME='CUTOUTS', EXTVER=k`` holding a
float32 cube of shape ``(n, bands, H, W)`` (header ``IMAGESET`` and ``BANDS``), followed by a BinTable
``EXTNAME='CUTOUT_IDS', EXTVER=k`` with the ``id`` of each plane. The object table's ``image_set`` and
``cutout_index`` columns point from a row to its plane (``cutout_index`` is -1 for an object without a cutout).
One cube per image set, rather than one HDU per object, because FITS extension names are ASCII and at most 68
characters while object ids are any unicode string up to 256, and because thousands of HDUs are slow to open.

Strings in FITS tables are UTF-8 bytes (FITS itself only promises ASCII; astropy reads them as bytes, so decode
with ``utf-8``). FITS has no null string, so a missing label is the empty string there.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.errors import DataError

#: Units, UCDs and descriptions of the columns an export writes (others are catalogue columns as they came).
COLUMN_INFO: dict[str, tuple[str | None, str | None, str]] = {
    "id": (None, "meta.id;meta.main", "object id (unique within the workspace)"),
    "ra": ("deg", "pos.eq.ra;meta.main", "right ascension (ICRS)"),
    "dec": ("deg", "pos.eq.dec;meta.main", "declination (ICRS)"),
    "label": (
        None,
        "meta.code.class",
        "current label (anomaly, normal, artefact or a user class); empty if none",
    ),
    "label_user": (None, "meta.id.PI", "who gave the current label"),
    "labelled_at": (None, "time.creation", "when the current label was given (UTC, ISO 8601)"),
    "anomaly_score": (None, "stat.value", "anomaly score (higher = more anomalous); NaN if not scored"),
    "map_x": (None, "pos.cartesian.x", "x on the 2-D embedding map; NaN if not mapped"),
    "map_y": (None, "pos.cartesian.y", "y on the 2-D embedding map; NaN if not mapped"),
    "class": (None, "src.class", "class given in the input catalogue"),
    "source": (None, "meta.dataset", "which ingest or simulation the object came from"),
    "has_lightcurve": (None, "meta.code", "whether the object has a light curve"),
    "image_set": (
        None,
        "meta.dataset",
        "image set holding the object's cutout (the CUTOUTS HDU with IMAGESET)",
    ),
    "cutout_index": (None, "meta.number", "plane of the object's cutout in its CUTOUTS cube; -1 if none"),
    "time": ("d", "time.epoch", "time of the observation (as in the input; usually MJD)"),
    "mag": ("mag", "phot.mag", "magnitude"),
    "flux": (None, "phot.flux", "flux"),
    "err": (None, "stat.error", "uncertainty of mag or flux"),
    "band": (None, "instr.bandpass", "band / filter"),
}


def column_info(name: str) -> tuple[str | None, str | None, str | None]:
    """``(unit, ucd, description)`` of an export column (``None`` where unknown)."""
    if name.startswith("emb_") and name[4:].isdigit():
        return None, "stat.value", f"component {name[4:]} of the joint embedding vector; NaN if not embedded"
    return COLUMN_INFO.get(name, (None, None, None))


@dataclass
class CutoutBlock:
    """The cutouts of one image set that an export writes, read chunk by chunk from the workspace.

    Attributes
    ----------
    image_set : str
        Name of the image set.
    bands : tuple of str
        Band names, one per plane of a cutout.
    shape : tuple of int
        ``(bands, H, W)`` of every cutout.
    ids : list of str
        Objects in cube order.
    read : callable
        ``read(ids) -> float32 array (len(ids), bands, H, W)``.
    """

    image_set: str
    bands: tuple[str, ...]
    shape: tuple[int, int, int]
    ids: list[str]
    read: Callable[[Sequence[str]], np.ndarray]


@dataclass
class ExportBundle:
    """Everything a writer needs: the object table, its provenance, and optional cutouts and light curves."""

    table: pd.DataFrame
    provenance: dict[str, str]
    cutouts: list[CutoutBlock] | None = None
    lightcurves: pd.DataFrame | None = None


@dataclass(frozen=True)
class TableWriter:
    """A registered export format.

    ``holds_cutouts`` / ``holds_lightcurves``: the file itself can carry them (else they go to sibling files);
    ``embeds_provenance``: the file carries its provenance (else a sibling ``_provenance.json`` does).
    """

    name: str
    func: Callable[[ExportBundle, Path], None]
    extensions: tuple[str, ...]
    media_type: str
    description: str
    holds_cutouts: bool = False
    holds_lightcurves: bool = False
    embeds_provenance: bool = True


_WRITERS: dict[str, TableWriter] = {}


def register_writer(
    name: str,
    *,
    extensions: tuple[str, ...],
    media_type: str,
    description: str = "",
    holds_cutouts: bool = False,
    holds_lightcurves: bool = False,
    embeds_provenance: bool = True,
):
    """Decorator registering ``func(bundle, path)`` as the writer of format ``name``."""

    def decorate(func):
        _WRITERS[name] = TableWriter(
            name,
            func,
            tuple(e.lower() for e in extensions),
            media_type,
            description or (func.__doc__ or "").strip().splitlines()[0],
            holds_cutouts,
            holds_lightcurves,
            embeds_provenance,
        )
        return func

    return decorate


def writers() -> dict[str, str]:
    """Registered export format names with a one-line description each."""
    return {name: w.description for name, w in sorted(_WRITERS.items())}


def get_writer(name: str) -> TableWriter:
    """The writer of format ``name``; :class:`DataError` listing the formats that exist if there is none."""
    key = str(name).lower().strip()
    if key in _WRITERS:
        return _WRITERS[key]
    for writer in _WRITERS.values():  # "vot", "fit", ".parquet"... are accepted as aliases of their format
        if "." + key.lstrip(".") in writer.extensions:
            return writer
    raise DataError(f"no export format {name!r}; available: {', '.join(sorted(_WRITERS))}")


def identify_writer(path: Path) -> TableWriter:
    """The writer whose file ending ``path`` has; :class:`DataError` listing formats if none matches."""
    lower = Path(path).name.lower()
    for writer in _WRITERS.values():
        if any(lower.endswith(ext) for ext in writer.extensions):
            return writer
    raise DataError(
        f"{path}: cannot tell the export format from the name; pass --format, one of: "
        f"{', '.join(sorted(_WRITERS))}"
    )


# ---------------------------------------------------------------------------------------------- atomic output
class AtomicOutputs:
    """Write several files all or nothing: each to a hidden temporary name beside it, then ``os.replace``.

    Use as a context manager; ask :meth:`temp` for the temporary path of each target. On leaving without an
    exception every temporary file replaces its target (the first target, the main file, last); on an
    exception every temporary file is removed and no target is touched.

    Parameters
    ----------
    targets : sequence of Path
        Final paths; the first is the main file.
    overwrite : bool
        Replace targets that exist; otherwise an existing target is a :class:`DataError`.
    """

    def __init__(self, targets: Sequence[Path], overwrite: bool = False):
        self.targets = [Path(t) for t in targets]
        self.overwrite = overwrite
        self._temps: dict[Path, Path] = {}

    def check(self) -> None:
        """Raise :class:`DataError` unless every target can be written (folder exists, writable, no clash)."""
        for target in self.targets:
            check_writable(target, self.overwrite)

    def temp(self, target: Path) -> Path:
        """The hidden temporary path beside ``target`` to write it to (the same path on every call)."""
        target = Path(target)
        if target not in self._temps:
            self._temps[target] = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        return self._temps[target]

    def __enter__(self) -> AtomicOutputs:
        self.check()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
            if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
                raise write_error(self.targets[0], exc) from exc
            return
        try:
            for target in [*self.targets[1:], self.targets[0]]:
                tmp = self._temps.get(target)
                if tmp is not None and tmp.exists():
                    os.replace(tmp, target)
        finally:
            self.discard()

    def discard(self) -> None:
        """Delete the temporary files that still exist; no target is touched."""
        for tmp in self._temps.values():
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


#: ``errno`` values of a write the user can fix by choosing another place (permissions, read-only, full disk).
WRITE_ERRNOS = frozenset((errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT))


def write_error(target: Path, err: OSError) -> DataError:
    """The :class:`DataError` for a write to ``target`` that the system refused."""
    return DataError(
        f"{target}: cannot write ({err.strerror or err}); choose another output path or free some space"
    )


def check_writable(target: Path, overwrite: bool) -> None:
    """Raise :class:`DataError` if ``target`` cannot be (re)written: missing or unwritable folder, or a clash."""
    target = Path(target)
    folder = target.parent
    if not folder.exists():
        raise DataError(
            f"{target}: folder {folder} does not exist; create it first or choose another output path"
        )
    if not folder.is_dir():
        raise DataError(f"{target}: {folder} is not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{target}: folder {folder} is not writable; choose another output path")
    if target.is_dir():
        raise DataError(f"{target}: is a folder; give a file name for the export")
    if target.exists() and not overwrite:
        raise DataError(f"{target}: exists already; pass --overwrite (overwrite=True) to replace it")


def write_json_atomic(path: Path, data: dict, overwrite: bool = False) -> None:
    """Write ``data`` as JSON to ``path`` all or nothing."""
    with AtomicOutputs([path], overwrite) as out:
        with open(out.temp(path), "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.flush()
            os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------- conversions
def _is_text(col: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(col)
        or pd.api.types.is_bool_dtype(col)
        or pd.api.types.is_datetime64_any_dtype(col)
    )


def text_values(col: pd.Series) -> tuple[list[str], np.ndarray]:
    """A column as plain ``str`` values (``""`` where missing) and its missing mask."""
    mask = col.isna().to_numpy(dtype=bool)
    values = [
        "" if m else (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        for v, m in zip(col.tolist(), mask, strict=True)
    ]
    return values, mask


def to_astropy(df: pd.DataFrame, *, utf8_bytes: bool = False, masked_text: bool = True):
    """An astropy ``Table`` of ``df`` with units, UCDs (``meta['ucd']``) and descriptions on known columns.

    Text columns become unicode (or UTF-8 bytes with ``utf8_bytes``, for FITS) with missing values masked
    (``masked_text``) or empty; pandas' nullable integers and booleans become masked columns; datetimes
    become ISO 8601 strings.
    """
    from astropy.table import Column, MaskedColumn, Table

    table = Table()
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            col = col.map(lambda t: t.isoformat() if pd.notna(t) else None).astype(object)
        if _is_text(col):
            values, mask = text_values(col)
            if utf8_bytes:
                encoded = [v.encode("utf-8") for v in values]
                data = np.array(encoded, dtype=f"S{max([1, *map(len, encoded)])}")
            else:
                data = np.array(values, dtype=f"U{max([1, *map(len, values)])}")
            column = MaskedColumn(data, mask=mask) if masked_text and mask.any() else Column(data)
        elif isinstance(col.dtype, pd.api.extensions.ExtensionDtype) and col.isna().any():
            kind = (
                np.bool_
                if pd.api.types.is_bool_dtype(col)
                else (np.float64 if pd.api.types.is_float_dtype(col) else np.int64)
            )
            mask = col.isna().to_numpy(dtype=bool)
            fill = False if kind is np.bool_ else (np.nan if kind is np.float64 else 0)
            column = MaskedColumn(col.to_numpy(dtype=kind, na_value=fill), mask=mask)
        else:
            column = Column(
                col.to_numpy(dtype=col.dtype.numpy_dtype if hasattr(col.dtype, "numpy_dtype") else None)
            )
        unit, ucd, description = column_info(str(name))
        if unit:
            column.unit = unit
        if ucd:
            column.meta["ucd"] = ucd
        if description:
            column.description = description
        table[str(name)] = column
    return table


# ---------------------------------------------------------------------------------------------- writers
@register_writer(
    "csv",
    extensions=(".csv",),
    media_type="text/csv",
    embeds_provenance=False,
    description="comma-separated values (provenance in a sibling _provenance.json)",
)
def write_csv(bundle: ExportBundle, path: Path) -> None:
    """Comma-separated values, UTF-8, header row; readable by ``pandas.read_csv`` as it is."""
    bundle.table.to_csv(path, index=False, encoding="utf-8")


@register_writer(
    "parquet",
    extensions=(".parquet", ".pq"),
    media_type="application/vnd.apache.parquet",
    description="Apache Parquet (provenance in the key-value metadata)",
)
def write_parquet(bundle: ExportBundle, path: Path) -> None:
    """Apache Parquet with provenance under the key ``explorer.provenance`` and units/UCDs per field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(bundle.table, preserve_index=False)
    fields = []
    for fld in table.schema:
        unit, ucd, description = column_info(fld.name)
        meta = {k: v for k, v in (("unit", unit), ("ucd", ucd), ("description", description)) if v}
        fields.append(fld.with_metadata({k.encode(): v.encode() for k, v in meta.items()}) if meta else fld)
    schema = pa.schema(
        fields,
        metadata={
            **(table.schema.metadata or {}),
            b"explorer.provenance": json.dumps(bundle.provenance).encode(),
        },
    )
    pq.write_table(table.cast(schema), path)


@register_writer(
    "ecsv",
    extensions=(".ecsv",),
    media_type="text/x-ecsv",
    description="astropy Enhanced CSV (units and provenance in the YAML header)",
)
def write_ecsv(bundle: ExportBundle, path: Path) -> None:
    """astropy's Enhanced CSV: units, UCDs and provenance (meta key ``provenance``) in its YAML header."""
    table = to_astropy(bundle.table)
    table.meta["provenance"] = dict(bundle.provenance)
    table.write(path, format="ascii.ecsv")


@register_writer(
    "votable",
    extensions=(".vot", ".votable", ".xml"),
    media_type="application/x-votable+xml",
    description="IVOA VOTable (units, UCDs; provenance as INFO elements)",
)
def write_votable(bundle: ExportBundle, path: Path) -> None:
    """IVOA VOTable 1.4 (TABLEDATA) with units and UCDs on the FIELDs and one INFO per provenance key."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W-numbered VOTable spec warnings about column names
        vot = from_table(to_astropy(bundle.table))
    resource = vot.resources[0]
    for key, value in bundle.provenance.items():
        resource.infos.append(Info(name=key, value=str(value)))
    resource.tables[0].description = "objects exported by astro-embedding-explorer"
    vot.to_xml(str(path))


# ---------------------------------------------------------------------------------------------- FITS
_FITS_KEYS = {
    "tool": ("ORIGIN", "software that wrote this file"),
    "tool_version": ("EXPLVERS", "astro-embedding-explorer version"),
    "workspace": ("WORKSPC", "workspace the objects came from"),
    "embeddings_version": ("EMBVERS", "embedding (model) version of the workspace"),
    "model": ("MODEL", "model that produced the embeddings"),
    "map_version": ("MAPVERS", "map version of map_x, map_y"),
    "map_method": ("MAPMETH", "projection method of the map"),
    "scores_version": ("SCOREVER", "anomaly score version of anomaly_score"),
    "labels_event": ("LABELEVT", "last label event included"),
    "exported_at": ("DATE", "export time (UTC)"),
    "query": ("QUERY", "selection criteria of the export"),
    "n_rows": ("NOBJECTS", "number of objects"),
}


def _ascii(text: str) -> str:
    return str(text).encode("ascii", "backslashreplace").decode("ascii")


def provenance_cards(header, provenance: dict[str, str]) -> None:
    """Add the provenance to a FITS header: short keywords (long values continue) and COMMENT lines."""
    header["COMMENT"] = "Exported by astro-embedding-explorer; provenance keywords:"
    for key, value in provenance.items():
        keyword, comment = _FITS_KEYS.get(key, (None, None))
        if keyword is None:
            keyword = "HIERARCH EXPLORER " + key.upper()
            comment = ""
        value = _ascii(value)
        header[keyword] = (value, comment) if len(value) + len(comment) < 45 else value
        header["COMMENT"] = _ascii(f"{key} = {value}")[:72]


def _table_hdu(df: pd.DataFrame, name: str, provenance: dict[str, str]):
    from astropy.io import fits

    table = to_astropy(df, utf8_bytes=True, masked_text=False)
    hdu = fits.table_to_hdu(table)
    hdu.name = name
    for i, col in enumerate(table.colnames, start=1):
        unit, ucd, description = column_info(col)
        if ucd:
            hdu.header[f"TUCD{i}"] = (ucd, "UCD of this column")
        if description:
            hdu.header[f"TCOMM{i}"] = _ascii(description)
    provenance_cards(hdu.header, provenance)
    return hdu


def _primary_hdu(provenance: dict[str, str]):
    from astropy.io import fits

    hdu = fits.PrimaryHDU()
    provenance_cards(hdu.header, provenance)
    return hdu


def append_cutout_hdus(path: Path, blocks: Iterable[CutoutBlock], chunk: int = 256) -> None:
    """Append a CUTOUTS cube and a CUTOUT_IDS table per image set to the FITS file ``path``, chunk by chunk."""
    from astropy.io import fits
    from astropy.table import Table

    for k, block in enumerate(blocks, start=1):
        b, h, w = block.shape
        header = fits.Header()
        header["XTENSION"] = "IMAGE"
        header["BITPIX"] = -32
        header["NAXIS"] = 4
        for i, n in enumerate((w, h, b, len(block.ids)), start=1):
            header[f"NAXIS{i}"] = n
        header["PCOUNT"] = 0
        header["GCOUNT"] = 1
        header["EXTNAME"] = "CUTOUTS"
        header["EXTVER"] = k
        header["IMAGESET"] = (_ascii(block.image_set), "image set of these cutouts")
        header["BANDS"] = (_ascii(",".join(block.bands)), "band of each plane of a cutout")
        header["COMMENT"] = "cube (object, band, y, x); object i is row i of CUTOUT_IDS with the same EXTVER"
        stream = fits.StreamingHDU(str(path), header)
        try:
            for start in range(0, len(block.ids), chunk):
                data = np.asarray(block.read(block.ids[start : start + chunk]), dtype=">f4")
                stream.write(data)
        finally:
            stream.close()
        ids = Table({"id": np.array([i.encode("utf-8") for i in block.ids])})
        hdu = fits.table_to_hdu(ids)
        hdu.name = "CUTOUT_IDS"
        hdu.header["EXTVER"] = k
        hdu.header["IMAGESET"] = _ascii(block.image_set)
        fits.append(str(path), hdu.data, hdu.header)


@register_writer(
    "fits",
    extensions=(".fits", ".fit", ".fts"),
    media_type="application/fits",
    holds_cutouts=True,
    holds_lightcurves=True,
    description="FITS binary table (+ LIGHTCURVES table and CUTOUTS cubes in the same file)",
)
def write_fits(bundle: ExportBundle, path: Path) -> None:
    """FITS: PRIMARY (provenance), OBJECTS table, then LIGHTCURVES and CUTOUTS/CUTOUT_IDS HDUs if asked."""
    from astropy.io import fits

    hdus = [_primary_hdu(bundle.provenance), _table_hdu(bundle.table, "OBJECTS", bundle.provenance)]
    if bundle.lightcurves is not None:
        hdus.append(_table_hdu(bundle.lightcurves, "LIGHTCURVES", bundle.provenance))
    fits.HDUList(hdus).writeto(str(path))
    if bundle.cutouts:
        append_cutout_hdus(path, bundle.cutouts)


def write_cutouts_fits(blocks: list[CutoutBlock], provenance: dict[str, str], path: Path) -> None:
    """The sibling cutout file of a non-FITS export: PRIMARY (provenance), then CUTOUTS/CUTOUT_IDS per set."""
    _primary_hdu(provenance).writeto(str(path))
    append_cutout_hdus(path, blocks)


__all__ = [
    "AtomicOutputs",
    "COLUMN_INFO",
    "CutoutBlock",
    "ExportBundle",
    "TableWriter",
    "check_writable",
    "column_info",
    "get_writer",
    "identify_writer",
    "register_writer",
    "to_astropy",
    "write_cutouts_fits",
    "write_json_atomic",
    "writers",
]
