"""Dask: connect to a cluster by address or start a LocalCluster, and run one function over many partitions.

Work that outgrows one process (embedding, scoring and placing 10M objects on a map) is cut into partitions
that each read their own rows from the workspace (memory-mapped), so the same partition function runs in this
process or on Dask workers and gives the same result. :func:`run_partitions` is that one loop: in process, or
submitted to Dask with retries; a worker that dies mid-task (killed, out of memory) is replaced and its tasks
rerun by the scheduler, so the result is complete either way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from explorer.errors import ExplorerError
from explorer.progress import progress_bar

log = logging.getLogger(__name__)
RETRIES = 2


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator:
    """A ``distributed.Client``: ``"local"`` or ``"local:N"`` starts a LocalCluster of N single-thread workers
    (closed afterwards); anything else is a scheduler address such as ``tcp://10.0.0.5:8786``."""
    from distributed import Client, LocalCluster

    if scheduler.startswith("local"):
        try:
            n = int(scheduler.split(":", 1)[1]) if ":" in scheduler else 2
        except ValueError as err:
            raise ExplorerError(f"--scheduler {scheduler!r}: write local or local:N (N workers)") from err
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise ExplorerError(
            f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start one with "
            "`dask scheduler` or use --scheduler local"
        ) from err
    try:
        yield client
    finally:
        client.close()


def run_partitions(
    fn: Callable[..., Any],
    parts: Sequence[Any],
    *,
    shared: Any = None,
    scheduler: str | None = None,
    desc: str = "partitions",
    progress: bool = True,
    retries: int = RETRIES,
) -> list[Any]:
    """``[fn(shared, part) for part in parts]``, in this process or on a Dask cluster, with a progress bar.

    Parameters
    ----------
    fn : callable
        ``fn(shared, part)``; importable (module-level), since Dask workers import it by name.
    parts : sequence
        One small description per partition (e.g. a file path and a row range); results come back in this order.
    shared : object, optional
        Something every partition needs (a fitted model): shipped once, as the result of a task, so a worker lost
        while holding it is recovered like any other task.
    scheduler : str, optional
        ``None``: in process. ``"local"`` / ``"local:N"``: a LocalCluster. Else a scheduler address.
    retries : int
        Extra attempts per partition when ``fn`` raises; a task whose worker dies is rerun by the scheduler
        (up to ``distributed.scheduler.allowed-failures`` times) without counting against ``retries``.
    """
    parts = list(parts)
    if scheduler is None:
        with progress_bar(parts, desc=desc, unit="part", disable=not progress) as bar:
            return [fn(shared, p) for p in bar]
    with dask_client(scheduler) as client:
        return run_on_client(client, fn, parts, shared=shared, desc=desc, progress=progress, retries=retries)


def run_on_client(
    client,
    fn: Callable[..., Any],
    parts: Sequence[Any],
    *,
    shared: Any = None,
    desc: str = "partitions",
    progress: bool = True,
    retries: int = RETRIES,
) -> list[Any]:
    """:func:`run_partitions` on an open ``distributed.Client``."""
    from distributed import as_completed

    # Not scatter(): scattered data has no lineage, so a worker lost while holding the only copy would fail the
    # run. A task that returns the object can be recomputed by the scheduler wherever it is lost.
    shared_f = client.submit(_hold, shared, pure=False, retries=retries) if shared is not None else None
    futures = [
        client.submit(fn, shared_f, p, pure=False, retries=retries, key=f"{desc}-{i}-{id(parts)}")
        for i, p in enumerate(parts)
    ]
    position = {f.key: i for i, f in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    with progress_bar(total=len(futures), desc=f"{desc} (dask)", unit="part", disable=not progress) as bar:
        for fut in as_completed(futures):
            out[position[fut.key]] = fut.result()
            fut.release()
            bar.update(1)
    return out


def _hold(obj: Any) -> Any:
    """The object itself: lets Dask keep (and recompute after a worker loss) what every partition shares."""
    return obj


def add_scheduler_option(parser) -> None:
    """Add ``--scheduler`` to an argparse (sub)parser (``explorer embed`` / ``map`` / ``score``)."""
    parser.add_argument(
        "--scheduler",
        default=None,
        help="run partitions on Dask: a scheduler address (tcp://host:8786) or 'local[:N]' for a "
        "LocalCluster of N workers (default: in this process)",
    )
