"""Augmentations: shapes and dtypes kept, seeded determinism, and the physics each one claims."""

import math

import pytest
import torch

from explorer.models.augment import (
    AugmentConfig,
    ImageAugment,
    add_noise,
    affine,
    brightness,
    dihedral,
    dihedral_all,
    psf_blur,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(n=6, c=2, s=16):
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(1))


def test_view_keeps_shape_dtype_and_is_seeded():
    x = _images()
    aug = ImageAugment()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.isfinite(a).all()


def test_dihedral_group():
    x = _images(3, 1, 8)
    four = dihedral(dihedral(x, torch.full((3,), 2), torch.zeros(3, dtype=torch.bool)),
                    torch.full((3,), 2), torch.zeros(3, dtype=torch.bool))  # fmt: skip
    assert torch.equal(four, x)
    flip = dihedral(x, torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.bool))
    assert torch.equal(flip, x.flip(-1))
    all8 = dihedral_all(x)
    assert all8.shape == (24, 1, 8, 8)
    assert (
        len({tuple(all8[i * 3].flatten().tolist()) for i in range(8)}) == 8
    )  # all different for a random image


def test_affine_identity_and_quarter_turn():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 6] = 1.0  # 2 px right of centre
    same = affine(x, torch.zeros(1), torch.ones(1), torch.zeros(1, 2))
    assert torch.allclose(same, x, atol=1e-5)
    turned = affine(x, torch.tensor([math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert turned.sum() == pytest.approx(1.0, abs=1e-4)
    assert turned[0, 0].argmax() != x[0, 0].argmax()  # the source moved around the centre
    shifted = affine(x, torch.zeros(1), torch.ones(1), torch.tensor([[1.0, 0.0]]))
    assert shifted[0, 0, 4, 7] == pytest.approx(1.0, abs=1e-4)


def test_psf_blur_conserves_flux_and_widens():
    x = torch.zeros(2, 1, 21, 21)
    x[:, :, 10, 10] = 1.0
    y = psf_blur(x, torch.tensor([0.0, 1.5]))
    assert torch.equal(y[0], x[0])  # sigma 0 leaves the image as is
    assert y[1].sum() == pytest.approx(1.0, abs=1e-4)
    assert y[1, 0, 10, 10] == pytest.approx(1 / (2 * math.pi * 1.5**2), rel=0.05)


def test_noise_scales_with_the_image_and_perturbs_noiseless_images():
    g = torch.Generator().manual_seed(0)
    flat = torch.zeros(1, 1, 32, 32)
    flat[0, 0, 16, 16] = 10.0  # noiseless (clipped) image, peak 10
    noisy = add_noise(flat, torch.ones(1), g)
    assert 0.05 < (noisy - flat).std() < 0.2  # 1% of the peak
    x = torch.randn(1, 1, 64, 64, generator=g) * 3.0
    y = add_noise(x, torch.ones(1), g)
    assert (y - x).std() == pytest.approx(3.0, rel=0.15)  # at the image's own noise level


def test_brightness_multiplies_linear_flux():
    x = _images(2, 1, 4)
    assert torch.allclose(
        brightness(x, torch.tensor([2.0, 0.5])), x * torch.tensor([2.0, 0.5])[:, None, None, None]
    )


def test_no_rotation_config_keeps_orientation():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 12] = 1.0
    cfg = AugmentConfig(rotate=False, max_shift=0.0, scale=(1.0, 1.0), blur_prob=0.0, noise_level=(0.0, 0.0),
                        brightness=(1.0, 1.0))  # fmt: skip
    assert torch.allclose(ImageAugment(cfg)(x, torch.Generator().manual_seed(0)), x, atol=1e-5)
