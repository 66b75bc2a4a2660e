"""Reproduce the shipped FIRST image encoder (assets/image_encoder_first): self-supervised, no labels used.

    python benchmarks/pretrain_first.py --out assets/image_encoder_first --device cuda

The recipe (FIRST_RECIPE below) keeps the central 128 px of each 300 px frame, shrinks it to 64 px (compact
sources are ~4 px across: shrinking the whole frame would erase them), stretches it with two asinh
softenings, and trains the residual CNN with NT-Xent on two views per image. ``--eval`` prints the kNN
accuracy on the FIRST classes at the end (labels are read only then).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_knn import evaluate_encoder, load_first_arrays  # noqa: E402

from explorer.models.augment import AugmentConfig  # noqa: E402
from explorer.models.image_encoder import ImageModelConfig, load_image_encoder  # noqa: E402
from explorer.models.train_image import STATE_DIR, ImagePretrainConfig, pretrain_images  # noqa: E402

FIRST_RECIPE = ImagePretrainConfig(
    model=ImageModelConfig(
        bands=1,
        input_size=64,
        crop=128,
        stretches=(0.02, 0.5),
        widths=(32, 64, 128, 256),
        stem_stride=2,
        first_stride=1,
    ),
    augment=AugmentConfig(max_shift=3.0, scale=(0.9, 1.1), blur_sigma=(0.0, 1.0), noise_level=(0.0, 1.0)),
    loss="ntxent",
    temperature=0.1,
    batch_size=256,
    lr=2e-3,
    warmup_epochs=5,
)
FIRST_EPOCHS = 200


def recipe_from_args(args: argparse.Namespace) -> ImagePretrainConfig:
    """FIRST_RECIPE with any command-line overrides applied."""
    r = FIRST_RECIPE
    m, a = r.model, r.augment
    if args.widths:
        m = replace(m, widths=tuple(int(w) for w in args.widths.split(",")))
    if args.first_stride is not None:
        m = replace(m, first_stride=args.first_stride)
    if args.crop is not None:
        m = replace(m, crop=args.crop or None)
    if args.size is not None:
        m = replace(m, input_size=args.size)
    if args.stretches:
        m = replace(m, stretches=tuple(float(s) for s in args.stretches.split(",")))
    if args.embedding_dim is not None:
        m = replace(m, embedding_dim=args.embedding_dim)
    if args.scale is not None:
        a = replace(a, scale=(1 / args.scale, args.scale))
    if args.max_shift is not None:
        a = replace(a, max_shift=args.max_shift)
    kw = {
        k: v
        for k, v in {
            "loss": args.loss, "temperature": args.temperature, "batch_size": args.batch_size, "lr": args.lr,
            "threads": args.threads, "warmup_epochs": args.warmup_epochs, "support_size": args.support_size,
        }.items()
        if v is not None
    }  # fmt: skip
    return replace(r, model=m, augment=a, **kw)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "assets" / "image_encoder_first"))
    p.add_argument(
        "--images", default=None, help=".npz with images/classes/ids (default: the installed wheel)"
    )
    p.add_argument("--epochs", type=int, default=FIRST_EPOCHS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument(
        "--keep-state", action="store_true", help="keep out/train_state (optimizer state, ~2x weights)"
    )
    p.add_argument("--eval", action="store_true", help="print kNN accuracy on the FIRST classes at the end")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--init-from", default=None, help="start from this checkpoint's encoder weights")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch of the schedule")
    p.add_argument("--warmup-epochs", type=float, default=None)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (smoke tests)")
    for name, typ in [
        ("--widths", str), ("--first-stride", int), ("--crop", int), ("--size", int), ("--stretches", str),
        ("--embedding-dim", int), ("--scale", float), ("--max-shift", float), ("--loss", str),
        ("--temperature", float), ("--batch-size", int), ("--lr", float), ("--threads", int),
        ("--support-size", int),
    ]:  # fmt: skip
        p.add_argument(name, type=typ, default=None)
    args = p.parse_args(argv)

    config = recipe_from_args(args)
    images, classes, _ = load_first_arrays(args.images)
    if args.limit:
        images, classes = images[: args.limit], classes[: args.limit]
    t0 = time.perf_counter()
    out = pretrain_images(
        images[:, None], config, args.out, epochs=args.epochs, seed=args.seed, device=args.device,
        resume=not args.no_resume, progress=not args.quiet, init_from=args.init_from,
        stop_after=args.stop_after,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if not args.keep_state:
        shutil.rmtree(Path(out) / STATE_DIR, ignore_errors=True)
    summary = {"out": str(out), "seconds": round(seconds, 1), "device": args.device, "epochs": args.epochs}
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name()
    if args.eval:
        enc = load_image_encoder(out, device=args.device)
        summary["knn"] = evaluate_encoder(enc, images[:, None], classes)
    print(json.dumps(summary))
    return Path(out)


if __name__ == "__main__":
    main()
