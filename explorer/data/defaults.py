"""The embedded default data: the real FIRST radio-galaxy sample and the simulated survey, added to a workspace."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.data.first import CITATION, load_first
from explorer.data.ingest import add_objects
from explorer.data.readers_images import ImageInput
from explorer.workspace import Workspace

FIRST_SOURCE = "first"
SIM_SOURCE = "simulated"
SIM_IMAGE_SET = "simulated"
ON_DEMAND_THRESHOLD = 200_000


def add_first(ws: Workspace, limit: int | None = None, progress: bool = True) -> dict:
    """Add the FIRST sample (2,158 radio galaxies, 300×300 px, 1.8″/px, classes FRI/FRII/Compact/Bent)."""
    sample = load_first(limit=limit)
    table = sample.table.assign(source=FIRST_SOURCE, survey="FIRST")
    images = sample.images

    def read(a: int, b: int) -> np.ndarray:
        return (images[a:b, None].astype(np.float32) / 255.0)

    inp = ImageInput(table["id"].tolist(), (1, *images.shape[1:]), ("1.4GHz",), read, "firstgalaxydata", len(table))
    return add_objects(ws, table, source=FIRST_SOURCE, images=inp, image_set="first",
                       provenance={"dataset": "firstgalaxydata 0.2.1 (galaxy_data.zip)", "citation": CITATION,
                                   "pixel_scale_arcsec": 1.8, "units": "PNG intensity scaled to [0, 1]"},
                       progress=progress)


def simulated_count(ws: Workspace) -> int:
    """How many simulated objects the workspace holds (new ones continue the numbering)."""
    return int(sum(s.get("objects", 0) for s in ws.manifest["sources"] if s["source"] == SIM_SOURCE))


def add_simulated(ws: Workspace, n: int, seed: int = 0, on_demand: bool | None = None,
                  progress: bool = True) -> dict:
    """Add ``n`` simulated objects (continuing any already there), with ground truth in ``class``/``is_oddity``.

    Cutouts are stored as arrays up to ``ON_DEMAND_THRESHOLD`` objects; above it (or with ``on_demand=True``)
    only their parameters are stored and they are rendered when asked for.
    """
    from explorer.data import simulate

    start = simulated_count(ws)
    params = simulate.simulate_parameters(n, seed=seed, start=start)
    on_demand = n > ON_DEMAND_THRESHOLD if on_demand is None else on_demand
    table = params.copy()
    table["source"] = SIM_SOURCE
    table["survey"] = "simulated"
    img_params = params[params["has_image"].to_numpy()].reset_index(drop=True)
    images = None
    if len(img_params) and on_demand:
        from explorer.data.simulated_store import OnDemandImages

        images = OnDemandImages(img_params, seed, 64, simulate.IMAGE_BANDS)
    elif len(img_params):
        size = 64

        def read(a: int, b: int) -> np.ndarray:
            return simulate.render_cutouts(img_params.iloc[a:b], seed=seed, size=size)

        images = ImageInput(img_params["id"].tolist(), (len(simulate.IMAGE_BANDS), size, size),
                            tuple(simulate.IMAGE_BANDS), read, "simulated survey", len(img_params))
    lc_params = params[params["has_lightcurve"].to_numpy()]
    lightcurves = _render_lightcurves(simulate, lc_params, seed, progress) if len(lc_params) else None
    provenance = {"simulator": "explorer.data.simulate", "seed": seed, "start": start, "n": n}
    added = add_objects(ws, table, source=SIM_SOURCE, images=images, lightcurves=lightcurves,
                        image_set=SIM_IMAGE_SET, provenance=provenance, progress=progress)
    return added


def _render_lightcurves(simulate, params: pd.DataFrame, seed: int, progress: bool) -> pd.DataFrame:
    from explorer.progress import progress_bar

    chunk = 4096
    with progress_bar(range(0, len(params), chunk), desc="light curves", unit="chunk",
                      disable=not progress or len(params) <= chunk) as bar:
        parts = [simulate.render_lightcurves(params.iloc[a : a + chunk], seed=seed) for a in bar]
    return pd.concat(parts, ignore_index=True)
