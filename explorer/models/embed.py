"""The embedding pipeline: every object of a workspace through its modality's encoder, in process or on Dask.

Spaces saved per embedding version:

- ``image``: objects with a cutout, each embedded by the encoder chosen for its image set;
- ``lightcurve``: objects with a light curve;
- ``joint``: one vector per object: the concatenation of one block per encoder (zeros where the object lacks
  that modality), re-normalised. Objects with both modalities sit between the image-only and light-curve-only
  ones; objects embedded by different encoders (e.g. radio and optical cutouts) never look alike by accident.

Work is cut into partitions of whole batches, so the in-process and the Dask paths feed the encoders the very
same batches and give the same vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.models.base import l2_normalise
from explorer.models.registry import (
    CheckpointRef,
    choose_image_checkpoint,
    choose_lightcurve_checkpoint,
    load_encoder,
)
from explorer.progress import progress_bar
from explorer.workspace import Workspace

log = logging.getLogger(__name__)
BATCH = 256
PARTITION_BATCHES = 4


@dataclass(frozen=True)
class Job:
    """One encoder's share of the work: which objects, which checkpoint."""

    key: str
    modality: str
    image_set: str | None
    checkpoint: CheckpointRef
    ids: np.ndarray


def plan(ws: Workspace, image_model: str | None = None, lightcurve_model: str | None = None) -> list[Job]:
    """Which encoder embeds which objects."""
    cat = ws.catalog
    jobs = []
    for name, store in cat.images.items():
        ids = cat.image_set_ids(name)
        if len(ids):
            ref = choose_image_checkpoint(ws, name, len(store.bands), image_model)
            jobs.append(Job(f"image:{name}", "image", name, ref, ids))
    if cat.lightcurves is not None:
        ids = cat.table.loc[cat.table["has_lightcurve"].astype(bool), "id"].to_numpy(dtype=object)
        if len(ids):
            jobs.append(Job("lightcurve", "lightcurve", None, choose_lightcurve_checkpoint(ws, lightcurve_model), ids))
    return jobs


_ENCODERS: dict[str, object] = {}


def _encoder(ref: CheckpointRef, device: str):
    key = f"{ref.path}|{ref.config.get('weights_sha256')}|{device}"
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(ref, device=device)
    return _ENCODERS[key]


def embed_partition(ws_path: str, job: Job, ids: Sequence[str], device: str = "cpu") -> np.ndarray:
    """Embed ``ids`` of one job; runs in this process or on a Dask worker (it opens the workspace itself)."""
    import warnings

    ws = Workspace.open(ws_path)
    encoder = _encoder(job.checkpoint, device)
    out = []
    for a in range(0, len(ids), BATCH):
        chunk = list(ids[a : a + BATCH])
        if job.modality == "image":
            batch = ws.catalog.images[job.image_set].get(chunk)
            blank = ~np.isfinite(batch).any(axis=(2, 3)).all(axis=1)
            if blank.any():
                warnings.warn(f"{int(blank.sum())} cutout(s) with a band of no finite pixel, embedded as blank "
                              f"images: {', '.join(map(str, np.asarray(chunk)[blank][:5]))}", stacklevel=2)
            out.append(encoder.embed(batch))
        else:
            df = ws.catalog.lightcurves.get_many(chunk)
            out.append(encoder.embed(df, ids=chunk))
    vectors = np.concatenate(out) if out else np.empty((0, encoder.embedding_dim), np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        from explorer.errors import ModelError

        raise ModelError(f"encoder {job.checkpoint.name}: NaN vectors for {np.asarray(ids)[bad][:5].tolist()}")
    return vectors


def _partitions(ids: np.ndarray) -> list[np.ndarray]:
    size = BATCH * PARTITION_BATCHES
    return [ids[a : a + size] for a in range(0, len(ids), size)]


def run_jobs(ws: Workspace, jobs: list[Job], scheduler: str | None = None, device: str = "cpu",
             progress: bool = True) -> dict[str, np.ndarray]:
    """Vectors per job key, in the order of ``job.ids``; on a Dask cluster when ``scheduler`` is given."""
    if scheduler is None:
        out = {}
        for job in jobs:
            with progress_bar(_partitions(job.ids), desc=f"embed {job.key}", unit="part", disable=not progress) as bar:
                vecs = [embed_partition(str(ws.path), job, p, device) for p in bar]
            out[job.key] = np.concatenate(vecs)
        return out
    from explorer.scale import dask_client

    with dask_client(scheduler) as client:
        futures = {job.key: [client.submit(embed_partition, str(ws.path), job, p, device, pure=False, retries=2)
                             for p in _partitions(job.ids)] for job in jobs}
        out = {}
        for job in jobs:
            with progress_bar(futures[job.key], desc=f"embed {job.key} (dask)", unit="part",
                              disable=not progress) as bar:
                parts = [fut.result() for fut in bar]
            out[job.key] = np.concatenate(parts)
        return out


def joint_space(ws: Workspace, jobs: list[Job], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One vector per object: a block per encoder, zeros where missing, re-normalised (see module docstring).

    Image sets embedded by the same checkpoint share one block, so their objects stay comparable.
    """
    ids = ws.catalog.ids
    row = {oid: i for i, oid in enumerate(ids)}
    blocks: dict[str, int] = {}
    for job in jobs:
        blocks.setdefault(str(job.checkpoint.path), vectors[job.key].shape[1])
    offsets = dict(zip(blocks, np.cumsum([0, *blocks.values()])[:-1], strict=True))
    joint = np.zeros((len(ids), sum(blocks.values())), np.float32)
    has = np.zeros(len(ids), bool)
    for job in jobs:
        col, w = int(offsets[str(job.checkpoint.path)]), vectors[job.key].shape[1]
        rows = np.fromiter((row[i] for i in job.ids), dtype=np.int64, count=len(job.ids))
        joint[rows, col : col + w] = vectors[job.key]
        has[rows] = True
    return ids[has], l2_normalise(joint[has])


def embed_workspace(ws: Workspace, image_model: str | None = None, lightcurve_model: str | None = None,
                    scheduler: str | None = None, device: str = "cpu", progress: bool = True) -> str:
    """Embed every object of ``ws`` and save a new embedding version (made current); returns its name."""
    jobs = plan(ws, image_model, lightcurve_model)
    if not jobs:
        from explorer.errors import WorkspaceError

        raise WorkspaceError(f"{ws.path}: nothing to embed (no cutouts or light curves)")
    vectors = run_jobs(ws, jobs, scheduler=scheduler, device=device, progress=progress)
    spaces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for modality in ("image", "lightcurve"):
        mine = [j for j in jobs if j.modality == modality]
        if mine and len({vectors[j.key].shape[1] for j in mine}) == 1:
            spaces[modality] = (np.concatenate([j.ids for j in mine]), np.concatenate([vectors[j.key] for j in mine]))
    spaces["joint"] = joint_space(ws, jobs, vectors)
    meta = {"catalog": ws.manifest["catalog"],
            "models": {j.key: {"checkpoint": str(j.checkpoint.path), "name": j.checkpoint.name,
                               "weights_sha256": j.checkpoint.config.get("weights_sha256")} for j in jobs},
            "scheduler": scheduler or "in-process"}
    version = ws.save_embeddings(spaces, meta)
    log.info("saved embeddings %s (%d objects)", version, len(spaces["joint"][0]))
    return version


def embeddings_stale(ws: Workspace) -> bool:
    """True when there are no embeddings or the catalogue changed since the current ones were made."""
    current = ws.current("embeddings")
    if current is None:
        return True
    meta = ws.versions("embeddings")[current]
    return meta.get("catalog") not in (None, ws.manifest["catalog"]) and not meta.get("imported")


def import_vectors(ws: Workspace, path: str | Path, id_column: str = "id", space: str = "joint") -> str:
    """Save precomputed vectors (Parquet/CSV table, ``.npz`` with ``ids``+``vectors``, HDF5) keyed by id."""
    from explorer.models.vector_files import read_vectors

    ids, X = read_vectors(Path(path), id_column)
    known = ws.catalog.contains(ids)
    if not known.all():
        from explorer.errors import DataError

        raise DataError(f"{path}: vector for unknown object {ids[~known][0]!r} ({int((~known).sum())} unknown); "
                        "import vectors only for objects in the workspace")
    X = l2_normalise(X)
    spaces = {space: (ids, X)} if space == "joint" else {space: (ids, X), "joint": (ids, X)}
    return ws.save_embeddings(spaces, {"catalog": ws.manifest["catalog"], "imported": str(path),
                                       "models": {"imported": {"name": Path(path).name}}})
