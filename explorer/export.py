"""Export a labelled subset of a workspace: pick the objects, assemble their table, write it with its provenance.

The exported table has one row per object with these columns, in this order (the names are a contract):

``id, ra, dec`` (degrees, ICRS; NaN if unknown), ``label, label_user, labelled_at`` (current label, who, when;
missing if unlabelled), ``anomaly_score`` (current scores; NaN if not scored), ``map_x, map_y`` (current map;
NaN if not mapped), ``class, source``, the other catalogue columns, ``has_lightcurve``; with cutouts also
``image_set, cutout_index``; with embeddings ``emb_0 ... emb_{d-1}`` (current joint embedding; NaN where an
object has no vector). A catalogue column whose name clashes with one of these is renamed ``catalog_<name>``.
The catalogue's ``image_set`` column is left out unless cutouts are exported (it then says where each cutout is).

Formats, siblings and provenance: see :mod:`explorer.export_formats`. Training sets:
:mod:`explorer.export_training`. SAMP: :mod:`explorer.samp`.

Examples
--------
>>> export_subset(ws, "anomalies.fits", "fits", labels=["anomaly"], with_cutouts=True)  # doctest: +SKIP
PosixPath('anomalies.fits')
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer import __version__
from explorer.errors import DataError, WorkspaceError
from explorer.export_formats import (
    AtomicOutputs,
    CutoutBlock,
    ExportBundle,
    column_info,
    get_writer,
    identify_writer,
    write_cutouts_fits,
)
from explorer.workspace import Workspace, utc_now

LEADING_COLUMNS = (
    "id",
    "ra",
    "dec",
    "label",
    "label_user",
    "labelled_at",
    "anomaly_score",
    "map_x",
    "map_y",
    "class",
    "source",
)
GENERATED_COLUMNS = frozenset(
    ("label", "label_user", "labelled_at", "anomaly_score", "map_x", "map_y", "cutout_index")
)
LIGHTCURVE_COLUMNS = ("id", "time", "mag", "err", "band")
_MODEL_KEYS = ("model", "checkpoint", "encoder", "model_version")


# ---------------------------------------------------------------------------------------------- which objects
def current_labels(ws: Workspace) -> tuple[pd.DataFrame, list[str], int]:
    """Current labels (``id, label, user, time``), every known class, and the last label event id.

    A workspace that never had a label has no label database; it is not created by reading.
    """
    from explorer.labels import BUILTIN_LABELS

    if not ws.labels_path.exists():
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in ("id", "label", "user", "time")})
        return empty, list(BUILTIN_LABELS), 0
    with ws.labels() as store:
        return store.current(), store.classes(), store.last_event_id()


def _labelled_ids(ws: Workspace, labels: Sequence[str]) -> set[str]:
    from explorer.labels import normalise_label

    current, classes, _ = current_labels(ws)
    wanted = []
    for name in labels:
        norm = normalise_label(name)
        if norm not in classes:
            raise DataError(f"unknown label {name!r}; labels in this workspace: {', '.join(classes)}")
        wanted.append(norm)
    return set(current.loc[current["label"].isin(wanted), "id"].astype(str))


def saved_selections(ws: Workspace) -> list[str]:
    """Names of the selections saved in the workspace."""
    folder = ws.path / "selections"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def load_selection(ws: Workspace, name: str) -> tuple[list[str], dict]:
    """Ids of a saved selection and the saved record.

    A record with an ``ids`` list is taken as it is; otherwise its ``geometry`` (a
    :class:`explorer.analysis.selection.Selection` dict) is resolved on the map version it was drawn on.
    """
    path = ws.selection_path(name)
    if not path.exists():
        have = saved_selections(ws)
        raise DataError(
            f"no saved selection {name!r} in {ws.path}; saved: {', '.join(have) if have else 'none'}"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable selection ({err}); save the selection again") from err
    if isinstance(record.get("ids"), list):
        return [str(i) for i in record["ids"]], record
    geometry = record.get("geometry") or (record if "kind" in record else None)
    if not isinstance(geometry, dict):
        raise DataError(f"{path}: selection has neither ids nor a geometry; save the selection again")
    return _resolve_geometry(
        ws, name, geometry, record.get("map_version") or geometry.get("map_version")
    ), record


def _resolve_geometry(ws: Workspace, name: str, geometry: dict, version: str | None) -> list[str]:
    from explorer.analysis.selection import PointIndex, Selection

    selection = Selection.from_dict(geometry)
    if version is not None and version not in ws.versions("maps"):
        raise DataError(
            f"selection {name!r} was drawn on map {version!r}, which this workspace no longer has; "
            "redraw it on the current map"
        )
    try:
        coords, meta = ws.map(version)
    except WorkspaceError as err:
        raise DataError(f"selection {name!r} needs a map to resolve its geometry: {err}") from err
    finite = np.isfinite(coords["x"].to_numpy(float)) & np.isfinite(coords["y"].to_numpy(float))
    coords = coords[finite]
    index = PointIndex(
        coords["x"].to_numpy(),
        coords["y"].to_numpy(),
        coords["id"].to_numpy(dtype=object),
        map_version=meta["version"],
    )
    return [str(i) for i in selection.resolve(index)]


def resolve_subset(
    ws: Workspace,
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    selection: str | None = None,
    all: bool = False,
) -> tuple[list[str], str]:
    """The ids to export and a one-line description of the criteria.

    Different kinds of criteria intersect (``labels`` *and* ``selection`` *and* ``ids``); several labels are a
    union. Rows come in catalogue order, except with ``ids`` alone, which keep the order given. Unknown labels,
    selections or ids are a :class:`DataError`; so is no criterion at all.
    """
    catalog = ws.catalog
    ids = [ids] if isinstance(ids, str) else ids  # one id or one label given as a plain string
    labels = [labels] if isinstance(labels, str) else labels
    given = [c for c in (ids is not None, bool(labels), selection is not None) if c]
    if all and given:
        raise DataError(
            "--all exports every object; leave out --label, --selection and --ids (or drop --all)"
        )
    if not all and not given:
        raise DataError("choose what to export: --label L, --selection NAME, --ids ID ... or --all")
    if all:
        return [str(i) for i in catalog.ids], "all objects"
    parts: list[str] = []
    keep: set[str] | None = None
    if labels:
        keep = _labelled_ids(ws, labels)
        parts.append(f"label in [{', '.join(map(str, labels))}]")
    if selection is not None:
        sel_ids, record = load_selection(ws, selection)
        known = catalog.contains(sel_ids)
        if not known.all():
            warnings.warn(
                f"selection {selection!r}: {int((~known).sum())} ids are no longer in the catalogue "
                f"(first: {np.asarray(sel_ids, dtype=object)[~known][0]!r}); left out",
                stacklevel=3,
            )
        chosen = {i for i, k in zip(sel_ids, known, strict=True) if k}
        keep = chosen if keep is None else keep & chosen
        mv = record.get("map_version")
        parts.append(f"selection {selection!r}" + (f" (map {mv})" if mv else ""))
    if ids is not None:
        wanted = list(dict.fromkeys(str(i) for i in ids))
        catalog.rows_of(wanted)  # DataError naming the first unknown id
        parts.append(f"{len(wanted)} ids given")
        if keep is None:
            return wanted, "; ".join(parts)
        keep &= set(wanted)
    ordered = [str(i) for i in catalog.ids if i in keep]
    return ordered, "; ".join(parts)


# ---------------------------------------------------------------------------------------------- the table
def _product(ws: Workspace, kind: str):
    if ws.current(kind) is None:
        return None, None
    return getattr(ws, {"maps": "map", "scores": "scores"}[kind])()


def _by_id(frame: pd.DataFrame, ids: list[str], column: str) -> np.ndarray:
    frame = frame.drop_duplicates("id", keep="last")
    series = pd.Series(
        frame[column].to_numpy(), index=pd.Index(frame["id"].astype(str).to_numpy(dtype=object))
    )
    return series.reindex(pd.Index(ids, dtype=object)).to_numpy()


def _text_or_na(values: np.ndarray) -> pd.Series:
    return pd.Series([None if pd.isna(v) else str(v) for v in values], dtype=object)


def _iso(values: np.ndarray) -> pd.Series:
    return pd.Series([None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in values], dtype=object)


def export_table(
    ws: Workspace, ids: Sequence[str], *, embeddings: bool = False, with_cutouts: bool = False
) -> tuple[pd.DataFrame, dict]:
    """The export table of ``ids`` (see the module docstring) and the versions it was built from."""
    ids = [str(i) for i in ids]
    catalog = ws.catalog
    rows = catalog.rows(ids)
    n = len(ids)
    nan = np.full(n, np.nan)
    versions: dict = {}
    cols: dict[str, object] = {"id": pd.Series(ids, dtype=object)}
    for name in ("ra", "dec"):
        cols[name] = rows[name].to_numpy(np.float64) if name in rows else nan.copy()
    current, _, versions["labels_event"] = current_labels(ws)
    cols["label"] = _text_or_na(_by_id(current, ids, "label"))
    cols["label_user"] = _text_or_na(_by_id(current, ids, "user"))
    cols["labelled_at"] = _iso(_by_id(current, ids, "time"))
    scores, meta = _product(ws, "scores")
    cols["anomaly_score"] = nan.copy() if scores is None else _by_id(scores, ids, "score").astype(np.float64)
    versions["scores"] = meta
    coords, meta = _product(ws, "maps")
    cols["map_x"] = nan.copy() if coords is None else _by_id(coords, ids, "x").astype(np.float64)
    cols["map_y"] = nan.copy() if coords is None else _by_id(coords, ids, "y").astype(np.float64)
    versions["maps"] = meta
    cols["class"] = (
        rows["class"].reset_index(drop=True) if "class" in rows else pd.Series([None] * n, dtype=object)
    )
    cols["source"] = (
        rows["source"].reset_index(drop=True) if "source" in rows else pd.Series([None] * n, dtype=object)
    )
    skip = {"id", "ra", "dec", "class", "source", "image_set", "has_lightcurve"}
    for name in rows.columns:
        if name in skip:
            continue
        out_name = name
        if name in GENERATED_COLUMNS or str(name).startswith("emb_"):
            out_name = f"catalog_{name}"
            warnings.warn(
                f"catalogue column {name!r} clashes with an export column; written as {out_name!r}",
                stacklevel=2,
            )
        cols[out_name] = rows[name].reset_index(drop=True)
    cols["has_lightcurve"] = (
        rows["has_lightcurve"].fillna(False).astype(bool).to_numpy()
        if "has_lightcurve" in rows
        else np.zeros(n, dtype=bool)
    )
    if with_cutouts:
        image_set, index = _cutout_columns(rows)
        cols["image_set"], cols["cutout_index"] = image_set, index
    table = pd.DataFrame(cols)
    if embeddings:
        emb = ws.embeddings(space="joint")
        versions["embeddings"] = emb.meta
        table = pd.concat([table, _embedding_columns(emb, ids)], axis=1)
    return table, versions


def _cutout_columns(rows: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    sets = rows["image_set"] if "image_set" in rows else pd.Series([None] * len(rows))
    sets = pd.Series([s if isinstance(s, str) else None for s in sets], dtype=object)
    index = np.full(len(rows), -1, dtype=np.int64)
    for name in dict.fromkeys(s for s in sets if s is not None):
        where = np.flatnonzero((sets == name).to_numpy())
        index[where] = np.arange(len(where))
    return sets, index


def _embedding_columns(emb, ids: list[str]) -> pd.DataFrame:
    dim = int(emb.vectors.shape[1])
    rows = pd.Index(np.asarray(emb.ids, dtype=object)).get_indexer(pd.Index(ids, dtype=object))
    out = np.full((len(ids), dim), np.nan, dtype=np.float32)
    have = rows >= 0
    if have.any():
        out[have] = np.asarray(emb.vectors[rows[have]], dtype=np.float32)
    return pd.DataFrame(out, columns=[f"emb_{i}" for i in range(dim)])


def cutout_blocks(ws: Workspace, table: pd.DataFrame) -> list[CutoutBlock]:
    """One :class:`CutoutBlock` per image set among the rows of an export table with cutout columns."""
    blocks = []
    for name in dict.fromkeys(s for s in table["image_set"] if isinstance(s, str)):
        source = ws.catalog.images[name]
        ids = table.loc[table["image_set"] == name, "id"].astype(str).tolist()
        blocks.append(CutoutBlock(name, tuple(source.bands), tuple(source.shape), ids, source.get))
    return blocks


def lightcurve_table(ws: Workspace, table: pd.DataFrame) -> pd.DataFrame:
    """Long-form light curves (``id, time, mag|flux, err, band``) of the rows of an export table."""
    store = ws.catalog.lightcurves
    ids = table.loc[table["has_lightcurve"], "id"].astype(str).tolist()
    if store is None or not ids:
        warnings.warn(
            f"none of the {len(table)} exported objects has a light curve; the light-curve table is empty",
            stacklevel=3,
        )
        return pd.DataFrame(
            {
                c: pd.Series([], dtype=object if c in ("id", "band") else np.float64)
                for c in LIGHTCURVE_COLUMNS
            }
        )
    lc = store.get_many(ids)
    lc["id"] = lc["id"].astype(str).astype(object)
    return lc.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- provenance
def model_description(meta: dict) -> str:
    """The encoder(s) an embedding version was made with, as one line for a file's provenance.

    The pipeline records ``meta["models"]``: one entry per embedding job (``image:<set>``, ``lightcurve``)
    with the checkpoint's ``name`` and ``weights_sha256``. Each becomes ``<job>=<name>`` with the first 12 hex
    digits of its weights hash, joined by ``"; "``, e.g. ``"image:sim=image_encoder_simulated (sha256
    0123456789ab); lightcurve=lightcurve_encoder"``. Older or hand-made metadata with a single ``model``
    (``checkpoint``, ``encoder``, ``model_version``) key is read too; ``"none"`` if nothing says.
    """
    models = meta.get("models")
    if isinstance(models, dict) and models:
        parts = []
        for job, entry in models.items():
            if isinstance(entry, dict):
                checkpoint = entry.get("checkpoint")
                name = entry.get("name") or (Path(str(checkpoint)).name if checkpoint else job)
                sha = entry.get("weights_sha256")
                parts.append(f"{job}={name}" + (f" (sha256 {str(sha)[:12]})" if sha else ""))
            else:
                parts.append(f"{job}={entry}")
        return "; ".join(parts)
    return next((str(meta[k]) for k in _MODEL_KEYS if meta.get(k)), "none")


def provenance(ws: Workspace, query: str, n_rows: int, versions: dict) -> dict[str, str]:
    """What an export came from: tool, workspace, embedding/model, map and score versions, time, criteria.

    Every value is a string; a product the workspace does not have is ``"none"``.
    """
    emb_version = ws.current("embeddings")
    emb_meta = versions.get("embeddings") or (
        ws.versions("embeddings").get(emb_version, {}) if emb_version else {}
    )
    model = model_description(emb_meta)
    map_meta = versions.get("maps") or {}
    score_meta = versions.get("scores") or {}
    return {
        "tool": "astro-embedding-explorer",
        "tool_version": __version__,
        "workspace": str(Path(ws.path).resolve()),
        "embeddings_version": str(emb_version or "none"),
        "model": model,
        "map_version": str(map_meta.get("version") or "none"),
        "map_method": str(map_meta.get("method") or "none"),
        "scores_version": str(score_meta.get("version") or "none"),
        "labels_event": str(versions.get("labels_event", 0)),
        "exported_at": utc_now(),
        "query": query,
        "n_rows": str(n_rows),
    }


# ---------------------------------------------------------------------------------------------- public API
def sibling(out: Path, suffix: str) -> Path:
    """``<out without its ending><suffix>`` beside ``out`` (e.g. ``sel.csv`` -> ``sel_cutouts.fits``)."""
    out = Path(out)
    base = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(base + suffix)


def export_subset(
    ws: Workspace | str | Path,
    out: str | Path,
    fmt: str | None = None,
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    selection: str | None = None,
    all: bool = False,
    with_cutouts: bool = False,
    with_lightcurves: bool = False,
    embeddings: bool = False,
    overwrite: bool = False,
    query: str | None = None,
) -> Path:
    """Write the chosen objects of ``ws`` to ``out`` in format ``fmt`` (guessed from the ending if ``None``).

    Parameters
    ----------
    ws : Workspace or path
    out : path
        The main output file. Siblings beside it, where the format cannot hold them: ``<out>_cutouts.fits``,
        ``<out>_lightcurves.<ext>``, and for CSV ``<out>_provenance.json``.
    fmt : str, optional
        ``csv``, ``parquet``, ``fits``, ``votable`` or ``ecsv`` (see :func:`explorer.export_formats.writers`).
    ids, labels, selection, all
        Which objects; see :func:`resolve_subset`.
    with_cutouts, with_lightcurves, embeddings : bool
        Also write cutouts, light curves, and the joint embedding as ``emb_<i>`` columns.
    overwrite : bool
        Replace existing output files (otherwise an existing file is a :class:`DataError`).
    query : str, optional
        Description of the criteria recorded in the provenance instead of the one built from the arguments
        (e.g. ``"lasso on map-0003"`` from the app).

    Returns
    -------
    Path
        The main output file. Nothing is written if anything fails.
    """
    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    out = Path(out)
    writer = get_writer(fmt) if fmt else identify_writer(out)
    if out.suffix and not any(out.name.lower().endswith(e) for e in writer.extensions):
        warnings.warn(
            f"{out}: the ending {out.suffix!r} is not usual for {writer.name} "
            f"({', '.join(writer.extensions)}); writing {writer.name} anyway",
            stacklevel=2,
        )
    chosen, auto_query = resolve_subset(ws, ids=ids, labels=labels, selection=selection, all=all)
    targets = {"main": out}
    ext = out.suffix or writer.extensions[0]
    if not writer.embeds_provenance:
        targets["provenance"] = sibling(out, "_provenance.json")
    if with_lightcurves and not writer.holds_lightcurves:
        targets["lightcurves"] = sibling(out, f"_lightcurves{ext}")
    cutouts_sibling = sibling(out, "_cutouts.fits") if with_cutouts and not writer.holds_cutouts else None
    AtomicOutputs([*targets.values(), *([cutouts_sibling] if cutouts_sibling else [])], overwrite).check()

    table, versions = export_table(ws, chosen, embeddings=embeddings, with_cutouts=with_cutouts)
    prov = provenance(ws, query or auto_query, len(table), versions)
    blocks = cutout_blocks(ws, table) if with_cutouts else None
    if with_cutouts and not blocks:
        warnings.warn(
            f"none of the {len(table)} exported objects has a cutout; no cutouts written", stacklevel=2
        )
    if blocks and cutouts_sibling is not None:
        targets["cutouts"] = cutouts_sibling
    lc = lightcurve_table(ws, table) if with_lightcurves else None
    bundle = ExportBundle(
        table, prov, blocks if writer.holds_cutouts else None, lc if writer.holds_lightcurves else None
    )
    with AtomicOutputs(list(targets.values()), overwrite) as files:
        writer.func(bundle, files.temp(out))
        if "provenance" in targets:
            columns = {
                c: dict(zip(("unit", "ucd", "description"), column_info(c), strict=True))
                for c in table.columns
            }
            files.temp(targets["provenance"]).write_text(
                json.dumps({"provenance": prov, "columns": columns}, indent=2, ensure_ascii=False),
                encoding="utf-8",
            )
        if "lightcurves" in targets:
            writer.func(ExportBundle(lc, prov), files.temp(targets["lightcurves"]))
        if "cutouts" in targets:
            write_cutouts_fits(blocks, prov, files.temp(targets["cutouts"]))
    return out


def export_bytes(ws: Workspace | str | Path, ids: Sequence[str], fmt: str) -> tuple[bytes, str]:
    """The export table of ``ids`` as the bytes of a file in format ``fmt``, for a browser download.

    Returns
    -------
    (bytes, str)
        The file's content and a file name for it (``explorer-export-<UTC time>.<ext>``; its ending gives the
        media type, also at ``explorer.export_formats.get_writer(fmt).media_type``). Provenance is inside the
        file, except for CSV, which has no place for it.
    """
    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    writer = get_writer(fmt)
    chosen = list(dict.fromkeys(str(i) for i in ids))
    table, versions = export_table(ws, chosen)
    prov = provenance(ws, f"{len(chosen)} ids given", len(table), versions)
    with tempfile.TemporaryDirectory(prefix="explorer-export-") as tmp:
        path = Path(tmp) / f"export{writer.extensions[0]}"
        writer.func(ExportBundle(table, prov), path)
        data = path.read_bytes()
    stamp = prov["exported_at"].replace(":", "").replace("+0000", "Z")
    return data, f"explorer-export-{stamp}{writer.extensions[0]}"


__all__ = [
    "export_bytes",
    "export_subset",
    "export_table",
    "load_selection",
    "model_description",
    "provenance",
    "resolve_subset",
    "saved_selections",
]
