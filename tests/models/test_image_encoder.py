"""Image encoder: preprocessing, NaN handling, embedding shapes/normalisation, dihedral invariance, wrappers."""

import numpy as np
import pytest
import torch

from explorer.errors import DataError
from explorer.models.base import Encoder
from explorer.models.checkpoints import save_checkpoint
from explorer.models.image_encoder import (
    ImageCNN,
    ImageEncoder,
    ImageModelConfig,
    TorchImageEncoder,
    embed_images,
    load_image_encoder,
    normalise_cutouts,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = ImageModelConfig(bands=1, input_size=32, crop=None, widths=(8, 8, 16, 16), embedding_dim=12)


def _encoder(config=TINY, dihedral=False):
    torch.manual_seed(0)
    return ImageEncoder(ImageCNN(config), name="tiny", dihedral=dihedral, bf16=False)


def _cutouts(n=5, bands=1, size=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, bands, size, size)).astype(np.float32)
    x[:, :, size // 2 - 2 : size // 2 + 2, size // 2 - 2 : size // 2 + 2] += 20
    return x


def test_normalise_crops_resizes_and_scales_peak_to_one():
    raw = _cutouts(3, 2, 60) * 7 + 100
    x, blank = normalise_cutouts(raw, size=16, crop=30)
    assert x.shape == (3, 2, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x.flatten(2).amax(2), torch.ones(3, 2))
    assert not blank.any()
    x2, _ = normalise_cutouts(raw[:, 0], size=16, crop=30)  # (n, H, W) means one band
    assert torch.allclose(x2[:, 0], x[:, 0])


def test_nan_pixels_are_filled_and_all_nan_cutouts_are_flagged_not_nan():
    raw = _cutouts(3)
    raw[0, 0, :5] = np.nan
    raw[1] = np.nan
    x, blank = normalise_cutouts(raw, 32)
    assert torch.isfinite(x).all()
    assert blank.tolist() == [False, True, False]
    assert torch.equal(x[1], torch.zeros_like(x[1]))


def test_embed_shapes_norm_and_protocol():
    enc = _encoder()
    assert isinstance(enc, Encoder)
    raw = _cutouts(4)
    raw[0, 0, 3, 3] = np.nan
    emb = enc.embed(raw)
    assert emb.shape == (4, 12) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_embed_images_batches_like_one_call_and_names_blank_ids():
    enc = _encoder()
    raw = _cutouts(7)
    assert np.allclose(embed_images(enc, raw, batch_size=3, progress=False), enc.embed(raw), atol=1e-5)
    raw[4] = np.nan
    with pytest.warns(UserWarning, match="obj-4"):
        emb = embed_images(enc, raw, batch_size=3, progress=False, ids=[f"obj-{i}" for i in range(7)])
    assert np.isfinite(emb).all()
    with pytest.raises(DataError, match="row 4"):
        embed_images(enc, raw, batch_size=3, progress=False, on_blank="raise")


def test_dihedral_embedding_ignores_orientation():
    enc = _encoder(dihedral=True)
    raw = _cutouts(3, size=32)
    raw[:, :, 5:9, 20:30] += 15  # an asymmetric jet
    base = enc.embed(raw)
    assert np.allclose(enc.embed(np.rot90(raw, 1, axes=(2, 3)).copy()), base, atol=1e-4)
    assert np.allclose(enc.embed(raw[..., ::-1].copy()), base, atol=1e-4)
    assert not np.allclose(
        _encoder(dihedral=False).embed(np.rot90(raw, 1, axes=(2, 3)).copy()), base, atol=1e-3
    )


def test_any_input_size_and_bands_checked():
    enc = _encoder(ImageModelConfig(bands=3, input_size=32, widths=(8, 8, 16, 16), embedding_dim=6))
    assert enc.embed(_cutouts(2, 3, 300)).shape == (2, 6)
    assert enc.embed(_cutouts(2, 3, 20)).shape == (2, 6)  # smaller than the input: enlarged
    with pytest.raises(DataError, match="3"):
        enc.embed(_cutouts(2, 1, 32))


def test_checkpoint_round_trip_gives_the_same_embeddings(tmp_path):
    enc = _encoder()
    save_checkpoint(tmp_path / "ck", enc.module, TINY.to_dict())
    again = load_image_encoder(tmp_path / "ck", dihedral=False)
    again.bf16 = False
    raw = _cutouts(3)
    assert np.allclose(again.embed(raw), enc.embed(raw), atol=1e-5)
    assert again.name.startswith("explorer-image-cnn@")


def test_bring_your_own_module():
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 5))
    enc = TorchImageEncoder(module, name="mine")
    emb = enc.embed(_cutouts(3, 1, 50))
    assert emb.shape == (3, 5) and enc.embedding_dim == 5 and enc.modality == "image"
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_embed_images_learns_the_length_of_a_module_wrapped_without_embedding_dim():
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 7))
    enc = TorchImageEncoder(module, name="mine")  # no embedding_dim=: unknown until the first batch
    raw = _cutouts(5, 1, 50)
    emb = embed_images(enc, raw, batch_size=2, progress=False)
    assert emb.shape == (5, 7) and enc.embedding_dim == 7
    np.testing.assert_allclose(emb, enc.embed(raw), atol=1e-6)
    assert embed_images(TorchImageEncoder(module, name="fresh"), raw[:0], progress=False).shape[0] == 0


def test_a_wrapped_module_is_an_encoder_before_its_first_batch():
    """``isinstance(enc, Encoder)`` answers for a module wrapped without ``embedding_dim`` (it used to raise on
    Python 3.11), while asking for the unknown length still gives the clear error."""
    from explorer.errors import ModelError
    from explorer.models.base import Encoder

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 7))
    enc = TorchImageEncoder(module, name="mine")
    assert isinstance(enc, Encoder)
    with pytest.raises(ModelError, match="unknown until the first embed"):
        enc.embedding_dim  # noqa: B018 - the property is what is tested
    assert not isinstance(object(), Encoder)
    enc.embed(_cutouts(2, 1, 50))
    assert isinstance(enc, Encoder) and enc.embedding_dim == 7
