"""What the FIRST labels can teach the same CNN: the supervised reference for the self-supervised kNN target.

    python benchmarks/bench_first_supervised.py --device cuda --epochs 60 [--images first.npz] [--json out.json]

The self-supervised encoder (``assets/image_encoder_first``) reaches kNN 0.785 on the four FIRST classes against
the 0.85 target (``benchmarks/RESULTS_image.md``). This trains the same network *with* the class labels, in the
same 5 stratified folds as ``bench_first_knn.knn_accuracy`` (random_state 0), with the same augmentations as
the self-supervised recipe (rotations, flips, zoom, shifts, blur, noise, brightness), and reports per mode the
held-out accuracy of the classifier (logits averaged over the 8 rotations/flips) and the kNN (k=10, cosine)
accuracy of its embedding, held-out fold against the training folds:

- ``scratch``: random initialisation;
- ``from SSL``: the shipped self-supervised weights, every layer trained (lower learning rate);
- ``SSL probe``: the shipped encoder frozen, a logistic regression on its embedding (CPU, no training here).

Labels are used here, so these rows are references, never the self-supervised result. Fine-tuning in the
product (``explorer finetune``) is measured on the same data by ``bench_finetune.py --data first``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_knn import DEFAULT_CHECKPOINT, load_first_arrays, stratified_folds  # noqa: E402
from pretrain_first import FIRST_RECIPE  # noqa: E402

from explorer.models.augment import ImageAugment, dihedral_all  # noqa: E402
from explorer.models.checkpoints import build_from_checkpoint  # noqa: E402
from explorer.models.image_encoder import ImageCNN, embed_images, load_image_encoder  # noqa: E402
from explorer.models.train_image import prepare_cutouts  # noqa: E402

MODES = ("scratch", "from SSL")


def train_fold(x: torch.Tensor, y: torch.Tensor, mode: str, epochs: int, device: str, seed: int,
               checkpoint: str, batch_size: int = 128) -> tuple[ImageCNN, torch.nn.Linear]:
    """One network + linear head trained with cross-entropy on ``(x, y)`` (augmented views). The network is
    fully convolutional: the shipped weights work at any input size."""
    torch.manual_seed(seed)
    net = (build_from_checkpoint(Path(checkpoint)) if mode == "from SSL" else ImageCNN(FIRST_RECIPE.model)).to(device)
    head = torch.nn.Linear(net.embedding_dim, int(y.max()) + 1).to(device)
    params = list(net.parameters()) + list(head.parameters())
    lr = 1e-3 if mode == "scratch" else 3e-4
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    augment = ImageAugment(FIRST_RECIPE.augment)
    g = torch.Generator(device=device).manual_seed(seed)
    x, y = x.to(device), y.to(device)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g, device=device)
        for s in range(0, len(x) - batch_size + 1, batch_size):
            idx = order[s : s + batch_size]
            views = augment(x[idx].float(), g)
            with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(head(net(views)).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval(), head.eval()


@torch.no_grad()
def evaluate(net: ImageCNN, head: torch.nn.Linear, x: torch.Tensor, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (averaged over the 8 dihedral views) and embeddings (same average) of ``x``."""
    probs, embs = [], []
    for s in range(0, len(x), 256):
        b = x[s : s + 256].to(device).float()
        views = dihedral_all(b)
        e = net(views).float().reshape(8, len(b), -1)
        probs.append(F.softmax(head(e.reshape(8 * len(b), -1)), dim=1).reshape(8, len(b), -1).mean(0).cpu())
        embs.append(e.mean(0).cpu())
    return torch.cat(probs).numpy(), torch.cat(embs).numpy()


def knn_transfer(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, k: int = 10) -> float:
    """Accuracy of the test rows classified by their ``k`` nearest training rows (cosine)."""
    from sklearn.neighbors import KNeighborsClassifier

    norm = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)  # noqa: E731
    return float((KNeighborsClassifier(k).fit(norm(train), y_train).predict(norm(test)) == y_test).mean())


def probe(images: np.ndarray, y: np.ndarray, checkpoint: str) -> list[float]:
    """Per-fold accuracy of a logistic regression on the frozen self-supervised embedding."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    emb = embed_images(load_image_encoder(checkpoint, dihedral=True), images[:, None], 256, progress=False)
    out = []
    for tr, te in stratified_folds(y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(emb[tr], y[tr])
        out.append(float((clf.predict(emb[te]) == y[te]).mean()))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=None, help=".npz from bench_first_knn.save_first_npz (default: the wheel)")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--folds", type=int, default=5, help="run only the first N folds (smoke tests)")
    p.add_argument("--size", type=int, default=FIRST_RECIPE.model.input_size, help="input side, px")
    p.add_argument("--crop", type=int, default=FIRST_RECIPE.model.crop, help="central crop of the frame, px")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    images, classes, _ = load_first_arrays(args.images)
    names, y = np.unique(classes, return_inverse=True)
    x, keep = prepare_cutouts(images[:, None], replace(FIRST_RECIPE.model, input_size=args.size, crop=args.crop))
    if not keep.all():
        raise SystemExit("blank FIRST cutouts: the folds would not match bench_first_knn")
    result: dict = {"epochs": args.epochs, "size": args.size, "crop": args.crop, "device": args.device, "classes": names.tolist(), "modes": {}}
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
    for mode in [m for m in args.modes.split(",") if m]:
        rows = []
        for i, (tr, te) in enumerate(stratified_folds(y)[: args.folds]):
            t0 = time.perf_counter()
            net, head = train_fold(x[tr], torch.from_numpy(y[tr]), mode, args.epochs, args.device, seed=i,
                                   checkpoint=args.checkpoint)
            p_te, e_te = evaluate(net, head, x[te], args.device)
            _, e_tr = evaluate(net, head, x[tr], args.device)
            rows.append({"fold": i, "accuracy": float((p_te.argmax(1) == y[te]).mean()),
                         "knn": knn_transfer(e_tr, y[tr], e_te, y[te]), "seconds": time.perf_counter() - t0})
            print(json.dumps({"mode": mode, **rows[-1]}), flush=True)
        result["modes"][mode] = rows
    result["modes"]["SSL probe"] = [{"fold": i, "accuracy": a} for i, a in enumerate(probe(images, y, args.checkpoint))]

    print(f"\nFIRST, 4 classes, central {args.crop} px at {args.size} px, {args.epochs} epochs on "
          f"{result.get('gpu', args.device)}; held-out folds")
    print(f"{'mode':<12} {'classifier':>11} {'kNN on its embedding':>21}")
    for mode, rows in result["modes"].items():
        acc = np.array([r["accuracy"] for r in rows])
        knn = np.array([r.get("knn", np.nan) for r in rows])
        print(f"{mode:<12} {acc.mean():>7.3f}±{acc.std():.3f} {np.nanmean(knn) if np.isfinite(knn).any() else float('nan'):>17.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
