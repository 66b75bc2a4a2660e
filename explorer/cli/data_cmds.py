"""Commands that bring data in and describe a workspace: simulate, ingest, demo, info."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from explorer.scale_cli import add_simulate_options
from explorer.workspace import Workspace

DEFAULT_DEMO = "explorer-demo"


def register(sub) -> None:
    """Add the ``simulate``, ``ingest``, ``demo`` and ``info`` commands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("simulate", help="create or extend a workspace with the simulated survey",
                       description="Create or extend a workspace with N simulated objects (galaxy cutouts, "
                       "variable-star and transient light curves, rare injected oddities) with ground truth.")
    p.add_argument("workspace", type=Path)
    p.add_argument("--n", type=int, required=True, help="number of objects to add")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--on-demand", action="store_true",
                   help="store only parameters and render cutouts when asked (default above 200,000 objects)")
    add_simulate_options(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("ingest", help="add a catalogue with cutouts and/or light curves from files",
                       description="Add objects from a catalogue (CSV/Parquet/FITS/VOTable/ECSV or a galaxy-datasets "
                       "table) with cutouts (FITS per object, FITS cube, PNG/JPEG, HDF5) and/or light curves "
                       "(one long-form table, or a folder with one file per object). All or nothing: on any error "
                       "the workspace is left as it was.")
    p.add_argument("workspace", type=Path)
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("--catalog-format", default=None)
    p.add_argument("--images", default=None, help="a folder, glob, FITS cube or HDF5 file")
    p.add_argument("--image-format", default=None, help="fits, fits-cube, png, hdf5 (guessed from the name)")
    p.add_argument("--image-set", default=None, help="name for this set of cutouts (default: catalogue name)")
    p.add_argument("--lightcurves", default=None, help="a long-form table or a folder of one file per object")
    p.add_argument("--lightcurve-format", default=None, help="long or folder (guessed)")
    p.add_argument("--id-column", default=None)
    p.add_argument("--skip-bad", action="store_true",
                   help="drop objects with unusable data (with a warning) instead of failing")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("demo", help="build the default workspace (FIRST + simulated) and serve it",
                       description="Build (or reuse) a workspace from the real FIRST radio-galaxy sample plus N "
                       "simulated objects, run every later step (embed, map, scores), then serve the app.")
    p.add_argument("--workspace", type=Path, default=Path(DEFAULT_DEMO))
    p.add_argument("--simulated", type=int, default=5000, help="simulated objects (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-serve", action="store_true", help="build only; do not start the app")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("info", help="what a workspace holds and what has been computed from what")
    p.add_argument("workspace", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)


@contextlib.contextmanager
def new_workspace_or_existing(path: Path) -> Iterator[Workspace]:
    """Open the workspace at ``path``, or create it; a workspace created here is removed again on failure."""
    existed = path.exists()
    ws = Workspace.open_or_create(path)
    created = not existed
    try:
        yield ws
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


def cmd_simulate(args) -> int:
    """``explorer simulate``: add simulated objects to a workspace (created if missing)."""
    from explorer.data.defaults import ON_DEMAND_THRESHOLD, add_simulated
    from explorer.data.simulated_survey import add_simulated_partitioned
    from explorer.scale_cli import after_simulate

    with new_workspace_or_existing(args.workspace) as ws:
        if args.n > ON_DEMAND_THRESHOLD:  # partitioned catalogue, nothing rendered: 10M objects in ~2 min
            added = add_simulated_partitioned(ws, args.n, seed=args.seed)
        else:
            added = add_simulated(ws, args.n, seed=args.seed, on_demand=args.on_demand or None)
        version = after_simulate(ws, args)
    print(f"added {added['objects']} simulated objects to {ws.path} "
          f"({added['image']} with cutouts, {added['lightcurve']} with light curves)")
    if version:
        print(f"synthetic embeddings {version} saved ({args.dim}-d, {args.dtype})")
    return 0


def cmd_ingest(args) -> int:
    """``explorer ingest``: add a catalogue with cutouts and/or light curves to a workspace."""
    from explorer.data.ingest import ingest_files

    with new_workspace_or_existing(args.workspace) as ws:
        added = ingest_files(ws, args.catalog, images=args.images, image_format=args.image_format,
                             lightcurves=args.lightcurves, lightcurve_format=args.lightcurve_format,
                             id_column=args.id_column, catalog_format=args.catalog_format,
                             image_set=args.image_set, skip_bad=args.skip_bad)
    print(f"added {added['objects']} objects to {ws.path} ({added['image']} with cutouts, "
          f"{added['lightcurve']} with light curves)")
    return 0


def cmd_demo(args) -> int:
    """``explorer demo``: build the demo workspace, then serve it unless ``--no-serve``."""
    from explorer.pipeline import build_demo

    ws = build_demo(args.workspace, n_simulated=args.simulated, seed=args.seed)
    print(f"demo workspace ready: {ws.path}")
    if args.no_serve:
        return 0
    from explorer.cli.serve_cmd import serve_workspace

    return serve_workspace(ws.path, port=args.port, address=args.address)


def cmd_info(args) -> int:
    """``explorer info``: print what a workspace holds (as text or ``--json``)."""
    from explorer.info import describe, format_info

    info = describe(Workspace.open(args.workspace))
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0
