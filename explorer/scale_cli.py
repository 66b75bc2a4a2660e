"""Command-line options for large workspaces, for the CLI modules to wire in (nothing here registers itself).

- ``explorer simulate WS --n N --embeddings-only [--dim 64] [--dtype float16]``: also save synthetic vectors;
- ``explorer map WS --scheduler ADDR --sample N --placement knn|umap --part-rows R``;
- ``explorer score WS --scheduler ADDR --sample N --part-rows R``;
- ``explorer index WS [--space joint] [--nprobe P]``: build and save the FAISS similarity index.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from explorer.scale import add_scheduler_option


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive whole number")
    return value


def add_simulate_options(p: argparse.ArgumentParser) -> None:
    """``--embeddings-only``, ``--dim``, ``--dtype`` for ``explorer simulate``."""
    p.add_argument(
        "--embeddings-only",
        action="store_true",
        help="also save synthetic embedding vectors (clusters by class, rare oddities) instead of running "
        "the encoders: measure maps, scores, search and the app at 10M objects in minutes",
    )
    p.add_argument("--dim", type=_positive, default=64, help="length of the synthetic vectors (default 64)")
    p.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="storage of the synthetic vectors (default float16: half the disk and page cache)",
    )


def after_simulate(ws, args: argparse.Namespace) -> str | None:
    """Run what ``--embeddings-only`` asks for after the objects were added; returns the embedding version."""
    if not getattr(args, "embeddings_only", False):
        return None
    from explorer.data.synthetic_vectors import add_synthetic_embeddings

    return add_synthetic_embeddings(ws, dim=args.dim, seed=args.seed, dtype=args.dtype)


def add_map_options(p: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--sample``, ``--placement``, ``--part-rows`` for ``explorer map``."""
    add_scheduler_option(p)
    p.add_argument(
        "--sample",
        type=_positive,
        default=None,
        help="fit the map on this many objects and place the rest (default 200,000 for UMAP)",
    )
    p.add_argument(
        "--placement",
        choices=("umap", "knn"),
        default="umap",
        help="place objects outside the sample with UMAP's transform, or by kNN interpolation "
        "(~5x less CPU per object, measured; the choice at 10M objects)",
    )
    p.add_argument(
        "--part-rows", type=_positive, default=None, help="objects per partition (default 262,144)"
    )


def map_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for :func:`explorer.analysis.workspace_ops.map_workspace` from the options above."""
    out = {"scheduler": args.scheduler, "sample_size": args.sample, "placement": args.placement}
    if args.part_rows:
        out["part_rows"] = args.part_rows
    return out


def add_score_options(p: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--sample``, ``--part-rows`` for ``explorer score``."""
    add_scheduler_option(p)
    p.add_argument(
        "--sample",
        type=_positive,
        default=200_000,
        help="fit the scorer on this many objects and score everyone in partitions (default 200,000)",
    )
    p.add_argument(
        "--part-rows", type=_positive, default=None, help="objects per partition (default 262,144)"
    )


def score_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for :func:`explorer.analysis.workspace_ops.score_workspace`."""
    out = {"scheduler": args.scheduler, "sample_size": args.sample}
    if args.part_rows:
        out["part_rows"] = args.part_rows
    return out


def register_index_command(sub) -> None:
    """``explorer index WS``: build the FAISS similarity index and save it in the workspace."""
    p = sub.add_parser(
        "index",
        help="build and save the similarity index (FAISS) of the embeddings",
        description="Build the IVF-SQ8 index of an embedding space and save it in WS/indexes/, so "
        "`explorer similar` and the app load it instead of rebuilding it (minutes at 10M objects).",
    )
    p.add_argument("workspace", type=Path)
    p.add_argument("--space", default="joint")
    p.add_argument(
        "--nprobe",
        type=_positive,
        default=None,
        help="lists searched per query (default max(32, nlist // 50))",
    )
    p.add_argument(
        "--nlist", type=_positive, default=None, help="IVF lists (default: about sqrt(n), 16-4096)"
    )
    p.set_defaults(func=cmd_index)


def cmd_index(args: argparse.Namespace) -> int:
    from explorer.analysis.index_store import build_index
    from explorer.workspace import Workspace

    path = build_index(Workspace.open(args.workspace), space=args.space, nlist=args.nlist, nprobe=args.nprobe)
    print(f"similarity index saved: {path}")
    return 0
