"""Commands for the label store: label objects, list labels, undo."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from explorer.workspace import Workspace


def default_user() -> str:
    """Who is labelling when no ``--user`` is given: the login name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def register(sub) -> None:
    """Add the ``label`` and ``labels`` commands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("label", help="label objects (anomaly, normal, artefact or any class name)",
                       description="Give objects a label. The label store keeps every event (who, when, from which "
                       "model and map version); nothing is ever overwritten or deleted. Ids may also come on "
                       "standard input, one per line (pass - as the only id).")
    p.add_argument("workspace", type=Path)
    p.add_argument("ids", nargs="*", help="object ids, or - to read them from standard input")
    p.add_argument("--as", dest="label", help="the label (anomaly, normal, artefact, or a class name)")
    p.add_argument("--remove", action="store_true", help="unlabel the objects instead")
    p.add_argument("--undo", action="store_true", help="undo your most recent labelling")
    p.add_argument("--selection", default=None, help="label every object of a saved selection")
    p.add_argument("--user", default=None, help="who labels (default: your login name)")
    p.add_argument("--note", default=None)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("labels", help="list the current labels (or the full history)")
    p.add_argument("workspace", type=Path)
    p.add_argument("--history", action="store_true", help="every event, oldest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels)


def cmd_label(args) -> int:
    """``explorer label``: label or unlabel objects, or undo the user's last labelling."""
    from explorer.errors import DataError

    ws = Workspace.open(args.workspace)
    user = args.user or default_user()
    with ws.labels() as store:
        if args.undo:
            ids = store.undo(user=user)
            print(f"undid the last labelling by {user}: {len(ids)} objects restored")
            return 0
        ids = [line.strip() for line in sys.stdin if line.strip()] if args.ids == ["-"] else list(args.ids)
        if args.selection:
            from explorer.analysis.workspace_ops import load_selection_ids

            ids += [str(i) for i in load_selection_ids(ws, args.selection)]
        if not ids:
            raise DataError("no objects to label; give ids, - for standard input, or --selection NAME")
        known = ws.catalog.contains(ids)
        if not known.all():
            bad = [i for i, k in zip(ids, known, strict=True) if not k]
            raise DataError(f"unknown object id {bad[0]!r} ({len(bad)} unknown); nothing was labelled")
        versions = {"model_version": ws.current("embeddings"), "map_version": ws.current("maps")}
        if args.remove:
            store.remove(ids, user=user, note=args.note, **versions)
            print(f"unlabelled {len(set(ids))} objects")
        else:
            if not args.label:
                raise DataError("say which label with --as LABEL (or --remove / --undo)")
            store.add(ids, args.label, user=user, note=args.note, session="cli", **versions)
            print(f"labelled {len(set(ids))} objects as {args.label!r} (by {user})")
    return 0


def cmd_labels(args) -> int:
    """``explorer labels``: print the current labels, or the full history with ``--history``."""
    ws = Workspace.open(args.workspace)
    if not ws.labels_path.exists():
        print("[]" if args.json else "no labels yet")
        return 0
    with ws.labels() as store:
        table = store.history() if args.history else store.current()
    if args.json:
        table = table.astype({c: str for c in table.columns if str(table[c].dtype).startswith("datetime")})
        print(json.dumps(json.loads(table.to_json(orient="records", date_format="iso")), ensure_ascii=False))
    else:
        print(table.to_string(index=False) if len(table) else "no labels yet")
    return 0
