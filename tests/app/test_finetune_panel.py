"""Fine-tuning from the app, for real: on a tiny workspace embedded by a real (tiny) encoder, with a few labels, the
panel's button starts a background run that trains, re-embeds, re-maps and re-scores; the progress bar moves; the
new map is then offered beside the old one, and the old versions stay current until the user switches."""

from __future__ import annotations

import time

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document

from explorer.workspace import Workspace

pytestmark = pytest.mark.slow

N_OBJECTS = 60


@pytest.fixture
def embedded_workspace(tmp_path):
    """60 synthetic 3-band cutouts, a 1-epoch self-supervised encoder, its embeddings, a PCA map and scores."""
    import torch

    from explorer.analysis.workspace_ops import map_workspace, score_workspace
    from explorer.models.embed import embed_workspace
    from explorer.models.image_encoder import ImageModelConfig
    from explorer.models.registry import record_training_data
    from explorer.models.train_image import ImagePretrainConfig, pretrain_images
    from tests.app.conftest import _blob_images, build_workspace

    torch.set_num_threads(1)
    ws = build_workspace(tmp_path / "ws", n_synthetic=N_OBJECTS, n_first=0, products=False, lightcurves=False)
    cfg = ImagePretrainConfig(
        model=ImageModelConfig(bands=3, input_size=32, widths=(8, 16), embedding_dim=16),
        batch_size=16,
        projector_hidden=32,
        projector_dim=16,
    )
    ckpt = ws.checkpoint_dir("image-synthetic")
    pretrain_images(_blob_images(48, np.random.default_rng(5)), cfg, ckpt, epochs=1, seed=0, progress=False)
    record_training_data(ckpt, image_set="synthetic")
    embed_workspace(ws, progress=False)
    map_workspace(ws, method="pca", progress=False)
    score_workspace(ws, progress=False)
    return ws.path


def test_the_button_finetunes_in_the_background_and_offers_the_new_map(embedded_workspace):
    from explorer.app.explorer import Explorer

    before = Workspace.open(embedded_workspace)
    old = {k: before.current(k) for k in ("embeddings", "maps", "scores")}
    app = Explorer(embedded_workspace, user="erin", background=True)
    app.__panel__().get_root(Document())
    panel = app.finetune
    panel.epochs = 1
    table = app.data.catalog.table
    with_image = table.loc[table["image_set"].notna()]
    for cls in ("galaxy", "star"):  # a few labels of two classes, as a user would give
        app.labeller.label(cls, with_image.loc[with_image["class"] == cls, "id"].head(3).tolist())

    seen: list[int] = []
    panel.param.watch(lambda e: seen.append(e.new), "progress")
    panel._button.clicks += 1  # what a click in the browser does
    assert panel.running
    deadline = time.monotonic() + 50
    # the worker thread ends with one update (progress 100, done, not running); its watchers may still be running
    # when this thread already sees running=False, so wait for the bar's last value too
    while panel.running or (seen[-1:] != [100] and time.monotonic() < deadline):
        assert time.monotonic() < deadline, f"still {panel.stage!r} at {panel.progress}%"
        time.sleep(0.2)

    assert panel.stage == "done", panel.stage
    assert any(0 < p < 100 for p in seen) and seen[-1] == 100  # the bar moved through the run
    new = panel.result["new"]
    after = Workspace.open(embedded_workspace)
    assert all(new[k] != old[k] and new[k] in after.versions(k) for k in old)
    assert {k: after.current(k) for k in old} == old  # the old map stays in use until the user switches
    assert after.product_path("maps", new["maps"])[1]["method"] == "pca"  # re-mapped the way the old map was
    assert 0.0 <= panel.result["overlap"] <= 1.0

    shown = panel._compare.objects
    plots = [o for o in shown if isinstance(o, pn.pane.HoloViews)]
    assert plots and len(plots[0].object) == 2  # old and new map side by side
    buttons = [
        b.name for row in shown if isinstance(row, pn.Row) for b in row if isinstance(b, pn.widgets.Button)
    ]
    assert buttons == ["Use the new map", "Keep the old map"]
    assert "nearest neighbours are unchanged" in " ".join(str(getattr(o, "object", "")) for o in shown)

    panel.choose(new=True)
    assert Workspace.open(embedded_workspace).current("maps") == new["maps"]
