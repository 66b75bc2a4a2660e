"""Tests of light-curve pretraining: it learns, checkpoints each epoch, resumes exactly, and is seeded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.errors import ModelError
from explorer.models.checkpoints import load_checkpoint, load_extra_tensors
from explorer.models.lightcurve_encoder import LightCurveEncoder
from explorer.models.train_lightcurve import nt_xent, pretrain_lightcurves

TINY = dict(
    d_model=16, n_layers=1, n_heads=2, d_ff=32, embedding_dim=32, max_len=48, batch_size=8, warmup_steps=1
)


def data(n_curves: int = 8, seed: int = 0) -> pd.DataFrame:
    """Nightly g and r points (so epochs are single points) of sinusoids of various periods."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_curves):
        t = 58000 + np.sort(rng.uniform(0, 200, 60))
        frames.append(
            pd.DataFrame(
                {
                    "id": f"s{i}",
                    "time": t,
                    "mag": 17 + np.sin(t / (2 + i)),
                    "err": 0.03,
                    "band": np.where(np.arange(60) % 2, "g", "r"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def weights(path) -> dict:
    return load_checkpoint(path)[0]


def test_two_steps_write_a_loadable_checkpoint(tmp_path):
    out = pretrain_lightcurves(data(), TINY, tmp_path / "ck", epochs=2, seed=0, progress=False)
    state, config = load_checkpoint(out)
    assert config["bands"] == ["g", "r"] and config["training"]["epochs_done"] == 2
    assert config["training"]["steps"] == 2 and len(config["training"]["loss_history"]) == 2
    assert np.isfinite(config["training"]["loss_history"]).all()
    assert any(k.startswith("optim.") for k in load_extra_tensors(out))
    enc = LightCurveEncoder.from_checkpoint(out)
    x = enc.embed(data(3, seed=5))
    assert x.shape == (3, 32) and np.isfinite(x).all()
    # summary statistics were standardised on the training data
    assert not np.allclose(state["summary_std"].numpy(), 1.0)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = weights(pretrain_lightcurves(data(), TINY, tmp_path / "a", epochs=2, seed=3, progress=False))
    b = weights(pretrain_lightcurves(data(), TINY, tmp_path / "b", epochs=2, seed=3, progress=False))
    c = weights(pretrain_lightcurves(data(), TINY, tmp_path / "c", epochs=2, seed=4, progress=False))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not all(np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)


def test_resume_equals_uninterrupted_run(tmp_path):
    full = weights(pretrain_lightcurves(data(), TINY, tmp_path / "full", epochs=3, seed=1, progress=False))
    pretrain_lightcurves(data(), TINY, tmp_path / "part", epochs=1, seed=1, progress=False)
    assert json.loads((tmp_path / "part" / "config.json").read_text())["training"]["epochs_done"] == 1
    resumed = weights(pretrain_lightcurves(data(), TINY, tmp_path / "part", epochs=3, seed=1, progress=False))
    assert all(np.allclose(full[k].numpy(), resumed[k].numpy(), atol=1e-6) for k in full)
    with pytest.warns(UserWarning, match="already trained"):
        pretrain_lightcurves(data(), TINY, tmp_path / "part", epochs=3, seed=1, progress=False)


def test_incompatible_checkpoint_is_refused_or_overwritten(tmp_path):
    pretrain_lightcurves(data(), TINY, tmp_path / "ck", epochs=1, progress=False)
    with pytest.raises(ModelError, match="d_model"):
        pretrain_lightcurves(data(), {**TINY, "d_model": 32}, tmp_path / "ck", epochs=2, progress=False)
    with pytest.warns(UserWarning, match="overwriting"):
        pretrain_lightcurves(
            data(), {**TINY, "d_model": 32}, tmp_path / "ck", epochs=1, resume=False, progress=False
        )
    assert load_checkpoint(tmp_path / "ck")[1]["d_model"] == 32


@pytest.mark.slow
def test_pretraining_lowers_the_reconstruction_loss(tmp_path):
    """Hidden epochs of smooth curves become predictable from their neighbours (200 steps, ~30 s)."""
    cfg = {
        **TINY,
        "d_model": 32,
        "n_layers": 2,
        "d_ff": 64,
        "max_len": 64,
        "batch_size": 16,
        "warmup_steps": 20,
        "lr": 3e-3,
    }
    out = pretrain_lightcurves(data(32), cfg, tmp_path / "ck", epochs=100, seed=0, progress=False)
    losses = load_checkpoint(out)[1]["training"]["loss_history"]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])


def test_contrastive_term_trains_and_stores_pooled_statistics(tmp_path):
    cfg = {**TINY, "contrastive_weight": 1.0}
    out = pretrain_lightcurves(data(), cfg, tmp_path / "ck", epochs=2, seed=0, progress=False)
    state, config = load_checkpoint(out)
    assert "NT-Xent" in config["training"]["objective"]
    assert np.isfinite(config["training"]["loss_history"]).all()
    # the fusion's pooled statistics were fitted on the training curves, not left at 0 / 1
    assert not np.allclose(state["pooled_mean"].numpy(), 0.0)
    assert not np.allclose(state["pooled_std"].numpy(), 1.0)
    x = LightCurveEncoder.from_checkpoint(out).embed(data(3, seed=5))
    assert np.isfinite(x).all()


def test_nt_xent_prefers_matching_pairs():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    other = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    assert nt_xent(a, a, 0.2) < nt_xent(a, other, 0.2)
