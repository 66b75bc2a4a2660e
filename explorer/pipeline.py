"""The steps after data: embed, map, score; and the demo workspace that runs them all."""

from __future__ import annotations

import logging
from pathlib import Path

from explorer.workspace import Workspace

log = logging.getLogger(__name__)


def build_demo(path: str | Path, n_simulated: int = 5000, seed: int = 0, progress: bool = True) -> Workspace:
    """Build (or reuse) the default workspace: the FIRST sample plus ``n_simulated`` simulated objects.

    Reuses what exists: FIRST is added once; simulated objects are added only up to ``n_simulated``; products
    are computed only when missing or out of date.
    """
    from explorer.data.defaults import FIRST_SOURCE, add_first, add_simulated, simulated_count

    ws = Workspace.open_or_create(path)
    if not any(s["source"] == FIRST_SOURCE for s in ws.manifest["sources"]):
        log.info("adding the FIRST radio-galaxy sample (2,158 objects)")
        add_first(ws, progress=progress)
    have = simulated_count(ws)
    if have < n_simulated:
        log.info("simulating %d objects", n_simulated - have)
        add_simulated(ws, n_simulated - have, seed=seed, progress=progress)
    run_steps(ws, progress=progress)
    return ws


def run_steps(ws: Workspace, progress: bool = True, force: bool = False) -> None:
    """Compute whatever is missing or stale: embeddings, then a map, then anomaly scores."""
    from explorer.analysis.workspace_ops import map_workspace, score_workspace
    from explorer.models.embed import embed_workspace, embeddings_stale

    if force or embeddings_stale(ws):
        embed_workspace(ws, progress=progress)
    emb = ws.current("embeddings")
    current_map = ws.current("maps")
    if force or current_map is None or ws.versions("maps")[current_map].get("embeddings") != emb:
        map_workspace(ws, progress=progress)
    current_scores = ws.current("scores")
    if force or current_scores is None or ws.versions("scores")[current_scores].get("embeddings") != emb:
        score_workspace(ws, progress=progress)
