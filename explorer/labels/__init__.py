"""The label store: an append-only SQLite history of which object got which class, from whom, when, and why.

A crash must never lose a label, and a click must never rewrite a file of all labels. Labels live in one
SQLite file per workspace (``labels.sqlite``, WAL mode); each call appends events in one transaction that
is on disk before the call returns. See :class:`LabelStore` for the API, :mod:`explorer.labels.schema` for
the tables.

Choices, measured with ``benchmarks/bench_labels.py`` (2 shared cores, ext4 on a VM disk, fsync ~4 ms):

* ``synchronous=FULL``: a single-click ``add`` costs ~4 ms (one fsync of the WAL) against ~0.07 ms with
  NORMAL; bulk adds are CPU-bound (1k ids ~20-45 ms, 100k ~1-4 s under load, FULL and NORMAL within
  noise). In WAL mode NORMAL already survives a killed process, but may lose the last commits on power
  loss or a kernel crash; 4 ms per click is invisible to a person, so FULL (plus ``fullfsync`` on macOS).
* ``current()`` reads a table maintained in the same transaction as the events rather than a view over
  the history: 0.30 s vs 0.54 s at 100k events and 2.7 s vs 6.3 s at 1M (SQL alone 0.15 vs 0.30 s and
  2.1 vs 5.4 s); :meth:`LabelStore.verify` checks the table against the history.
* Against rewriting a CSV of all labels on every click (Astronomaly): 44 ms per click at 10k labels,
  210 ms at 100k and 2.1 s at 1M, growing with the catalogue and truncated by a crash mid-write, while a
  click here stays at one fsync at every size.
"""

from explorer.labels.names import BUILTIN_LABELS, Label, normalise_label
from explorer.labels.schema import LABELS_FILENAME, SCHEMA_VERSION
from explorer.labels.store import LabelStore

__all__ = ["BUILTIN_LABELS", "LABELS_FILENAME", "SCHEMA_VERSION", "Label", "LabelStore", "normalise_label"]
