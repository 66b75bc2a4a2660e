"""What fine-tuning reads and writes: the labels per modality (checked), the encoders behind the current embeddings,
the cutouts to train on, the re-embedding with the tuned encoders, and the before/after comparison of two versions.

The training itself is in :mod:`explorer.models.finetune`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import Tensor

from explorer.errors import DataError, ModelError, WorkspaceError
from explorer.workspace import Workspace

MIN_CLASSES = 2
MIN_PER_CLASS = 2

__all__ = [
    "LabelledSet",
    "check_enough_labels",
    "compare_versions",
    "current_encoders",
    "image_pool",
    "knn_loo_accuracy",
    "label_margin",
    "labelled_subset",
    "neighbour_jaccard",
    "reembed",
    "reusable_vectors",
]


# ----------------------------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class LabelledSet:
    """The labelled objects of one modality (or image set) that fine-tuning learns from.

    Attributes
    ----------
    ids : numpy.ndarray
        ``(n,)`` object ids.
    labels : numpy.ndarray
        ``(n,)`` class names (str).
    classes : tuple of str
        Distinct class names, sorted; ``y`` indexes into it.
    y : numpy.ndarray
        ``(n,)`` int64 class codes.
    """

    ids: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self) -> dict[str, int]:
        """Objects per class, largest first."""
        c = pd.Series(self.labels).value_counts()
        return {str(k): int(v) for k, v in c.items()}


def labelled_subset(current: pd.DataFrame, ids_with_modality: Sequence) -> LabelledSet:
    """The rows of ``current`` (``LabelStore.current()``: ``id, label, ...``) whose id is in ``ids_with_modality``."""
    have = pd.Index(np.asarray(ids_with_modality, dtype=object))
    rows = current[current["id"].astype(object).isin(have) & current["label"].notna()]
    ids = rows["id"].astype(str).to_numpy(dtype=object)
    labels = rows["label"].astype(str).to_numpy(dtype=object)
    classes = tuple(sorted(set(labels.tolist())))
    code = {c: i for i, c in enumerate(classes)}
    y = np.fromiter((code[v] for v in labels), dtype=np.int64, count=len(labels))
    return LabelledSet(ids, labels, classes, y)


def check_enough_labels(labelled: LabelledSet, where: str) -> None:
    """Raise :class:`DataError` unless ``labelled`` has ≥ 2 classes with ≥ 2 objects each, saying what is missing.

    Parameters
    ----------
    labelled : LabelledSet
    where : str
        Names the objects counted, e.g. ``"objects with a cutout in image set 'first'"``.
    """
    counts = labelled.counts()
    ok = [c for c, n in counts.items() if n >= MIN_PER_CLASS]
    if len(ok) >= MIN_CLASSES:
        return
    have = ", ".join(f"{c!r} {n}" for c, n in counts.items()) or "none"
    # cheapest way to get there: top up the classes closest to MIN_PER_CLASS, then add new classes
    short = sorted(
        ((c, MIN_PER_CLASS - n) for c, n in counts.items() if n < MIN_PER_CLASS), key=lambda t: t[1]
    )
    wanted = MIN_CLASSES - len(ok)
    asks = [f"{need} more {c!r}" for c, need in short[:wanted]]
    n_more = sum(need for _, need in short[:wanted])
    new_classes = wanted - len(asks)
    if new_classes:
        n_more += MIN_PER_CLASS * new_classes
        kind = "another class" if counts else "each of 2 classes"
        if counts and new_classes > 1:
            kind = f"each of {new_classes} other classes"
        asks.append(f"{MIN_PER_CLASS} of {kind} (e.g. 'anomaly' and 'normal', or class names of your own)")
    raise DataError(
        f"fine-tuning needs at least {MIN_CLASSES} classes with at least {MIN_PER_CLASS} labelled objects each "
        f"among {where}; labels there now: {have}. Label {n_more} more object(s): {' and '.join(asks)}"
    )


# ----------------------------------------------------------------------------------------------- encoders
def current_encoders(ws: Workspace) -> tuple[str, dict[str, Path]]:
    """The current embedding version and the checkpoint of each of its jobs (``image:<set>``, ``lightcurve``)."""
    version = ws.current("embeddings")
    if version is None:
        raise WorkspaceError(
            f"{ws.path}: no embeddings yet; run `explorer embed {ws.path}` before fine-tuning"
        )
    meta = ws.versions("embeddings")[version]
    models = meta.get("models", {})
    found = {
        key: Path(m["checkpoint"]) for key, m in models.items() if isinstance(m, dict) and m.get("checkpoint")
    }
    if not found:
        raise ModelError(
            f"embeddings {version} were imported, not made by an encoder: there is nothing to fine-tune; "
            f"run `explorer embed {ws.path}` with an encoder first"
        )
    for key, path in found.items():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{path}: the checkpoint that made embeddings {version} ({key}) is gone; "
                f"run `explorer embed {ws.path}` again, then fine-tune"
            )
    return version, found


# ----------------------------------------------------------------------------------------------- cutouts
class _RowReader:
    """``store`` rows ``rows`` seen as an array: ``len`` and slicing (what ``prepare_cutouts`` reads)."""

    def __init__(self, store, rows: np.ndarray) -> None:
        self.store, self.rows = store, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: slice) -> np.ndarray:
        return self.store.get_rows(self.rows[item])


@dataclass(frozen=True)
class ImagePool:
    """Cutouts fine-tuning trains on: every labelled object of an image set plus a sample of the others.

    Attributes
    ----------
    x : Tensor
        ``(n, B, S, S)`` float16 normalised cutouts (see ``explorer.models.train_image.prepare_cutouts``).
    ids : numpy.ndarray
        ``(n,)`` ids of the rows of ``x``.
    labelled : numpy.ndarray
        ``(m,)`` rows of ``x`` that are labelled.
    y : numpy.ndarray
        ``(m,)`` class codes of those rows.
    """

    x: Tensor
    ids: np.ndarray
    labelled: np.ndarray
    y: np.ndarray


def image_pool(
    ws: Workspace,
    image_set: str,
    labelled: LabelledSet,
    model_config,
    max_objects: int,
    seed: int,
    progress: bool = False,
) -> ImagePool:
    """Normalise the cutouts of all labelled objects of ``image_set`` and of up to ``max_objects`` in all.

    Blank cutouts (no finite pixel) are left out with a warning (from ``prepare_cutouts``).
    """
    from explorer.models.train_image import prepare_cutouts

    store = ws.catalog.images[image_set]
    all_ids = np.asarray(store.ids, dtype=object)
    is_lab = pd.Index(all_ids).isin(pd.Index(labelled.ids))
    others = np.flatnonzero(~is_lab)
    room = max(0, max_objects - int(is_lab.sum()))
    if len(others) > room:
        others = np.sort(np.random.default_rng(seed).choice(others, room, replace=False))
    rows = np.sort(np.concatenate([np.flatnonzero(is_lab), others]))
    x, keep = prepare_cutouts(_RowReader(store, rows), model_config, progress=progress)
    ids = all_ids[rows][keep]
    code = dict(zip(labelled.ids.tolist(), labelled.y.tolist(), strict=True))
    lab_rows = np.flatnonzero(pd.Index(ids).isin(pd.Index(labelled.ids)))
    y = np.array([code[i] for i in ids[lab_rows]], dtype=np.int64)
    return ImagePool(x, ids, lab_rows, y)


# ----------------------------------------------------------------------------------------------- re-embedding
def reusable_vectors(ws: Workspace, version: str, job) -> np.ndarray | None:
    """The vectors embedding version ``version`` already holds for ``job`` (an ``explorer.models.embed.Job``).

    Only when that version was made by the very same checkpoint (folder and ``weights_sha256``) for the same job
    and its space of the job's modality holds every one of ``job.ids``; else None (the job must be embedded).
    Returns ``(len(job.ids), d)`` float32 rows in the order of ``job.ids``.
    """
    meta = ws.versions("embeddings").get(version, {})
    made = meta.get("models", {}).get(job.key)
    if not isinstance(made, dict) or meta.get("imported"):
        return None
    same = made.get("checkpoint") == str(job.checkpoint.path) and made.get("weights_sha256") == (
        job.checkpoint.config.get("weights_sha256")
    )
    if not same or job.modality not in meta.get("spaces", {}):
        return None
    old = ws.embeddings(version, space=job.modality)
    rows = pd.Index(old.ids).get_indexer(pd.Index(job.ids))
    if (rows < 0).any():
        return None
    return np.asarray(old.vectors[rows], dtype=np.float32)


def reembed(
    ws: Workspace,
    checkpoints: dict[str, Path],
    meta: dict,
    device: str = "cpu",
    progress: bool = True,
    reuse_from: str | None = None,
) -> str:
    """Embed the workspace again with ``checkpoints`` (``{job_key: folder}``) and save a new, current version.

    Jobs not named in ``checkpoints`` keep the encoder they were chosen for by ``explorer.models.embed.plan``.
    With ``reuse_from`` (an embedding version), a job whose encoder is the one that made that version keeps its
    vectors from there (:func:`reusable_vectors`) instead of being embedded again: after a fine-tune only the
    tuned encoders run. The spaces saved follow :func:`explorer.models.embed.embed_workspace` (image,
    lightcurve, joint: rebuilt from the blocks, old and new). ``meta`` is added to the version's metadata;
    ``models[key]["reused_from"]`` names the version a job's vectors were taken from.
    """
    from explorer.models.embed import joint_space, plan, run_jobs
    from explorer.models.registry import read_ref

    with warnings.catch_warnings(record=True) as said:  # plan's choice of encoder, overridden below
        warnings.simplefilter("always")
        planned = plan(ws)
    if any(j.key not in checkpoints for j in planned):
        for w in said:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    jobs = [
        dataclasses.replace(j, checkpoint=read_ref(checkpoints[j.key])) if j.key in checkpoints else j
        for j in planned
    ]
    vectors: dict[str, np.ndarray] = {}
    if reuse_from is not None:
        for j in jobs:
            kept = reusable_vectors(ws, reuse_from, j)
            if kept is not None:
                vectors[j.key] = kept
    reused = set(vectors)
    todo = [j for j in jobs if j.key not in reused]
    vectors.update(run_jobs(ws, todo, device=device, progress=progress))
    spaces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for modality in ("image", "lightcurve"):
        mine = [j for j in jobs if j.modality == modality]
        if mine and len({vectors[j.key].shape[1] for j in mine}) == 1:
            spaces[modality] = (
                np.concatenate([j.ids for j in mine]),
                np.concatenate([vectors[j.key] for j in mine]),
            )
    spaces["joint"] = joint_space(ws, jobs, vectors)
    models = {
        j.key: {
            "checkpoint": str(j.checkpoint.path),
            "name": j.checkpoint.name,
            "weights_sha256": j.checkpoint.config.get("weights_sha256"),
            **({"reused_from": reuse_from} if j.key in reused else {}),
        }
        for j in jobs
    }
    full = {"catalog": ws.manifest["catalog"], "models": models, "scheduler": "in-process", **meta}
    return ws.save_embeddings(spaces, full)


# ----------------------------------------------------------------------------------------------- comparing
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _knn(X: np.ndarray, rows: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """``(len(rows), k)`` indices of the ``k`` most cosine-similar rows of unit ``X`` to each of ``rows`` (self excluded)."""
    out = np.empty((len(rows), k), np.int64)
    for a in range(0, len(rows), chunk):
        r = rows[a : a + chunk]
        sims = X[r] @ X.T
        sims[np.arange(len(r)), r] = -np.inf
        out[a : a + len(r)] = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return out


def neighbour_jaccard(
    old: np.ndarray, new: np.ndarray, k: int = 10, sample: int | None = 2000, seed: int = 0
) -> float:
    """Mean Jaccard index of each object's ``k`` nearest neighbours (cosine) in two embeddings of the same objects.

    ``old`` ``(n, d1)`` and ``new`` ``(n, d2)`` hold the same objects in the same row order; ``sample`` objects
    (all when None or ≥ n) are the queries, their neighbours are searched among all ``n``. 1 = same neighbours.
    """
    n = len(old)
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    rows = np.arange(n)
    if sample is not None and sample < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    a, b = _knn(_unit(old), rows, k), _knn(_unit(new), rows, k)
    shared = np.array([len(np.intersect1d(p, q, assume_unique=True)) for p, q in zip(a, b, strict=True)])
    return float(np.mean(shared / (2 * k - shared)))


def knn_loo_accuracy(X: np.ndarray, y: np.ndarray, k: int = 10, balanced: bool = False) -> float:
    """Leave-one-out k-nearest-neighbour (cosine) accuracy of labels ``y`` ``(n,)`` on vectors ``X`` ``(n, d)``.

    Each object is classified by the majority class of its ``k`` nearest other labelled objects; ties go to the
    class with the larger summed similarity. ``k`` is lowered to the size of the smallest class minus one (at
    least 1): with more neighbours than an object has classmates, a perfect embedding would still be out-voted.
    ``balanced``: the mean over classes of the fraction of each class classified right (with 8 "anomaly" among
    150 labels, plain accuracy is 0.947 for an embedding that calls everything "normal"; balanced is 0.5).
    """
    y = np.asarray(y)
    n = len(y)
    if n < 2:
        return float("nan")
    k = max(1, min(k, n - 1, int(np.unique(y, return_counts=True)[1].min()) - 1))
    U = _unit(X)
    sims = U @ U.T
    np.fill_diagonal(sims, -np.inf)
    nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    classes, codes = np.unique(y, return_inverse=True)
    votes = np.zeros((n, len(classes)))
    weight = np.zeros((n, len(classes)))
    rows = np.repeat(np.arange(n), k)
    np.add.at(votes, (rows, codes[nn].ravel()), 1.0)
    np.add.at(weight, (rows, codes[nn].ravel()), sims[np.arange(n)[:, None], nn].ravel())
    pred = np.argmax(votes + weight / (2 * k + 1), axis=1)  # |weight| <= k: only breaks ties
    if balanced:
        return float(np.mean([np.mean(pred[codes == c] == c) for c in range(len(classes))]))
    return float(np.mean(pred == codes))


def label_margin(X: np.ndarray, y: np.ndarray) -> float:
    """Mean cosine similarity between objects of the same label minus that between different labels.

    ``X`` ``(n, d)``, ``y`` ``(n,)``; each label weighs the same (a rare class counts as much as a common one).
    Larger = same-label objects closer together; nan without two labels.
    """
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) < 2:
        return float("nan")
    U = _unit(X)
    same, other = [], []
    for c in classes:
        a, b = U[y == c], U[y != c]
        if len(a) > 1:
            s = a @ a.T
            same.append((s.sum() - np.trace(s)) / (len(a) * (len(a) - 1)))
        other.append(float((a @ b.T).mean()))
    return float(np.mean(same) - np.mean(other)) if same else float("nan")


def compare_versions(
    ws: Workspace,
    old_embeddings: str,
    new_embeddings: str,
    k: int = 10,
    space: str = "joint",
    sample: int | None = 2000,
) -> dict:
    """Before/after numbers for two embedding versions of a workspace.

    Parameters
    ----------
    ws : Workspace
    old_embeddings, new_embeddings : str
        Embedding versions, e.g. ``"emb-0001"`` and ``"emb-0002"``.
    k : int
        Neighbours per object.
    space : str
        Embedding space compared (``joint``, ``image``, ``lightcurve``).
    sample : int or None
        Objects queried for the neighbour overlap (None: all).

    Returns
    -------
    dict
        ``old``, ``new``, ``space``, ``k``, ``n_objects`` (in both), ``neighbour_jaccard`` (mean Jaccard index of
        each object's ``k`` nearest neighbours in the two versions; 1 = unchanged), ``n_labelled``, ``classes``
        (labelled objects per class), ``knn_accuracy_old`` / ``knn_accuracy_new`` (leave-one-out kNN accuracy of
        the current labels), ``knn_balanced_accuracy_old`` / ``_new`` (the same, averaged over classes: the
        one to read when a class is rare) and ``label_margin_old`` / ``_new`` (:func:`label_margin`: how much
        closer same-label objects are than others). When the new version was fine-tuned on these labels the
        new numbers are optimistic; a held-out split is the fair test, see ``benchmarks/bench_finetune.py``.
    """
    a, b = ws.embeddings(old_embeddings, space=space), ws.embeddings(new_embeddings, space=space)
    common = pd.Index(a.ids).intersection(pd.Index(b.ids))
    if len(common) < 2:
        raise DataError(
            f"embeddings {old_embeddings} and {new_embeddings} share {len(common)} objects in space "
            f"{space!r}; compare versions of the same workspace"
        )
    A = np.asarray(a.vectors)[pd.Index(a.ids).get_indexer(common)]
    B = np.asarray(b.vectors)[pd.Index(b.ids).get_indexer(common)]
    with ws.labels() as store:
        current = store.current()
    lab = labelled_subset(current, common)
    rows = pd.Index(common).get_indexer(pd.Index(lab.ids))
    out = {
        "old": old_embeddings,
        "new": new_embeddings,
        "space": space,
        "k": k,
        "n_objects": len(common),
        "neighbour_jaccard": neighbour_jaccard(A, B, k, sample),
        "n_labelled": len(lab),
        "classes": lab.counts(),
    }
    for key in ("knn_accuracy", "knn_balanced_accuracy", "label_margin"):
        out[f"{key}_old"] = out[f"{key}_new"] = float("nan")
    if len(lab.classes) >= 2:
        for when, V in (("old", A[rows]), ("new", B[rows])):
            out[f"knn_accuracy_{when}"] = knn_loo_accuracy(V, lab.y, k)
            out[f"knn_balanced_accuracy_{when}"] = knn_loo_accuracy(V, lab.y, k, balanced=True)
            out[f"label_margin_{when}"] = label_margin(V, lab.y)
    else:
        warnings.warn(
            "fewer than 2 labelled classes among the compared objects: no kNN accuracy", stacklevel=2
        )
    return out
