"""Fixtures for the scale tests: a small partitioned simulated survey with synthetic vectors, a 2-worker LocalCluster."""

from __future__ import annotations

import os

import pytest

from explorer.workspace import Workspace

N_OBJECTS = 5000


@pytest.fixture(scope="session")
def cluster_address():
    """A LocalCluster of 2 single-thread worker processes (started once for the whole session)."""
    import cloudpickle
    from distributed import LocalCluster

    from tests.scale import helpers

    cloudpickle.register_pickle_by_value(helpers)  # workers need not import the tests package
    os.environ.setdefault("TQDM_DISABLE", "1")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def sim_workspace(tmp_path_factory) -> Workspace:
    """5,000 simulated objects in 3 catalogue parts (on-demand cutouts and light curves) + 16-d synthetic vectors.

    Shared read-only by the tests that only read it; tests that add products copy it first (:func:`sim_copy`).
    """
    from explorer.data.simulated_survey import add_simulated_partitioned
    from explorer.data.synthetic_vectors import add_synthetic_embeddings

    ws = Workspace.create(tmp_path_factory.mktemp("scale") / "ws")
    add_simulated_partitioned(ws, N_OBJECTS, seed=3, part_rows=2000, progress=False)
    add_synthetic_embeddings(ws, dim=16, seed=1, dtype="float16", progress=False)
    return ws


@pytest.fixture
def sim_copy(sim_workspace, tmp_path) -> Workspace:
    """A private copy of :func:`sim_workspace` to add maps and scores to."""
    import shutil

    shutil.copytree(sim_workspace.path, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")
