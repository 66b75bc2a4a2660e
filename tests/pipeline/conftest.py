"""A small workspace with cutouts (and light curves once the encoder exists) plus a tiny trained image encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.data.ingest import add_objects
from explorer.data.readers_images import ImageInput
from explorer.workspace import Workspace
from tests.conftest import gaussian_blob


def make_blobs(n: int, size: int = 32, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two kinds of sources: compact round blobs and elongated double lobes, with noise."""
    rng = np.random.default_rng(seed)
    imgs = np.empty((n, 1, size, size), np.float32)
    kinds = np.where(np.arange(n) % 2 == 0, "compact", "double")
    for i, k in enumerate(kinds):
        if k == "compact":
            img = gaussian_blob(size, size / 2, size / 2, 1.5)
        else:
            d = rng.uniform(5, 9)
            img = gaussian_blob(size, size / 2 - d, size / 2, 2.0) + gaussian_blob(size, size / 2 + d, size / 2, 2.0)
        imgs[i, 0] = img + rng.normal(0, 0.02, (size, size))
    table = pd.DataFrame({"id": [f"src{i:03d}" for i in range(n)], "ra": rng.uniform(0, 10, n),
                          "dec": rng.uniform(0, 10, n), "class": kinds})
    return table, imgs


def add_blobs(ws: Workspace, n: int = 64, seed: int = 0, image_set: str = "blobs") -> pd.DataFrame:
    table, imgs = make_blobs(n, seed=seed)
    inp = ImageInput(table["id"].tolist(), imgs.shape[1:], ("img",), lambda a, b: imgs[a:b], "blobs", n)
    add_objects(ws, table, source=image_set, images=inp, image_set=image_set, progress=False)
    return table


@pytest.fixture(scope="session")
def tiny_image_checkpoint(tmp_path_factory):
    """A 1-band image encoder trained for one short epoch on the blobs (seconds on CPU)."""
    from explorer.models.image_encoder import ImageModelConfig
    from explorer.models.train_image import ImagePretrainConfig, pretrain_images

    _, imgs = make_blobs(32)
    out = tmp_path_factory.mktemp("ckpt") / "image-blobs"
    cfg = ImagePretrainConfig(model=ImageModelConfig(bands=1, input_size=32, widths=(8, 16), embedding_dim=16),
                              batch_size=16, projector_hidden=32, projector_dim=16)
    pretrain_images(imgs, cfg, out, epochs=1, seed=0, progress=False)
    return out


@pytest.fixture
def blob_workspace(tmp_path, tiny_image_checkpoint):
    import shutil

    from explorer.models.registry import record_training_data

    ws = Workspace.create(tmp_path / "ws")
    add_blobs(ws)
    target = ws.checkpoint_dir("image-blobs")
    shutil.copytree(tiny_image_checkpoint, target)
    record_training_data(target, image_set="blobs")
    return ws
