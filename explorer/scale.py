"""Dask: connect to a cluster by address, or start a LocalCluster, for work that outgrows one process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from explorer.errors import ExplorerError


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator:
    """A ``distributed.Client``: ``"local"`` or ``"local:N"`` starts a LocalCluster of N single-thread workers
    (closed afterwards); anything else is a scheduler address such as ``tcp://10.0.0.5:8786``."""
    from distributed import Client, LocalCluster

    if scheduler.startswith("local"):
        n = int(scheduler.split(":", 1)[1]) if ":" in scheduler else 2
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise ExplorerError(f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start one with "
                            "`dask scheduler` or use --scheduler local") from err
    try:
        yield client
    finally:
        client.close()
