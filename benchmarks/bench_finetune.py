"""Fine-tuning on labels: kNN accuracy and class margin of held-out objects before and after, and wall time.

Two data sets (``--data``):

``simulated`` (default)
    A simulated survey of ``--n`` objects (images + light curves, known classes) embedded with the shipped
    encoders; the objects of ``--classes`` (default the galaxy classes elliptical / disk / spiral) are split in
    half by a seeded draw: one half labelled with its true class, the other half held out (never labelled).
``first``
    The FIRST sample (2,158 radio galaxies, FRI/FRII/Compact/Bent) embedded with the shipped FIRST encoder
    (or ``--checkpoint``; without one a quick encoder is pretrained here); its *train* split (1,758) is
    labelled, its *test* split (200) is held out.

Then ``finetune_workspace`` runs in each ``--modes`` entry (``head-only``, ``head-only@W`` with head_weight W,
``full``), each from the self-supervised version, and each version is scored on the held-out objects:

- ``test→train``: each held-out object classified by its 10 nearest labelled objects (cosine);
- ``test 5-fold``: 5-fold stratified kNN (k=10) among the held-out objects alone: does the geometry group
  unseen objects by class?
- ``margin``: mean cosine similarity of held-out objects of the same class minus that of different classes
  (how much closer same-label objects are: what a user sees as tighter groups on the map and in find-similar);
- ``jaccard``: mean overlap of each object's 10 nearest neighbours with those of the self-supervised version
  (1 = unchanged: how much of the self-supervised structure is kept);
- ``train s``: seconds of training (recorded in the checkpoint); ``total s``: wall time of
  ``finetune_workspace`` (training + re-embedding the tuned image set; other encoders' vectors are reused).

    python benchmarks/bench_finetune.py [--data simulated|first] [--n 2000] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_knn import knn_accuracy  # noqa: E402

from explorer.models.embed import embed_workspace  # noqa: E402
from explorer.models.finetune import FinetuneConfig, compare_versions, finetune_workspace  # noqa: E402
from explorer.models.registry import record_training_data  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "assets" / "image_encoder_first"
GALAXIES = "elliptical,disk,spiral"


def quick_encoder(ws: Workspace, out: Path, epochs: int, seed: int) -> Path:
    """Pretrain a FIRST encoder here (the shipped recipe's preprocessing, fewer epochs, smaller batches)."""
    from pretrain_first import FIRST_RECIPE

    from explorer.models.train_image import pretrain_images

    cfg = replace(FIRST_RECIPE, batch_size=128, warmup_epochs=1)
    return pretrain_images(ws.catalog.images["first"].array, cfg, out, epochs=epochs, seed=seed)


def test_train_knn(X: np.ndarray, y: np.ndarray, test: np.ndarray, train: np.ndarray, k: int = 10) -> float:
    """Accuracy of classifying ``test`` rows by majority of their ``k`` nearest ``train`` rows (cosine)."""
    from sklearn.neighbors import KNeighborsClassifier

    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    clf = KNeighborsClassifier(k).fit(X[train], y[train])
    return float((clf.predict(X[test]) == y[test]).mean())


def class_margin(X: np.ndarray, y: np.ndarray) -> float:
    """Mean cosine similarity between different objects of the same class minus that between classes."""
    U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    sim, same = U @ U.T, y[:, None] == y[None, :]
    np.fill_diagonal(same, False)
    return float(sim[same].mean() - sim[y[:, None] != y[None, :]].mean())


def score(ws: Workspace, version: str, reference: str, split: dict[str, str]) -> dict:
    """Held-out scores of one embedding version (joint space); ``split``: id -> "train" | "test"."""
    emb = ws.embeddings(version)
    table = ws.catalog.rows(emb.ids)
    y = table["class"].to_numpy(dtype=str)
    where = np.array([split.get(str(i), "") for i in emb.ids])
    X = np.asarray(emb.vectors, dtype=np.float32)
    test, train = np.flatnonzero(where == "test"), np.flatnonzero(where == "train")
    m, s = knn_accuracy(X[test], y[test])
    jaccard = 1.0
    if version != reference:
        jaccard = compare_versions(ws, reference, version, k=10, sample=None)["neighbour_jaccard"]
    return {
        "version": version,
        "dim": int(X.shape[1]),
        "test_5fold": m,
        "test_5fold_std": s,
        "test_to_train": test_train_knn(X, y, test, train),
        "margin": class_margin(X[test], y[test]),
        "jaccard": jaccard,
    }


def simulated_workspace(
    path: Path, n: int, classes: list[str], seed: int
) -> tuple[Workspace, dict[str, str]]:
    """A simulated survey embedded with the shipped encoders; half of each of ``classes`` labelled."""
    from explorer.data.defaults import add_simulated

    ws = Workspace.create(path)
    add_simulated(ws, n, seed=seed, progress=False)
    embed_workspace(ws, progress=False)
    table = ws.catalog.table
    chosen = table[table["class"].astype(str).isin(classes) & table["has_image"].astype(bool)]
    is_train = np.random.default_rng(seed).random(len(chosen)) < 0.5
    split = dict(zip(chosen["id"].astype(str), np.where(is_train, "train", "test"), strict=True))
    with ws.labels() as store:
        for cls, ids in chosen[is_train].groupby(chosen["class"].astype(str)[is_train])["id"]:
            store.add(ids.tolist(), str(cls), user="bench")
    return ws, split


def first_workspace(
    path: Path, checkpoint: str, pretrain_epochs: int, seed: int
) -> tuple[Workspace, dict, str]:
    """The FIRST sample embedded with ``checkpoint`` (or a quick encoder); its train split labelled."""
    from explorer.data.defaults import add_first

    ws = Workspace.create(path)
    add_first(ws, progress=False)
    target = ws.checkpoint_dir("image-first")
    note = checkpoint
    if (Path(checkpoint) / "config.json").is_file():
        shutil.copytree(checkpoint, target)
    else:
        quick_encoder(ws, target, pretrain_epochs, seed)
        note = f"quick SSL encoder pretrained here, {pretrain_epochs} epochs (no {checkpoint})"
    record_training_data(target, image_set="first")
    embed_workspace(ws, progress=False)
    table = ws.catalog.table
    split = dict(zip(table["id"].astype(str), table["split"].astype(str), strict=True))
    with ws.labels() as store:
        train = table[table["split"] == "train"]
        for cls, ids in train.groupby("class")["id"]:
            store.add(ids.tolist(), str(cls), user="bench")
    return ws, split, note


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("simulated", "first"), default="simulated")
    p.add_argument("--n", type=int, default=2000, help="simulated: objects in the survey")
    p.add_argument("--classes", default=GALAXIES, help="simulated: comma-separated classes to label")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="first: self-supervised encoder")
    p.add_argument("--pretrain-epochs", type=int, default=5, help="first: quick encoder when there is none")
    p.add_argument(
        "--epochs", type=int, default=None, help="full mode epochs (default FinetuneConfig.epochs)"
    )
    p.add_argument("--head-epochs", type=int, default=None, help="head-only epochs (default FinetuneConfig)")
    p.add_argument(
        "--modes", default="head-only@1,head-only,full", help="comma-separated: head-only, head-only@W, full"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="keep the workspace here (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    load_before = os.getloadavg()
    try:
        if args.data == "simulated":
            classes = args.classes.split(",")
            ws, split = simulated_workspace(tmp / "ws", args.n, classes, args.seed)
            encoder = "shipped assets/image_encoder_simulated (+ lightcurve_encoder)"
            what = f"simulated survey of {args.n}, classes {', '.join(classes)}"
        else:
            ws, split, encoder = first_workspace(tmp / "ws", args.checkpoint, args.pretrain_epochs, args.seed)
            what = "FIRST, classes FRI/FRII/Compact/Bent"
        v0 = ws.current("embeddings")
        rows = [("self-supervised", score(ws, v0, v0, split), float("nan"), float("nan"))]
        cfg = FinetuneConfig(threads=args.threads)
        for mode in args.modes.split(","):
            ws.set_current("embeddings", v0)
            head = mode.startswith("head-only")
            run_cfg = replace(cfg, head_weight=float(mode.split("@")[1])) if "@" in mode else cfg
            t = time.perf_counter()
            v = finetune_workspace(
                ws,
                head_only=head,
                epochs=args.head_epochs if head else args.epochs,
                seed=args.seed,
                progress=False,
                config=run_cfg,
            )
            total = time.perf_counter() - t
            ckpt = ws.versions("embeddings")[v]["finetune"]["tuned"]
            train_s = sum(
                json.loads((Path(c["checkpoint"]) / "config.json").read_text())["finetune"]["seconds"]
                for c in ckpt.values()
            )
            name = f"head-only (w={run_cfg.head_weight:g})" if head else mode
            rows.append((name, score(ws, v, v0, split), train_s, total))
    finally:
        if not args.workdir:
            shutil.rmtree(tmp, ignore_errors=True)
    n_train = sum(v == "train" for v in split.values())
    n_test = sum(v == "test" for v in split.values())
    load_after = os.getloadavg()
    print(f"\nFine-tuning on {what}: {n_train} labelled, scored on {n_test} held-out objects (joint space)")
    print(
        f"encoder: {encoder}; torch threads {args.threads}; {platform.processor() or platform.machine()}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    head_line = (
        f"{'version':<20}{'dim':>5}{'test→train':>12}{'test 5-fold':>15}{'margin':>9}{'jaccard':>9}"
        f"{'train s':>9}{'total s':>9}"
    )
    print(head_line)
    for name, r, train_s, total in rows:
        print(
            f"{name:<20}{r['dim']:>5}{r['test_to_train']:>12.3f}{r['test_5fold']:>9.3f} ±{r['test_5fold_std']:.3f}"
            f"{r['margin']:>9.3f}{r['jaccard']:>9.3f}{train_s:>9.1f}{total:>9.1f}"
        )
    result = {
        "data": what,
        "encoder": encoder,
        "threads": args.threads,
        "loadavg": [load_before, load_after],
        "config": cfg.to_dict(),
        "rows": [{"mode": n, **r, "train_seconds": t, "seconds": s} for n, r, t, s in rows],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
