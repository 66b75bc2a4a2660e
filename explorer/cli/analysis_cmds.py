"""Commands for the engine: map, score, select, similar."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from explorer.scale_cli import (
    add_map_options,
    add_score_options,
    map_kwargs,
    register_index_command,
    score_kwargs,
)
from explorer.workspace import Workspace


def register(sub) -> None:
    """Add the ``map``, ``score``, ``select`` and ``similar`` commands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("map", help="project the embeddings to 2-D (UMAP, or PCA as the fast fallback)")
    p.add_argument("workspace", type=Path)
    p.add_argument("--method", choices=("umap", "pca"), default="umap")
    p.add_argument("--space", default="joint", help="embedding space: joint, image or lightcurve")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n-neighbors", type=int, default=15)
    p.add_argument("--min-dist", type=float, default=0.1)
    add_map_options(p)
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("score", help="unsupervised anomaly scores of the embeddings (higher = more anomalous)")
    p.add_argument("workspace", type=Path)
    p.add_argument(
        "--method",
        choices=("knn", "iforest"),
        default=None,
        help="kNN distance (default: best measured on the simulated survey) or isolation forest",
    )
    p.add_argument("--space", default="joint")
    p.add_argument(
        "--embeddings-only",
        action="store_true",
        help="score the embedding space only: no per-modality scores, no light-curve variability and no cutout "
        "statistics (hot pixels, satellite trails, rings, companions, lensed arcs), which read every curve and cutout",
    )
    p.add_argument(
        "--artefacts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include the cutout statistics: artefacts and morphology (default: yes up to 1,000,000 cutouts)",
    )
    p.add_argument(
        "--variability",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include the light curves' variability statistics (default: yes up to 3,000,000 curves)",
    )
    add_score_options(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("select", help="ids inside a polygon on the current map")
    p.add_argument("workspace", type=Path)
    p.add_argument("--polygon", required=True, help='vertices in map coordinates: "x,y x,y x,y ..."')
    p.add_argument("--save", default=None, help="save the selection under this name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("similar", help="objects most like some objects and unlike others")
    p.add_argument("workspace", type=Path)
    p.add_argument("ids", nargs="+", help="object ids to find more of")
    p.add_argument("--not", dest="negative", nargs="+", default=[], help="object ids to steer away from")
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--space", default="joint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    register_index_command(sub)


def cmd_map(args) -> int:
    """``explorer map``: project the embeddings to 2-D and save the map as a new version."""
    from explorer.analysis.workspace_ops import map_workspace

    ws = Workspace.open(args.workspace)
    version = map_workspace(ws, method=args.method, space=args.space, random_state=args.seed,
                            n_neighbors=args.n_neighbors, min_dist=args.min_dist, **map_kwargs(args))
    print(f"map {version} ({args.method}) saved")
    return 0


def cmd_score(args) -> int:
    """``explorer score``: compute and save anomaly scores of the embeddings."""
    from explorer.analysis.workspace_ops import score_workspace

    ws = Workspace.open(args.workspace)
    version = score_workspace(ws, method=args.method, space=args.space, detectors=not args.embeddings_only,
                              artefacts=args.artefacts, variability=args.variability, **score_kwargs(args))
    meta = ws.versions("scores")[version]
    detectors = meta.get("detectors") or [f"{meta['method']}_{meta.get('space', 'joint')}"]
    print(f"anomaly scores {version} saved ({', '.join(detectors)})")
    return 0


def cmd_select(args) -> int:
    """``explorer select``: print (and optionally save) the ids inside a polygon on the current map."""
    from explorer.analysis.workspace_ops import parse_polygon, select

    ws = Workspace.open(args.workspace)
    ids = select(ws, parse_polygon(args.polygon), save=args.save)
    if args.json:
        print(json.dumps({"map": ws.current("maps"), "n": len(ids), "ids": [str(i) for i in ids]}))
    else:
        print("\n".join(map(str, ids)))
        if args.save:
            print(f"# saved {len(ids)} ids as selection {args.save!r}")
    return 0


def cmd_similar(args) -> int:
    """``explorer similar``: print the ``k`` objects most like the given ids and unlike the ``--not`` ids."""
    from explorer.analysis.workspace_ops import similar

    ws = Workspace.open(args.workspace)
    result = similar(ws, args.ids, args.negative, k=args.k, space=args.space)
    if args.json:
        print(json.dumps({"query": args.ids, "not": args.negative,
                          "results": [{"id": str(r.id), "similarity": float(r.similarity)}
                                      for r in result.itertuples()]}))
    else:
        for r in result.itertuples():
            print(f"{r.id}\t{r.similarity:.4f}")
    return 0
