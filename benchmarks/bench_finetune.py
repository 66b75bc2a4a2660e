"""Fine-tuning on labels, measured on FIRST: kNN accuracy on the held-out test split before and after, and time.

A temporary workspace gets the FIRST sample (2,158 radio galaxies, classes FRI/FRII/Compact/Bent), is embedded
with the self-supervised encoder (``assets/image_encoder_first``, or ``--checkpoint``; without one, a quick
encoder is pretrained here for ``--pretrain-epochs`` and the table says so), and the *train* split (1,758
objects) is labelled with its true classes. Then ``finetune_workspace`` runs head-only and full, each from the
self-supervised encoder, and each version is scored on the *test* split (200 objects, 50 per class, never
labelled):

- ``test 5-fold``: 5-fold stratified kNN (k=10, cosine) accuracy among the test objects alone (as in
  ``bench_first_knn.py``): does the geometry group unseen objects by class?
- ``test→train``: each test object classified by its 10 nearest labelled train objects;
- ``jaccard``: mean overlap of each object's 10 nearest neighbours with those of the self-supervised version
  (1 = unchanged; how much of the self-supervised structure is kept);
- ``seconds``: wall time of ``finetune_workspace`` (training + re-embedding every object).

    python benchmarks/bench_finetune.py [--checkpoint DIR] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
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

from explorer.data.defaults import add_first  # noqa: E402
from explorer.models.embed import embed_workspace  # noqa: E402
from explorer.models.finetune import FinetuneConfig, compare_versions, finetune_workspace  # noqa: E402
from explorer.models.registry import record_training_data  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "assets" / "image_encoder_first"


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


def score(ws: Workspace, version: str, reference: str) -> dict:
    emb = ws.embeddings(version)
    table = ws.catalog.rows(emb.ids)
    y, split = table["class"].to_numpy(dtype=str), table["split"].to_numpy(dtype=str)
    X = np.asarray(emb.vectors, dtype=np.float32)
    test, train = np.flatnonzero(split == "test"), np.flatnonzero(split == "train")
    m, s = knn_accuracy(X[test], y[test])
    out = {
        "version": version,
        "dim": int(X.shape[1]),
        "test_5fold": m,
        "test_5fold_std": s,
        "test_to_train": test_train_knn(X, y, test, train),
    }
    if version != reference:
        cmp = compare_versions(ws, reference, version, k=10, sample=None)
        out.update(jaccard=cmp["neighbour_jaccard"], train_loo=cmp["knn_accuracy_new"])
    else:
        cmp = compare_versions(ws, reference, reference, k=10, sample=None)
        out.update(jaccard=1.0, train_loo=cmp["knn_accuracy_old"])
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="self-supervised FIRST encoder")
    p.add_argument("--pretrain-epochs", type=int, default=5, help="for the quick encoder when there is none")
    p.add_argument(
        "--epochs", type=int, default=None, help="full mode epochs (default FinetuneConfig.epochs)"
    )
    p.add_argument("--head-epochs", type=int, default=None, help="head-only epochs (default FinetuneConfig)")
    p.add_argument(
        "--modes",
        default="head-only,full",
        help="comma-separated: head-only, head-only@W (head_weight W), full",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="keep the workspace here (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    try:
        ws = Workspace.create(tmp / "ws")
        add_first(ws, progress=False)
        target = ws.checkpoint_dir("image-first")
        ckpt_note = args.checkpoint
        t = time.perf_counter()
        if (Path(args.checkpoint) / "config.json").is_file():
            shutil.copytree(args.checkpoint, target)
        else:
            quick_encoder(ws, target, args.pretrain_epochs, args.seed)
            ckpt_note = (
                f"quick SSL encoder pretrained here, {args.pretrain_epochs} epochs (no {args.checkpoint})"
            )
        pretrain_s = time.perf_counter() - t
        record_training_data(target, image_set="first")
        t = time.perf_counter()
        v0 = embed_workspace(ws, progress=False)
        embed_s = time.perf_counter() - t
        table = ws.catalog.table
        train = table[table["split"] == "train"]
        with ws.labels() as store:
            for cls, ids in train.groupby("class")["id"]:
                store.add(ids.tolist(), str(cls), user="bench")
        rows = [("self-supervised", score(ws, v0, v0), embed_s)]
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
            name = f"head-only (w={run_cfg.head_weight:g})" if head else mode
            rows.append((name, score(ws, v, v0), time.perf_counter() - t))
    finally:
        if not args.workdir:
            shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\nFine-tuning on FIRST train labels ({len(train)} objects), scored on the test split (200 objects)"
    )
    print(f"encoder: {ckpt_note}; torch threads {args.threads}; {platform.processor() or platform.machine()}")
    head = f"{'version':<20}{'dim':>5}{'test 5-fold':>15}{'test→train':>12}{'train LOO':>11}{'jaccard':>9}{'seconds':>9}"
    print(head)
    for name, r, secs in rows:
        print(
            f"{name:<20}{r['dim']:>5}{r['test_5fold']:>9.3f} ±{r['test_5fold_std']:.3f}{r['test_to_train']:>12.3f}"
            f"{r['train_loo']:>11.3f}{r['jaccard']:>9.3f}{secs:>9.1f}"
        )
    result = {
        "encoder": ckpt_note,
        "threads": args.threads,
        "pretrain_seconds": pretrain_s,
        "config": cfg.to_dict(),
        "rows": [{"mode": n, **r, "seconds": s} for n, r, s in rows],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
