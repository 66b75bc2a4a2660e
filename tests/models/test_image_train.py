"""Pretraining: a tiny run writes a loadable checkpoint, is seed-deterministic, and resumes where it stopped."""

import json
import warnings

import numpy as np
import pytest
import torch

from explorer.errors import ModelError
from explorer.models.augment import AugmentConfig
from explorer.models.checkpoints import load_checkpoint
from explorer.models.image_encoder import ImageModelConfig, load_image_encoder
from explorer.models.losses import nt_xent, vicreg
from explorer.models.train_image import STATE_DIR, ImagePretrainConfig, pretrain_images


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids oversubscribing the shared cores (and is faster here)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


CONFIG = ImagePretrainConfig(
    model=ImageModelConfig(input_size=32, widths=(8, 8, 16, 16), embedding_dim=8),
    augment=AugmentConfig(),
    batch_size=8,
    projector_hidden=16,
    projector_dim=8,
    threads=1,
)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(16, 1, 32, 32)).astype(np.float32)


def _run(images, out, **kw):
    kw = {"epochs": 1, "seed": 0, "progress": False} | kw
    return pretrain_images(images, CONFIG, out, **kw)


def _weights(path):
    return load_checkpoint(path)[0]


def test_two_steps_write_a_loadable_encoder(images, tmp_path):
    out = _run(images, tmp_path / "enc")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["step"] == 2 and cfg["train"]["epoch"] == 1  # 16 images / batch 8
    assert (out / STATE_DIR / "extra.safetensors").exists()  # optimizer state for resuming
    emb = load_image_encoder(out).embed(images[:3])
    assert emb.shape == (3, 8) and np.isfinite(emb).all()


def test_same_seed_same_weights_other_seed_other_weights(images, tmp_path):
    a = _weights(_run(images, tmp_path / "a"))
    b = _weights(_run(images, tmp_path / "b"))
    c = _weights(_run(images, tmp_path / "c", seed=1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_continues_exactly_from_the_saved_epoch(images, tmp_path):
    straight = _weights(_run(images, tmp_path / "straight", epochs=2))
    _run(images, tmp_path / "split", epochs=2, stop_after=1)
    assert json.loads((tmp_path / "split" / "config.json").read_text())["train"]["epoch"] == 1
    resumed = _weights(_run(images, tmp_path / "split", epochs=2))
    assert json.loads((tmp_path / "split" / "config.json").read_text())["train"]["step"] == 4
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def test_resume_refuses_a_different_run(images, tmp_path):
    _run(images, tmp_path / "r")
    with pytest.raises(ModelError, match="resume=False"):
        _run(images, tmp_path / "r", seed=5)
    _run(images, tmp_path / "r", seed=5, resume=False)  # starts afresh


def test_refuses_to_overwrite_a_folder_that_is_not_a_checkpoint(images, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(ModelError, match="not a checkpoint folder"):
        _run(images, tmp_path / "mine")


def test_nan_pixels_and_blank_cutouts_train_to_finite_weights(images, tmp_path):
    bad = images.copy()
    bad[0, 0, :4] = np.nan
    bad[1] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pretrain_images(
            np.concatenate([bad, images[:1]]), CONFIG, tmp_path / "nan", epochs=1, progress=False
        )
    assert any("blank" in str(w.message) for w in caught)
    assert all(torch.isfinite(v).all() for v in _weights(out).values())


def test_losses_reward_matching_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    other = torch.randn(16, 8, generator=g)
    assert nt_xent(z, z + 0.01 * other) < nt_xent(z, other)
    assert vicreg(z, z + 0.01 * other) < vicreg(z, other)


def test_nnclr_pulls_towards_the_neighbour_of_another_image():
    from explorer.models.losses import SupportSet, nnclr

    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 4, generator=g)
    other = torch.randn(8, 4, generator=g)
    assert nnclr(z, z, z + 0.01 * other, z + 0.01 * other) < nnclr(z, z, other, other)
    support = SupportSet(4, 4)
    support.add(torch.eye(4), torch.tensor([0, 1, 2, 3]))
    # row 0 is image 0 and matches entry 0 best, but an image is never its own neighbour
    nearest = support.nearest(torch.tensor([[1.0, 0.5, 0, 0], [1.0, 0.5, 0, 0]]), torch.tensor([0, 7]))
    assert torch.equal(nearest, torch.eye(4)[[1, 0]])
    support.add(torch.eye(4)[:2] * 3, torch.tensor([8, 9]))  # oldest two out, normalised on the way in
    assert sorted(support.ids.tolist()) == [2, 3, 8, 9] and torch.allclose(
        support.z.norm(dim=1), torch.ones(4)
    )


def test_nnclr_run_resumes_exactly_and_refuses_unknown_losses(images, tmp_path):
    from dataclasses import replace

    cfg = replace(CONFIG, loss="nnclr", support_size=8)  # full after one step: NNCLR from the second step on
    straight = _weights(pretrain_images(images, cfg, tmp_path / "s", epochs=2, progress=False))
    pretrain_images(images, cfg, tmp_path / "p", epochs=2, stop_after=1, progress=False)
    resumed = _weights(pretrain_images(images, cfg, tmp_path / "p", epochs=2, progress=False))
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)
    ntxent = _weights(_run(images, tmp_path / "n", epochs=2))
    assert not all(torch.allclose(straight[k], ntxent[k]) for k in straight)
    with pytest.raises(ModelError, match="nnclr"):
        pretrain_images(images, replace(CONFIG, loss="byol"), tmp_path / "b", progress=False)
