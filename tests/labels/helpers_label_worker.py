"""A labelling process for the durability tests: writes labels to a store and prints each id once add() returned.

Run as a script (the tests start it with ``subprocess``)::

    python helpers_label_worker.py DB NAME --mode fixed --count 1000   # label 1,000 distinct ids, print DONE
    python helpers_label_worker.py DB NAME --mode loop [--count N]     # label until killed (or N labels)

SIGTERM stops it cleanly after the call in progress (it prints DONE and exits 0); SIGKILL is the crash.

Output, one line each, flushed: ``PLAN <batch-tag> <n>`` before a call, then ``OK <id>`` for each id of that
call after ``add`` returned (confirmed), and ``DONE <n>`` at a normal end. Ids are
``<NAME>/<batch-tag>/<k>/é✓<b>`` so the test can group them by call and check each is all-or-nothing.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys

from explorer.labels import LabelStore

LABELS = ("anomaly", "normal", "artefact", "Merger ring")


def _batch_sizes(rng: random.Random, mode: str, count: int | None):
    """Sizes of successive add() calls: mostly single clicks, sometimes a bulk selection."""
    done = 0
    while count is None or done < count:
        size = 1 if rng.random() < 0.7 else rng.choice((5, 20, 50, 200))
        if count is not None:
            size = min(size, count - done)
        done += size
        yield size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("name")
    parser.add_argument("--mode", choices=("fixed", "loop"), default="fixed")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    out = sys.stdout
    total = 0
    stop = []  # SIGTERM asks for a clean stop after the call in progress
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with LabelStore(args.db, timeout=60) as store:
        for tag, size in enumerate(_batch_sizes(rng, args.mode, args.count)):
            if stop:
                break
            ids = [f"{args.name}/b{tag:06d}/{k}/é✓<b>" for k in range(size)]
            label = LABELS[tag % len(LABELS)]
            out.write(f"PLAN b{tag:06d} {size}\n")
            out.flush()
            store.add(ids, label, user=args.name, map_version="map-0001", session=args.name)
            out.write("".join(f"OK {oid}\n" for oid in ids))
            out.flush()
            total += size
    out.write(f"DONE {total}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
