"""A small workspace for export tests: two image sets, light-curve-only objects, odd ids, products and labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from explorer.data.catalog import normalise_catalog
from explorer.data.ingest import add_objects
from explorer.data.readers_images import ImageInput
from explorer.workspace import Workspace
from tests.conftest import gaussian_blob
from tests.export.samp_hub import hub, recorder  # noqa: F401 - SAMP fixtures for the tests of this folder

IMAGE_IDS = ["obj0", "obj1", "obj2", "a/b", "<b>x</b>", "ünï"]
MULTI_IDS = ["m0", "m1"]
LC_IDS = ["lc0", "lc1"]
ALL_IDS = IMAGE_IDS + MULTI_IDS + LC_IDS
NO_VECTOR = "lc1"  # no embedding and no map position
NO_SCORE = "m1"
LABELS = {
    "obj0": ("anomaly", "alice"),
    "a/b": ("anomaly", "bob"),
    "ünï": ("normal", "alice"),
    "<b>x</b>": ("artefact", "alice"),
    "m0": ("merger", "carol"),
}
EMB_DIM = 4
SHA = "0123456789abcdef" * 4
# what the pipeline records for an embedding version (explorer.models.embed.embed_workspace): one entry per job
EMB_MODELS = {
    "image:set_a": {
        "checkpoint": "/ckpt/image_encoder_simulated",
        "name": "image_encoder_simulated",
        "weights_sha256": SHA,
    },
    "image:set_b": {
        "checkpoint": "/ckpt/image_encoder_simulated",
        "name": "image_encoder_simulated",
        "weights_sha256": SHA,
    },
    "lightcurve": {
        "checkpoint": "/ckpt/lightcurve_encoder",
        "name": "lightcurve_encoder",
        "weights_sha256": None,
    },
}
MODEL_LINE = (
    "image:set_a=image_encoder_simulated (sha256 0123456789ab); "
    "image:set_b=image_encoder_simulated (sha256 0123456789ab); lightcurve=lightcurve_encoder"
)


def _images(ids: list[str], shape: tuple[int, int, int], seed: int) -> tuple[ImageInput, np.ndarray]:
    rng = np.random.default_rng(seed)
    cube = np.stack(
        [
            np.stack(
                [gaussian_blob(shape[1], shape[1] / 2, shape[2] / 2, 1.5 + i + b) for b in range(shape[0])]
            )
            for i in range(len(ids))
        ]
    )
    cube = (cube + 0.01 * rng.normal(size=cube.shape)).astype(np.float32)
    return ImageInput(
        list(ids), shape, tuple("grz"[: shape[0]]), lambda a, b: cube[a:b], "test", len(ids)
    ), cube


def _catalog(ids: list[str], seed: int, cls: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "id": ids,
            "ra": rng.uniform(0, 360, len(ids)),
            "dec": rng.uniform(-60, 60, len(ids)),
            "mag_r": rng.uniform(15, 20, len(ids)),
            "class": [cls] * len(ids),
        }
    )
    return normalise_catalog(df, "test")


def _lightcurves(ids: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for k, oid in enumerate(ids):
        t = np.sort(rng.uniform(58000, 58100, 12 + k))
        rows.append(
            pd.DataFrame(
                {
                    "id": oid,
                    "time": t,
                    "mag": (18 + 0.2 * np.sin(t)).astype(np.float32),
                    "err": np.float32(0.05),
                    "band": np.where(np.arange(len(t)) % 2, "g", "r"),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def build_workspace(path) -> tuple[Workspace, dict]:
    """Build the test workspace at ``path``; returns it and the arrays the tests compare against."""
    ws = Workspace.create(path)
    imgs_a, cube_a = _images(IMAGE_IDS, (1, 16, 16), 0)
    add_objects(
        ws,
        _catalog(IMAGE_IDS, 1, "galaxy"),
        source="survey_a",
        images=imgs_a,
        image_set="set_a",
        progress=False,
    )
    imgs_b, cube_b = _images(MULTI_IDS, (2, 8, 8), 1)
    add_objects(
        ws,
        _catalog(MULTI_IDS, 2, "galaxy"),
        source="survey_b",
        images=imgs_b,
        image_set="set_b",
        progress=False,
    )
    lcs = _lightcurves(LC_IDS)
    add_objects(ws, _catalog(LC_IDS, 3, "star"), source="lc_survey", lightcurves=lcs, progress=False)

    rng = np.random.default_rng(7)
    emb_ids = [i for i in ALL_IDS if i != NO_VECTOR]
    vectors = rng.normal(size=(len(emb_ids), EMB_DIM)).astype(np.float32)
    emb_version = ws.save_embeddings(
        {"joint": (emb_ids, vectors)}, meta={"catalog": ws.manifest["catalog"], "models": EMB_MODELS}
    )
    coords = pd.DataFrame(
        {"id": emb_ids, "x": vectors[:, 0].astype(np.float64), "y": vectors[:, 1].astype(np.float64)}
    )
    map_version = ws.save_product(
        "maps", tables={"coords": coords}, meta={"method": "pca", "embeddings": emb_version}
    )
    score_ids = [i for i in ALL_IDS if i != NO_SCORE]
    scores = pd.DataFrame({"id": score_ids, "score": np.linspace(0.0, 1.0, len(score_ids))})
    scores_version = ws.save_product(
        "scores", tables={"scores": scores}, meta={"method": "test", "embeddings": emb_version}
    )
    with ws.labels() as store:
        for oid, (label, user) in LABELS.items():
            store.add([oid], label, user=user, map_version=map_version)
    folder = ws.path / "selections"
    folder.mkdir(exist_ok=True)
    (folder / "picked.json").write_text(
        json.dumps({"geometry": None, "map_version": map_version, "ids": ["obj1", "<b>x</b>", "lc0"]})
    )
    x0, x1 = np.sort(vectors[:, 0])[[0, 3]]
    box = {"kind": "box", "bounds": [float(x0), -1e9, float(x1), 1e9], "map_version": map_version}
    (folder / "boxed.json").write_text(json.dumps({"geometry": box, "map_version": map_version}))
    truth = {
        "cube_a": cube_a,
        "cube_b": cube_b,
        "lightcurves": lcs,
        "emb_ids": emb_ids,
        "vectors": vectors,
        "coords": coords,
        "scores": scores,
        "versions": (emb_version, map_version, scores_version),
        "boxed": [
            i for i in ALL_IDS if i in set(np.asarray(emb_ids)[(vectors[:, 0] >= x0) & (vectors[:, 0] <= x1)])
        ],
    }
    return ws, truth


@pytest.fixture(scope="session")
def _built(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("export_ws") / "ws")


@pytest.fixture
def ws(_built):
    """The shared export workspace (read-only: tests must not change it)."""
    return Workspace.open(_built[0].path)


@pytest.fixture
def truth(_built):
    return _built[1]


@pytest.fixture
def fresh_ws(tmp_path):
    """A private copy of the workspace for tests that change it."""
    return build_workspace(tmp_path / "ws")
