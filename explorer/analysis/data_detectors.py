"""The detectors that read the objects themselves, not their embeddings: cutout artefacts and morphology,
light-curve variability.

:func:`score_workspace <explorer.analysis.workspace_ops.score_workspace>` combines them with the kNN scores of
the embeddings. Both depend on the catalogue only, so a re-score on the same catalogue (after a fine-tune) takes
them from the current scores (:func:`saved_statistics`) instead of reading every cutout and curve again.

* :func:`cutout_statistics`: ``hot_pixel`` and ``trail`` (:mod:`explorer.analysis.artefacts`), ``ring``,
  ``companion`` and ``arc`` (:mod:`explorer.analysis.morphology`) of every cutout, in one read, in parts, in process or on
  Dask;
* :func:`lightcurve_variability`: ``variability``, how far each curve's variability statistics stand from
  everyone else's (:mod:`explorer.analysis.variability`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.errors import DataError
from explorer.workspace import Workspace

log = logging.getLogger(__name__)

#: Above this many cutouts the default score leaves the cutout statistics out (they read every cutout: ~5 ms
#: each on 2 cores since session 10's trail thirds, ~80 min at 1M); ``artefacts=True`` (``explorer score
#: --artefacts``) computes them anyway.
ARTEFACT_LIMIT = 1_000_000
#: Above this many light curves the default score leaves the variability statistics out (~0.3 ms per curve of
#: 200 points with reading, 17 min at 3M); ``variability=True`` (``explorer score --variability``) forces them.
VARIABILITY_LIMIT = 3_000_000
#: Light curves read and measured at once.
CURVE_CHUNK = 20_000
VARIABILITY = "variability"


def wanted(kind: str, count: int, limit: int, asked: bool | None, flag: str) -> bool:
    """Whether a detector reading ``count`` objects runs: ``asked`` if given, else up to ``limit`` (with a
    logged note naming the ``flag`` that forces it when it is left out)."""
    if asked is not None:
        return bool(asked and count)
    if count > limit:
        log.warning("%s %s: left out of the default score (more than %s); `explorer score WS %s` computes them",
                    f"{count:,}", kind, f"{limit:,}", flag)
        return False
    return count > 0


def definitions() -> dict[str, str]:
    """What each statistic here is, as a string that changes when its definition does (saved with the scores, so
    that a re-score never reuses statistics measured the old way)."""
    from explorer.analysis import artefacts, morphology, variability

    image = (f"{','.join(artefacts.FEATURES)}: kernel {artefacts.KERNEL}, clip {artefacts.CLIP}, "
             f"mismatch {artefacts.MISMATCH}, {artefacts.N_ANGLES} angles, sources masked above "
             f"{artefacts.SOURCE_MASK}; hot pixel above the other bands; trail: weakest third over its sky pixels")
    m = morphology
    shape = (f"{','.join(m.FEATURES)}: smooth {m.SMOOTH}, centroid {m.CENTRE}; ring: ridge quantile {m.ALL_ROUND}, "
             f"contrast +{m.RING_SOFT}, wobble {m.WOBBLE}, step {m.STEP}, reach {m.REACH}, {m.N_ANGLES} angles, "
             f"shapes {m.CORE}/{m.OUTER}/circle; companion: {m.NEAR}-{m.FAR} px, aperture {m.APERTURE}, mask "
             f"{m.MASK}, colour {m.COLOUR_MATCH}/{m.TAIL_COLOUR_MATCH}, fainter of the pair, floor {m.FLOOR}; arc: "
             f"{m.ARC_NEAR}-{m.FAR} px by {m.ARC_STEP}, {m.ARC_ANGLES} angles, snr {m.ARC_SNR}, box {m.ARC_BOX}, "
             f"side {m.ARC_SIDE}, colour {m.ARC_COLOUR}^{m.ARC_COLOUR_POWER}, floor {m.ARC_FLOOR}")
    curves = (f"kNN over {','.join(variability.STATISTICS)} per band and {','.join(variability.CURVE_STATISTICS)} "
              f"(>= {variability.EPISODE_INSIDE} in, {variability.EPISODE_OUTSIDE} each side), clip {variability.CLIP}")
    return {**dict.fromkeys(artefacts.FEATURES, image), **dict.fromkeys(m.FEATURES, shape), VARIABILITY: curves}


def cutout_features() -> tuple[str, ...]:
    """The statistics :func:`cutout_statistics` measures on every cutout, in its column order."""
    from explorer.analysis import artefacts, morphology

    return (*artefacts.FEATURES, *morphology.FEATURES)


def saved_statistics(ws: Workspace, names: Sequence[str], random_state: int) -> pd.DataFrame | None:
    """The columns ``names`` of the current scores, by id, when those scores were made on the same catalogue with
    the same ``random_state`` and the same :func:`definitions` (these statistics depend on the cutouts and curves
    only, not on the embeddings). None when there are none to reuse."""
    from explorer.errors import ExplorerError

    try:
        table, meta = ws.scores(columns=("id", *names))
    except ExplorerError:
        return None
    now = definitions()
    same = (meta.get("catalog") == ws.manifest.get("catalog")
            and meta.get("params", {}).get("random_state") == random_state
            and all(meta.get("definitions", {}).get(name) == now[name] for name in names))
    if not same or not set(names) <= set(table.columns):
        return None
    return table.set_index(table["id"].astype(str))[list(names)].dropna(how="all")


def cutout_statistics(ws: Workspace, progress: bool = True, random_state: int = 0, scheduler: str | None = None,
                      part_size: int = 4096) -> pd.DataFrame:
    """:func:`cutout_features` of every cutout, indexed by id: ``hot_pixel`` and ``trail``
    (:class:`~explorer.analysis.artefacts.CutoutArtefacts` fitted per image set on a seeded sample of its
    cutouts), ``ring``, ``companion`` and ``arc`` (:func:`~explorer.analysis.morphology.morphology_statistics`); empty
    without cutouts.

    Cutouts are read and measured in parts of ``part_size``, in process or on Dask (``scheduler``), with the
    same results; an image set whose cutouts have no measurable noise is skipped with a logged reason.
    """
    from explorer.analysis.artefacts import CutoutArtefacts
    from explorer.scale import run_partitions

    cat = ws.catalog
    frames = []
    for name, store in cat.images.items():
        ids = cat.image_set_ids(name)
        if len(ids) == 0:
            continue
        detector = CutoutArtefacts(random_state=random_state)
        sample = np.random.default_rng(random_state).choice(len(ids), min(len(ids), detector.fit_cutouts),
                                                            replace=False)
        try:
            detector.fit(store.get(list(ids[np.sort(sample)])))
        except DataError as err:  # e.g. every cutout blank or too small: these statistics do not apply
            log.warning("image set %r: no artefact statistics (%s)", name, err)
            continue
        parts = [CutoutPart(str(ws.path), name, tuple(ids[a : a + part_size].tolist()))
                 for a in range(0, len(ids), part_size)]
        values = run_partitions(cutout_part, parts, shared=detector, scheduler=scheduler,
                                desc=f"cutouts {name}", progress=progress)
        frames.append(pd.DataFrame(np.concatenate(values), index=pd.Index(ids.astype(str), name="id"),
                                   columns=list(cutout_features())))
    return pd.concat(frames) if frames else pd.DataFrame(columns=list(cutout_features()))


@dataclass(frozen=True)
class CutoutPart:
    """Some cutouts of one image set of the workspace at ``path`` (what a Dask task receives)."""

    path: str
    image_set: str
    ids: tuple


def cutout_part(detector, part: CutoutPart, batch: int = 1024) -> np.ndarray:
    """The :func:`cutout_features` ``(len(part.ids), k)`` of one part, with a fitted ``CutoutArtefacts``; the
    morphology statistics see the bands bluest first (:func:`blue_to_red`)."""
    from explorer.analysis.morphology import morphology_statistics

    store = Workspace.open(part.path).catalog.images[part.image_set]
    order = blue_to_red(store.bands)
    ids = list(part.ids)
    out = []
    for a in range(0, len(ids), batch):
        cutouts = store.get(ids[a : a + batch])
        out.append(np.column_stack([detector.transform(cutouts),
                                    morphology_statistics(cutouts[:, order], detector.max_size)]))
    return np.concatenate(out)


def blue_to_red(bands: Sequence[str]) -> list[int]:
    """Indices that put an image set's bands in wavelength order, bluest first, when every name is a known
    filter letter (u g r i z y, any case, e.g. ``"i", "r", "g"`` -> ``[2, 1, 0]``); the stored order otherwise
    (the colour statistics then take the first band as the bluest)."""
    from explorer.models.lightcurve_batch import WAVELENGTH_ORDER, order_bands

    names = [str(b).strip().lower() for b in bands]
    if len(set(names)) != len(names) or not set(names) <= set(WAVELENGTH_ORDER):
        return list(range(len(bands)))
    return [names.index(b) for b in order_bands(names)]


@dataclass(frozen=True)
class CurvePart:
    """Some light curves of the workspace at ``path`` (what a Dask task receives)."""

    path: str
    ids: tuple


def curve_part(_, part: CurvePart) -> pd.DataFrame:
    """The variability statistics of one part's curves, one row per id in the part's order (every band of the
    workspace, so that all parts have the same columns)."""
    from explorer.analysis.variability import variability_features

    store = Workspace.open(part.path).catalog.lightcurves
    ids = list(part.ids)
    return variability_features(store.get_many(ids), bands=[str(b) for b in store.bands],
                                value=store.value_column).reindex([str(i) for i in ids])


def lightcurve_variability(ws: Workspace, progress: bool = True, random_state: int = 0,
                           chunk: int = CURVE_CHUNK, return_reference: bool = False, scheduler: str | None = None):
    """``variability`` of every light curve, by id: the kNN distance of its variability statistics
    (:func:`~explorer.analysis.variability.variability_features`, every band of the workspace) among all curves'
    (:func:`~explorer.analysis.variability.feature_outliers`); empty without light curves. Curves are read and
    measured ``chunk`` at a time, in process or on Dask (``scheduler``), with the same results; the kNN over the
    statistics runs here. With ``return_reference``, also the statistics' robust centre and scatter
    (:func:`~explorer.analysis.variability.robust_reference`, saved with the scores: the app explains a flag
    with it)."""
    from explorer.analysis.variability import feature_outliers, robust_reference
    from explorer.scale import run_partitions

    store = ws.catalog.lightcurves
    empty = pd.Series(dtype=np.float64, name=VARIABILITY)
    if store is None:
        return (empty, None) if return_reference else empty
    ids = ws.catalog.table.loc[ws.catalog.table["has_lightcurve"].astype(bool), "id"].to_numpy(dtype=object)
    bands = [str(b) for b in store.bands]
    parts = [CurvePart(str(ws.path), tuple(ids[a : a + chunk].tolist())) for a in range(0, len(ids), chunk)]
    frames = run_partitions(curve_part, parts, scheduler=scheduler, desc="variability", progress=progress)
    if not frames:
        return (empty, None) if return_reference else empty
    features = pd.concat(frames)
    reference = robust_reference(features)
    scores = pd.Series(feature_outliers(features, random_state=random_state, reference=reference),
                       index=features.index, name=VARIABILITY)
    return (scores, {**reference, "bands": bands}) if return_reference else scores
