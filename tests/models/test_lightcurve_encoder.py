"""Tests of the light-curve transformer and its Encoder wrapper: shapes, order, robustness, checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.errors import DataError, ModelError
from explorer.models.base import Encoder
from explorer.models.checkpoints import build_from_checkpoint, save_checkpoint
from explorer.models.lightcurve_encoder import (
    LightCurveEncoder,
    LightCurveEncoderConfig,
    LightCurveTransformer,
    checkpoint_config,
    embed_lightcurves,
)

TINY = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, embedding_dim=32, max_len=64, bands=["g", "r"])


def curves(lengths, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i, n in enumerate(lengths):
        t = 58000 + np.sort(rng.uniform(0, 500, n))
        frames.append(
            pd.DataFrame(
                {
                    "id": f"obj{i}",
                    "time": t,
                    "mag": 18 + 0.5 * np.sin(t / (1.3 + i)),
                    "err": 0.05,
                    "band": rng.choice(["g", "r"], n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture()
def encoder() -> LightCurveEncoder:
    torch.manual_seed(0)
    return LightCurveEncoder(LightCurveTransformer(LightCurveEncoderConfig(**TINY)), precision="fp32")


def test_embed_shapes_order_and_norm(encoder):
    df = curves([1, 2, 40, 3000])
    assert isinstance(encoder, Encoder) and encoder.modality == "lightcurve"
    x = encoder.embed(df)
    assert x.shape == (4, 32) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    y = embed_lightcurves(encoder, df, batch_size=2, ids=["obj3", "obj0", "obj2"])
    assert np.allclose(y, x[[3, 0, 2]], atol=1e-5)  # row order = ids given, whatever the batching


def test_no_nan_from_degenerate_curves(encoder):
    flat = pd.DataFrame({"id": "flat", "time": np.arange(10.0), "mag": 18.0, "err": np.nan, "band": "g"})
    dup = pd.DataFrame(
        {"id": "dup", "time": [1.0] * 5, "mag": [18.0, 18.2, 18.1, 18.0, 19.0], "err": 0.0, "band": "r"}
    )
    nan = pd.DataFrame(
        {"id": "nan", "time": [1.0, 2.0, 3.0], "mag": [np.nan, 17.0, 17.5], "err": 0.1, "band": "g"}
    )
    with pytest.warns(UserWarning, match="dropped 1"):
        x = encoder.embed(pd.concat([flat, dup, nan, curves([1])]))
    assert x.shape == (4, 32) and np.isfinite(x).all()


def test_no_ids_give_an_empty_array(encoder):
    x = encoder.embed(curves([5]), ids=[])
    assert x.shape == (0, 32)


def test_empty_curve_raises_naming_the_id(encoder):
    empty = pd.DataFrame({"id": ["ghost"], "time": [1.0], "mag": [np.nan], "err": [0.1], "band": ["g"]})
    with pytest.warns(UserWarning), pytest.raises(DataError, match="'ghost'"):
        encoder.embed(pd.concat([curves([5]), empty]))


def test_unknown_band_falls_back_with_warning(encoder):
    df = curves([30])
    odd = df.assign(band=np.where(np.arange(len(df)) % 2 == 0, "g", "w_band"))
    with pytest.warns(UserWarning, match="w_band"):
        x = encoder.embed(odd)
    assert np.isfinite(x).all()
    assert not np.allclose(x, encoder.embed(df))


def test_bf16_close_to_fp32(encoder):
    df = curves([50, 80, 120])
    bf = LightCurveEncoder(encoder.module, precision="bf16").embed(df)
    assert np.allclose(bf, encoder.embed(df), atol=0.05)


def test_summary_block_carries_colour(encoder):
    df = curves([60, 60], seed=3)
    redder = df.assign(mag=np.where(df["band"] == "g", df["mag"] + 1.0, df["mag"]))
    a, b = encoder.embed(df), encoder.embed(redder)
    cfg = encoder.config
    assert not np.allclose(a[:, cfg.pooled_dim :], b[:, cfg.pooled_dim :])


def test_checkpoint_roundtrip(tmp_path, encoder):
    cfg = encoder.config
    save_checkpoint(tmp_path / "ck", encoder.module, checkpoint_config(cfg))
    rebuilt = build_from_checkpoint(tmp_path / "ck")
    assert isinstance(rebuilt, LightCurveTransformer)
    loaded = LightCurveEncoder.from_checkpoint(tmp_path / "ck", precision="fp32")
    assert loaded.name.startswith("lightcurve-transformer@") and loaded.bands == ["g", "r"]
    df = curves([10, 20])
    assert np.allclose(loaded.embed(df), encoder.embed(df), atol=1e-6)


def test_config_validation():
    with pytest.raises(ModelError, match="embedding_dim"):
        LightCurveTransformer(LightCurveEncoderConfig(**{**TINY, "embedding_dim": 6}))
    with pytest.raises(ModelError, match="band vocabulary"):
        LightCurveTransformer(LightCurveEncoderConfig(**{**TINY, "bands": []}))


def test_standardised_fusion_layout(encoder):
    """Default fusion: standardised pooled block, summary block, then the constant anchor."""
    cfg = encoder.config
    assert cfg.fusion == "standardised" and cfg.pooled_dim == 32 - cfg.n_summary - 1
    x = encoder.embed(curves([40, 50, 60]))
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    anchor = x[:, -1]  # same value before normalisation for every curve
    assert (anchor > 0).all()
    scaled = x / anchor[:, None]
    assert np.allclose(scaled[:, -1], 1.0)


def test_first_version_checkpoint_loads_as_concat(tmp_path):
    """A checkpoint without a 'fusion' key (first version) loads with its own fusion and buffers."""
    torch.manual_seed(0)
    old = LightCurveTransformer(LightCurveEncoderConfig(**TINY, fusion="concat"))
    config = checkpoint_config(old.config)
    del config["fusion"]
    save_checkpoint(tmp_path / "old", old, config)
    enc = LightCurveEncoder.from_checkpoint(tmp_path / "old")
    assert enc.config.fusion == "concat" and not hasattr(enc.module, "pooled_mean")
    df = curves([10, 20])
    assert np.allclose(enc.embed(df), LightCurveEncoder(old).embed(df), atol=1e-6)


def test_checkpoint_of_other_fusion_is_a_clear_error(tmp_path, encoder):
    """Weights of one fusion under a config of the other: ModelError, not a silent mismatch."""
    config = {**checkpoint_config(encoder.config), "fusion": "concat"}
    save_checkpoint(tmp_path / "ck", encoder.module, config)
    with pytest.raises(ModelError, match="do not fit"):
        LightCurveEncoder.from_checkpoint(tmp_path / "ck")


def test_fusion_and_contrast_validation():
    with pytest.raises(ModelError, match="fusion"):
        LightCurveTransformer(LightCurveEncoderConfig(**{**TINY, "fusion": "sum"}))
    with pytest.raises(ModelError, match="contrastive_weight"):
        LightCurveTransformer(LightCurveEncoderConfig(**TINY, fusion="concat", contrastive_weight=1.0))


def test_worker_threads_give_the_same_vectors(encoder):
    df = curves([5, 40, 80, 120, 7, 60])
    one = LightCurveEncoder(encoder.module, batch_size=2, workers=1).embed(df)
    before = torch.get_num_threads()
    two = LightCurveEncoder(encoder.module, batch_size=2, workers=2).embed(df)
    assert np.allclose(one, two, atol=1e-6)
    assert torch.get_num_threads() == before  # restored after the threaded call
