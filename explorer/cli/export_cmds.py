"""Commands that take objects out of a workspace: export (tables, cutouts, training sets) and samp (send, listen)."""

from __future__ import annotations

import argparse
from pathlib import Path

from explorer.workspace import Workspace


def _add_criteria(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which objects (different kinds intersect; several --label are a union)")
    g.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="L",
        help="objects whose current label is L (repeat for several labels)",
    )
    g.add_argument("--selection", default=None, metavar="NAME", help="a saved selection of the workspace")
    g.add_argument("--ids", nargs="+", default=None, metavar="ID", help="these object ids")
    g.add_argument("--all", action="store_true", help="every object of the workspace")


def register(sub) -> None:
    """Add the ``export`` and ``samp`` (``send``, ``listen``) commands to ``sub`` (argparse subparsers)."""
    from explorer.export_formats import writers
    from explorer.export_training import TRAINING_FORMATS

    p = sub.add_parser(
        "export",
        help="write labelled objects as CSV, Parquet, FITS, VOTable, ECSV, or a training set",
        description="Write the chosen objects with their labels, anomaly scores, map positions and catalogue "
        "columns (optionally cutouts, light curves and embedding vectors), with the versions they came from. "
        f"Table formats: {', '.join(writers())}. With --training-set: {', '.join(TRAINING_FORMATS)}. "
        "Nothing is written if anything fails; existing files are kept unless --overwrite.",
    )
    p.add_argument("workspace", type=Path)
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="output file (a folder with --training-set)"
    )
    p.add_argument("--format", default=None, help="format name (default: from the output's ending)")
    _add_criteria(p)
    p.add_argument(
        "--with-cutouts",
        action="store_true",
        help="also write cutouts (FITS: CUTOUTS cubes in the file; others: sibling <out>_cutouts.fits)",
    )
    p.add_argument(
        "--with-lightcurves",
        action="store_true",
        help="also write light curves (FITS: LIGHTCURVES table; others: sibling <out>_lightcurves.*)",
    )
    p.add_argument(
        "--embeddings", action="store_true", help="add emb_0 ... emb_{d-1} from the joint embedding"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    t = p.add_argument_group("training sets")
    t.add_argument(
        "--training-set",
        action="store_true",
        help="write a training-set folder (galaxy-datasets, npz or hdf5) instead of a table; "
        "without --label/--selection/--ids/--all it holds every labelled object with a cutout",
    )
    t.add_argument(
        "--image-format",
        default="png",
        choices=("png", "fits"),
        help="image files of a galaxy-datasets folder (default png, 8-bit asinh stretch)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "samp",
        help="talk to TOPCAT / Aladin over SAMP",
        description="Send objects to SAMP applications (TOPCAT, Aladin) running on this machine, "
        "or receive a row selection from them as a saved selection.",
    )
    samp_sub = p.add_subparsers(dest="samp_command", metavar="ACTION", required=True)
    s = samp_sub.add_parser("send", help="send objects as a table (table.load.votable)")
    s.add_argument("workspace", type=Path)
    _add_criteria(s)
    s.add_argument("--name", default=None, help="table name shown by the receiver")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for receivers to confirm")
    s.set_defaults(func=cmd_samp_send)
    s = samp_sub.add_parser("listen", help="wait for a row selection (table.select.rowList) and save it")
    s.add_argument("workspace", type=Path)
    s.add_argument("--save", required=True, metavar="NAME", help="name of the saved selection to write")
    s.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    s.add_argument("--overwrite", action="store_true", help="replace a saved selection of that name")
    s.set_defaults(func=cmd_samp_listen)


def _criteria(args) -> dict:
    return {"ids": args.ids, "labels": args.label, "selection": args.selection, "all": args.all}


def cmd_export(args) -> int:
    """``explorer export``: write the chosen objects as a table file or (``--training-set``) a folder."""
    from explorer.errors import DataError

    ws = Workspace.open(args.workspace)
    if args.training_set:
        from explorer.export_training import export_training_set

        if args.with_cutouts or args.with_lightcurves or args.embeddings:
            raise DataError(
                "--training-set writes images and labels only; leave out --with-cutouts, "
                "--with-lightcurves and --embeddings"
            )
        crit = _criteria(args)
        out = export_training_set(
            ws,
            args.output,
            args.format or "galaxy-datasets",
            **crit,
            image_format=args.image_format,
            overwrite=args.overwrite,
        )
        print(f"wrote training set {out}")
        return 0
    from explorer.export import export_subset

    out = export_subset(
        ws,
        args.output,
        args.format,
        **_criteria(args),
        with_cutouts=args.with_cutouts,
        with_lightcurves=args.with_lightcurves,
        embeddings=args.embeddings,
        overwrite=args.overwrite,
    )
    print(f"wrote {out}")
    return 0


def _bridge(ws: Workspace, timeout: float):
    from explorer.samp import SampBridge

    return SampBridge(ws, folder=ws.path / "samp", timeout=timeout)


def cmd_samp_send(args) -> int:
    """``explorer samp send``: send the chosen objects as a table to SAMP applications."""
    from explorer.export import resolve_subset

    ws = Workspace.open(args.workspace)
    ids, query = resolve_subset(ws, **_criteria(args))
    with _bridge(ws, args.timeout) as bridge:
        receivers = bridge.clients("table.load.votable")
        sent = bridge.send_table(ids, name=args.name or query)
    print(f"sent {len(ids)} objects ({query}) to {', '.join(receivers.values())} as {sent.url}")
    return 0


def cmd_samp_listen(args) -> int:
    """``explorer samp listen``: wait for a row selection from a SAMP application and save it."""
    from explorer.errors import DataError
    from explorer.samp import listen_for_selection, save_selection

    ws = Workspace.open(args.workspace)
    path = ws.selection_path(args.save)
    if path.exists() and not args.overwrite:
        raise DataError(
            f"saved selection {args.save!r} exists already ({path}); pass --overwrite or another name"
        )
    with _bridge(ws, 10.0) as bridge:
        print(f"listening for a row selection from TOPCAT/Aladin (up to {args.timeout:g} s)...", flush=True)
        ids = listen_for_selection(bridge, args.timeout)
    path = save_selection(ws, args.save, ids, source="samp", overwrite=args.overwrite)
    print(f"saved selection {args.save!r} ({len(ids)} objects) to {path}")
    return 0
