"""Benchmark of the label store: add() latency, current() at scale, FULL vs NORMAL sync, and a CSV rewrite per click.

Run::

    python benchmarks/bench_labels.py                    # 10k, 100k and 1M events (about a minute)
    python benchmarks/bench_labels.py --sizes 10000,100000 --json labels.json

Every case runs in a fresh temporary folder on the same disk. "csv rewrite" is the alternative other tools
use (Astronomaly keeps labels as a column and rewrites the whole CSV on every click): one click = set one
label in a DataFrame of all objects and write it out again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from explorer.labels import LabelStore
from explorer.labels.frames import CURRENT_COLUMNS, to_frame
from explorer.labels.schema import CURRENT_FROM_HISTORY_SQL


def _times(action: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def _row(section: str, case: str, n: int, times_ms: list[float]) -> dict:
    ordered = sorted(times_ms)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"section": section, "case": case, "n": n, "median_ms": statistics.median(times_ms), "p95_ms": p95}


def _store(folder: Path, synchronous: str = "FULL") -> LabelStore:
    store = LabelStore(folder / f"labels-{synchronous}-{random.random()}.sqlite")
    if synchronous != "FULL":  # benchmark only: the store always uses FULL
        store._connection().execute(f"PRAGMA synchronous={synchronous}")
    return store


def bench_add(folder: Path, clicks: int) -> list[dict]:
    """Single-click latency with synchronous FULL vs NORMAL, and bulk adds of 1k and 100k ids."""
    rows = []
    for sync in ("FULL", "NORMAL"):
        with _store(folder, sync) as store:
            rows += _bench_add_one(store, sync, clicks)
    return rows


def _bench_add_one(store: LabelStore, sync: str, clicks: int) -> list[dict]:
    ids = iter(range(10**9))
    times = _times(lambda: store.add([f"J{next(ids)}"], "anomaly", user="bench"), clicks)
    rows = [_row("add", f"single click, synchronous={sync}", 1, times)]
    for size, repeat in ((1_000, 5), (100_000, 2)):
        times = []
        for _ in range(repeat):
            batch = [f"B{next(ids)}" for _ in range(size)]  # built outside the timed call
            times += _times(lambda b=batch: store.add(b, "normal", user="bench"), 1)
        rows.append(_row("add", f"bulk, synchronous={sync}", size, times))
    return rows


def _fill(store: LabelStore, n_events: int, progress: bool) -> int:
    """Write ``n_events`` events over 60% as many objects (a first pass, then relabels); return n objects."""
    rng = np.random.default_rng(0)
    n_objects = max(1, int(0.6 * n_events))
    labels = ("anomaly", "normal", "artefact", "lens")
    chunk = 100_000
    written = 0
    with tqdm(total=n_events, desc=f"fill {n_events:,}", disable=not progress, leave=False) as bar:
        while written < n_events:
            size = min(chunk, n_events - written)
            if written < n_objects:
                idx = np.arange(written, min(written + size, n_objects))
            else:
                idx = rng.choice(n_objects, size=size, replace=False)
            store.add([f"J{i:09d}" for i in idx], labels[written // chunk % 4], user="bench")
            written += len(idx)
            bar.update(len(idx))
    return n_objects


def bench_reads(folder: Path, sizes: list[int], clicks: int, progress: bool) -> list[dict]:
    """current() from the materialised table vs derived from the history, and other reads, at each size."""
    rows = []
    for n_events in sizes:
        with _store(folder) as store:
            n_objects = _fill(store, n_events, progress)
            rows += _bench_reads_one(store, n_events, n_objects, clicks)
    return rows


def _bench_reads_one(store: LabelStore, n: int, n_objects: int, clicks: int) -> list[dict]:
    conn = store._connection()
    repeat = 3 if n < 1_000_000 else 2
    table_sql = "SELECT * FROM current_labels WHERE label IS NOT NULL ORDER BY event_id"
    last = store.last_event_id()
    some = [f"J{i:09d}" for i in range(0, n_objects, max(1, n_objects // 1000))][:1000]
    counter = iter(range(10**9))
    rows = [
        _row("current", "current() from materialised table", n, _times(store.current, repeat)),
        _row(
            "current",
            "current() derived from history (view)",
            n,
            _times(lambda: to_frame(_derived(conn), CURRENT_COLUMNS), repeat),
        ),
        _row("current", "SQL only, table", n, _times(lambda: conn.execute(table_sql).fetchall(), repeat)),
        _row(
            "current",
            "SQL only, view",
            n,
            _times(lambda: conn.execute(CURRENT_FROM_HISTORY_SQL).fetchall(), repeat),
        ),
        _row("reads", "counts()", n, _times(store.counts, repeat)),
        _row("reads", "changed_since(last - 100)", n, _times(lambda: store.changed_since(last - 100), 5)),
        _row("reads", "label_of(1000 ids)", n, _times(lambda: store.label_of(some), 5)),
        _row(
            "add",
            "single click into a store of n events",
            n,
            _times(lambda: store.add([f"new{next(counter)}"], "anomaly", user="bench"), clicks),
        ),
        _row("undo", "undo of one click", n, _times(lambda: store.undo(user="bench"), 20)),
    ]
    size_mb = sum(p.stat().st_size for p in store.path.parent.glob(store.path.name + "*")) / 1e6
    rows.append(
        {"section": "disk", "case": "database + WAL size", "n": n, "median_ms": size_mb, "p95_ms": size_mb}
    )
    return rows


def _derived(conn) -> list[tuple]:
    """The view's rows in the column order of current()."""
    return [
        (oid, lab, usr, t, mv, mp, note, eid)
        for eid, oid, lab, usr, t, mv, mp, note in conn.execute(CURRENT_FROM_HISTORY_SQL)
    ]


def bench_csv(folder: Path, sizes: list[int], clicks: int) -> list[dict]:
    """One click = set one label, rewrite the whole CSV (plain, and made crash-safe with fsync + rename)."""
    rows = []
    for n_labels in sizes:
        rows += _bench_csv_one(folder / f"labels-{n_labels}.csv", n_labels, clicks)
    return rows


def _bench_csv_one(path: Path, n_labels: int, clicks: int) -> list[dict]:
    n_objects = max(1, int(0.6 * n_labels))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"J{i:09d}" for i in range(n_objects)], "score": rng.random(n_objects)})
    frame["human_label"] = -1
    reps = clicks if n_objects <= 100_000 else 3

    def click(safe: bool) -> None:
        frame.loc[random.randrange(n_objects), "human_label"] = 1
        target = path.with_suffix(".tmp") if safe else path
        with open(target, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
            if safe:
                handle.flush()
                os.fsync(handle.fileno())
        if safe:
            os.replace(target, path)

    return [
        _row(
            "add", "csv rewrite per click (Astronomaly-style)", n_labels, _times(lambda: click(False), reps)
        ),
        _row("add", "csv rewrite per click, fsync + rename", n_labels, _times(lambda: click(True), reps)),
    ]


def print_table(rows: list[dict]) -> None:
    print(f"{'section':<8} {'case':<44} {'n':>10} {'median':>10} {'p95':>10}")
    for r in rows:
        unit = "MB" if r["section"] == "disk" else "ms"
        print(
            f"{r['section']:<8} {r['case']:<44} {r['n']:>10,} {r['median_ms']:>8.3f}{unit} {r['p95_ms']:>8.3f}{unit}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="event counts for current() and csv")
    parser.add_argument("--clicks", type=int, default=200, help="single clicks timed per case")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder for the temporary files (default: tmp)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        rows = bench_add(folder, args.clicks)
        rows += bench_reads(folder, sizes, args.clicks, not args.no_progress)
        rows += bench_csv(folder, sizes, min(args.clicks, 20))
    rows.sort(key=lambda r: (r["section"], r["n"], r["case"]))
    print_table(rows)
    if args.json:
        meta = {
            "sqlite": __import__("sqlite3").sqlite_version,
            "pandas": pd.__version__,
            "cpus": os.cpu_count(),
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
