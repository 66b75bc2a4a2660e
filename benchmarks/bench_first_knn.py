"""kNN accuracy of self-supervised image embeddings on the FIRST radio-galaxy classes, plus embedding speed.

No class label is used to train the encoder; labels only score the embeddings: k-nearest-neighbour (k=10,
cosine) accuracy over 5 stratified folds of the 2,158 FIRST images (FRI, FRII, Compact, Bent), beside
baselines computed in the same run (PCA of raw pixels, a randomly initialised network of the same
architecture). Then throughput of :func:`explorer.models.image_encoder.embed_images` on 64×64 and on
FIRST-size 300×300 cutouts (preprocessing included).

    python benchmarks/bench_first_knn.py [--checkpoint assets/image_encoder_first] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.models.image_encoder import (  # noqa: E402
    ImageCNN,
    ImageEncoder,
    embed_images,
    load_image_encoder,
)

DEFAULT_CHECKPOINT = ROOT / "assets" / "image_encoder_first"


def load_first_arrays(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FIRST images ``(N, H, W)`` uint8, class names and ids: from the installed wheel, or an ``.npz``
    holding ``images``, ``classes``, ``ids`` (see :func:`save_first_npz`; for machines without the wheel)."""
    if path is not None:
        with np.load(path, allow_pickle=False) as f:
            return f["images"], f["classes"].astype(str), f["ids"].astype(str)
    from explorer.data.first import load_first

    s = load_first()
    return (
        s.images,
        np.asarray(s.table["class"].tolist(), dtype=str),
        np.asarray(s.table["id"].tolist(), dtype=str),
    )


def save_first_npz(path: str | Path, crop: int = 160) -> None:
    """Write the central ``crop`` pixels of the FIRST images (and classes, ids) to a compressed ``.npz``."""
    images, classes, ids = load_first_arrays()
    h = images.shape[-1]
    lo = (h - crop) // 2
    np.savez_compressed(path, images=images[:, lo : lo + crop, lo : lo + crop], classes=classes, ids=ids)


def stratified_folds(y: np.ndarray, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` row indices of the stratified folds every FIRST benchmark here uses."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def knn_accuracy(
    x: np.ndarray, y: np.ndarray, k: int = 10, folds: int = 5, seed: int = 0
) -> tuple[float, float]:
    """Mean and std over stratified folds of k-NN (cosine) accuracy: ``x`` ``(n, d)``, ``y`` ``(n,)``."""
    from sklearn.neighbors import KNeighborsClassifier

    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    scores = []
    for tr, te in stratified_folds(y, folds, seed):
        clf = KNeighborsClassifier(k).fit(x[tr], y[tr])
        scores.append(float((clf.predict(x[te]) == y[te]).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def pca_features(images: np.ndarray, size: int = 64, crop: int | None = None, n: int = 48) -> np.ndarray:
    """PCA(n) of the raw pixels resized to ``size`` (optionally centre-cropped first)."""
    from sklearn.decomposition import PCA

    x = torch.from_numpy(np.asarray(images, np.float32))[:, None]
    if crop is not None:
        lo = (x.shape[-1] - crop) // 2
        x = x[..., lo : lo + crop, lo : lo + crop]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area").flatten(1).numpy()
    return PCA(n, random_state=0).fit_transform(x - x.mean(0))


def throughput(encoder, shape: tuple[int, ...], n: int = 1024, batch_size: int = 256) -> tuple[float, float]:
    """Cutouts per second through ``embed_images`` (preprocessing included), after one warm-up batch.

    Returns ``(wall, cpu)``: per wall-clock second, and per second of this process's CPU time divided by the
    torch thread count -- what the run would reach with its cores to itself (the machine is often shared).
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    embed_images(encoder, x[:batch_size], batch_size, progress=False)
    t, c = time.perf_counter(), time.process_time()
    embed_images(encoder, x, batch_size, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return n / wall, n / (cpu / torch.get_num_threads())


def evaluate_encoder(encoder: ImageEncoder, images: np.ndarray, y: np.ndarray) -> dict:
    """kNN accuracy of one encoder's embeddings, with and without dihedral averaging."""
    out = {}
    for dihedral in (False, True):
        encoder.dihedral = dihedral
        emb = embed_images(encoder, images, 256, progress=False)
        out["dihedral" if dihedral else "single"] = knn_accuracy(emb, y)
    return out


def knn_table(enc: ImageEncoder, images: np.ndarray, y: np.ndarray) -> tuple[list, float]:
    """Rows ``(features, mean accuracy, std)``: pixel PCA, random-init CNN and ``enc``, each ± dihedral."""
    c = enc.config
    rows = [("PCA(48) raw pixels, 300→64 px", *knn_accuracy(pca_features(images), y))]
    crop_pca = pca_features(images, c.input_size, c.crop)
    rows.append((f"PCA(48) raw pixels, centre {c.crop}→{c.input_size} px", *knn_accuracy(crop_pca, y)))
    torch.manual_seed(0)
    res = evaluate_encoder(ImageEncoder(ImageCNN(c), name="random-init"), images, y)
    rows += [("random-init CNN", *res["single"]), ("random-init CNN, 8 dihedral avg", *res["dihedral"])]
    t = time.perf_counter()
    res = evaluate_encoder(enc, images, y)
    seconds = time.perf_counter() - t
    rows += [(f"SSL {enc.name}", *res["single"]), (f"SSL {enc.name}, 8 dihedral avg", *res["dihedral"])]
    return rows, seconds


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--images", default=None, help=".npz from save_first_npz (default: the installed wheel)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-knn", action="store_true", help="throughput only")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    enc = load_image_encoder(args.checkpoint)
    rows: list[tuple[str, float, float]] = []
    embed_seconds = None
    if not args.skip_knn:
        rows, embed_seconds = knn_table(enc, *load_first_arrays(args.images)[:2])
        print(
            f"\nkNN (k=10, cosine) 5-fold accuracy on FIRST (2158 images, 4 classes), checkpoint {args.checkpoint}"
        )
        print(f"{'features':<58} {'accuracy':>9} {'± std':>7}")
        for name, m, s in rows:
            print(f"{name:<58} {m:>9.3f} {s:>7.3f}")

    speed = {}
    if not args.skip_speed:
        for dihedral in (False, True):
            enc.dihedral = dihedral
            tag = "dihedral" if dihedral else "single"
            speed[f"64x64 {tag}"] = throughput(enc, (1, 64, 64))
            speed[f"300x300 {tag}"] = throughput(enc, (1, 300, 300))
        print(
            f"\nembedding throughput, {args.threads} threads, batch 256, bf16={enc.bf16} ({platform.processor() or platform.machine()})"
        )
        print(
            f"{'input':<24} {'img/s wall':>11} {'img/s cpu':>10}   (cpu: per {args.threads} cores of CPU time)"
        )
        for k, (w, c) in speed.items():
            print(f"{k:<24} {w:>11.0f} {c:>10.0f}")
    result = {
        "checkpoint": str(args.checkpoint),
        "encoder": enc.name,
        "knn": [{"features": n, "accuracy": m, "std": s} for n, m, s in rows],
        "throughput_img_per_s": {k: {"wall": w, "cpu": c} for k, (w, c) in speed.items()},
        "load_average": os.getloadavg(),
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "embed_all_first_seconds": embed_seconds,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
