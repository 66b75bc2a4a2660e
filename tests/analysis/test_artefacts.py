"""Hot pixels and satellite trails found in the pixels, and several detectors combined into one ranking."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.artefacts import CutoutArtefacts
from explorer.analysis.detectors import combine, tail_significance
from explorer.errors import DataError
from tests.conftest import gaussian_blob


def sky(n: int = 160, bands: int = 3, size: int = 48, seed: int = 0) -> np.ndarray:
    """PSF-blurred stars and galaxies of random colours, position and size on a noisy sky."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, 1.0, (n, bands, size, size)).astype(np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(4, size - 4, 2)
            shape = gaussian_blob(size, x, y, rng.uniform(1.3, 4.0))
            flux = rng.uniform(5, 400) * rng.uniform(0.3, 1.0, bands)  # its own colour
            out[i] += flux[:, None, None].astype(np.float32) * shape
    return out


def add_trail(img: np.ndarray, band: int, amp: float = 3.0) -> None:
    """A thin PSF-wide line across the frame in one band, ``amp`` sigma per pixel."""
    size = img.shape[-1]
    y, x = np.mgrid[:size, :size]
    d = (x - size / 2) * np.sin(0.6) - (y - size / 2) * np.cos(0.6) - 5.0
    img[band] += amp * np.exp(-0.5 * (d / 0.9) ** 2).astype(np.float32)


def rank_of(values: np.ndarray, row: int) -> int:
    return int((values > values[row]).sum())


def test_hot_pixels_and_a_faint_one_band_trail_stand_out_of_ordinary_sources():
    cutouts = sky()
    cutouts[3, 1, 20, 30] += 25.0  # hot pixel: sharper than any PSF
    cutouts[3, 1, 21, 31] += 12.0  # a two-pixel cosmic-ray hit
    add_trail(cutouts[7], band=2)  # 3 sigma per pixel: invisible pixel by pixel
    stats = CutoutArtefacts().fit(cutouts).transform(cutouts)
    assert stats.shape == (len(cutouts), 2) and np.isfinite(stats).all()
    hot, trail = stats[:, 0], stats[:, 1]
    assert rank_of(hot, 3) == 0 and rank_of(trail, 7) == 0
    # each detector points at its own artefact, not at the other one
    assert rank_of(hot, 7) > 5 and rank_of(trail, 3) > 5
    # and a bright compact star is not a hot pixel: the brightest source of the set is far from the top
    brightest = int(np.argmax(cutouts[:, :, 8:-8, 8:-8].max(axis=(1, 2, 3))))
    if brightest not in (3, 7):
        assert rank_of(hot, brightest) > 5


def test_a_star_of_unusual_colour_is_not_a_trail():
    """A red star leaves a residual disc where the other bands predict it; every line through it summed that
    disc until the residual was counted on the sky only. The trail still tops the statistic."""
    cutouts = sky(seed=2)
    size = cutouts.shape[-1]
    for row in (11, 12, 13):
        cutouts[row] += (np.array([0.2, 0.5, 1.0])[:, None, None] * 300.0
                         * gaussian_blob(size, size / 2, size / 2, 3.0)).astype(np.float32)
    add_trail(cutouts[20], band=1)
    trail = CutoutArtefacts(fit_cutouts=160).fit(cutouts).transform(cutouts)[:, 1]
    assert rank_of(trail, 20) == 0
    assert min(rank_of(trail, row) for row in (11, 12, 13)) > 10


def test_a_core_sharp_in_every_band_is_not_a_hot_pixel_and_an_arm_is_not_a_trail():
    """A hot pixel is in one band's exposure and a trail crosses the whole frame: a compact core too sharp for
    the filters in every band at once, or a bright straight arm across the middle of the frame only, is neither."""
    cutouts = sky(seed=3)
    size = cutouts.shape[-1]
    y, x = np.mgrid[:size, :size]
    for row in (30, 31, 32):  # a core sharper than the PSF, of an ordinary colour, in all three bands
        cutouts[row, :, size // 2, size // 2] += np.array([20.0, 30.0, 40.0], np.float32)
    for row in (40, 41, 42):  # a straight arm, 6 sigma per pixel, in one band, over the middle third only
        d = (x - size / 2) * np.sin(1.1) - (y - size / 2) * np.cos(1.1)
        along = (x - size / 2) * np.cos(1.1) + (y - size / 2) * np.sin(1.1)
        cutouts[row, 0] += (6.0 * np.exp(-0.5 * (d / 0.9) ** 2) * (np.abs(along) < size / 6)).astype(np.float32)
    cutouts[5, 2, 12, 35] += 20.0  # a hot pixel, weaker than the cores
    add_trail(cutouts[6], band=1, amp=2.0)  # a trail, fainter per pixel than the arms
    hot, trail = CutoutArtefacts().fit(cutouts).transform(cutouts).T
    assert rank_of(hot, 5) == 0 and min(rank_of(hot, row) for row in (30, 31, 32)) > 5
    assert rank_of(trail, 6) == 0 and min(rank_of(trail, row) for row in (40, 41, 42)) > 5


def test_single_band_cutouts_nan_pixels_and_bad_input():
    cutouts = sky(n=80, bands=1, seed=1)
    cutouts[5, 0, 10, 12] += 30.0
    cutouts[9, 0, :6, :] = np.nan  # a chip edge: NaN is background, not an artefact
    cutouts[11] = np.nan  # blank: no evidence either way
    det = CutoutArtefacts().fit(cutouts)
    assert det.cross_filter_ is None
    stats = det.transform(cutouts)
    assert np.isnan(stats[11]).all() and np.isfinite(np.delete(stats, 11, axis=0)).all()
    assert rank_of(np.nan_to_num(stats[:, 0], nan=-1), 5) == 0
    assert rank_of(np.nan_to_num(stats[:, 0], nan=-1), 9) > 5
    with pytest.raises(DataError, match="3 band.*fitted on 1"):
        det.transform(sky(n=2, bands=3))
    with pytest.raises(DataError, match="not fitted"):
        CutoutArtefacts().transform(cutouts)
    with pytest.raises(DataError, match="too small"):
        CutoutArtefacts().fit(np.zeros((4, 1, 6, 6)))
    with pytest.raises(DataError, match="no measurable noise"):
        CutoutArtefacts().fit(np.full((4, 1, 32, 32), np.nan))
    clipped = np.clip(sky(n=8, bands=1) - 3.0, 0, None)  # thresholded: most pixels exactly 0, as in FIRST
    with pytest.raises(DataError, match="clipped"):
        CutoutArtefacts().fit(clipped)


def test_tail_significance_keeps_counting_beyond_the_ordinary_and_combine_takes_the_best():
    rng = np.random.default_rng(0)
    smooth = rng.exponential(1.0, 10_000)  # a long ordinary tail
    gap = np.r_[rng.normal(5.0, 0.3, 9_990), np.full(10, 30.0)]  # ten far outliers
    s_smooth, s_gap = tail_significance(smooth), tail_significance(gap)
    order = np.argsort(smooth)
    assert np.all(np.diff(s_smooth[order]) >= 0)  # monotone in the score
    assert s_gap[-10:].min() > 10 > np.log10(len(gap))  # far outliers beyond anything ranks could say
    assert s_smooth.max() < 6
    both = combine({"smooth": smooth, "gap": gap})
    top = np.argsort(-both)[:10]
    assert set(top) == set(range(9_990, 10_000))
    with_nan = tail_significance(np.r_[smooth[:100], np.nan])
    assert with_nan[-1] == 0.0 and np.isfinite(with_nan).all()
    # a floor where most objects sit (a statistic clipped at one value) is not rare, and names no flag
    floor = np.r_[np.full(9_000, -2.0), rng.exponential(1.0, 1_000)]
    s_floor = tail_significance(floor)
    assert s_floor[:9_000].max() < 0.01 and s_floor[9_000:].min() > s_floor[0]
    _, which = combine({"floored": floor, "smooth": smooth}, return_which=True)
    assert (which[:9_000] == 1).mean() > 0.99  # ordinary objects' best detector: the one where they are not tied


def test_a_detector_of_a_few_objects_counts_its_rarity_in_the_whole_catalogue():
    from explorer.analysis.detectors import catalogue_significance

    rng = np.random.default_rng(1)
    n = 20_000
    images = rng.normal(0.0, 1.0, n)  # every object has a cutout
    curves = np.full(n, np.nan)
    curves[: n // 4] = rng.normal(0.0, 1.0, n // 4)  # a quarter have a light curve
    # the 50th most extreme curve is as rare among its 5,000 as the 200th cutout among its 20,000 (top 1 %),
    # but in the catalogue only a quarter as many ordinary objects are as extreme: it ranks above that cutout
    curve_50 = np.argsort(-np.nan_to_num(curves, nan=-np.inf))[49]
    image_200 = np.argsort(-images)[199]
    c, i = catalogue_significance(curves), catalogue_significance(images)
    assert tail_significance(curves)[curve_50] == pytest.approx(tail_significance(images)[image_200], abs=0.03)
    assert c[curve_50] - tail_significance(curves)[curve_50] == pytest.approx(np.log10(4))
    assert c[curve_50] > i[image_200] + 0.5
    assert c[n // 4 :].max() == 0.0  # no light curve: no evidence either way
    both = combine({"images": images, "curves": curves})
    assert both[curve_50] > both[image_200]


def test_a_statistic_below_its_detection_floor_takes_no_place_at_the_top():
    from explorer.analysis.detectors import FLOORS, floored, significances

    rng = np.random.default_rng(2)
    n = 20_000
    knn = rng.exponential(1.0, n)  # the embedding's kNN distance: a smooth ordinary tail
    trail = rng.normal(3.2, 0.35, n)  # blank sky: the strongest line's signal-to-noise, ~3-4.7
    trail[:5] = [7.0, 9.0, 12.0, 20.0, 35.0]  # five satellite trails
    top = np.argsort(-combine({"knn_joint": knn, "trail": trail}))[:200]
    assert set(range(5)) <= set(top)  # every trail kept
    # the noise of the trail statistic takes none of the other places: they go to the kNN's tail
    noise_top = np.argsort(-trail[5:])[:20] + 5
    assert not set(noise_top) & set(top) - set(np.argsort(-knn)[:200])
    S = significances({"knn_joint": knn, "trail": trail})
    assert S[noise_top, 1].max() < 0.01 and S[:5, 1].min() > 3
    # the same values under a name without a floor: its top 20 take ~3 decades, rank alone
    unfloored = significances({"knn_joint": knn, "other": trail})
    assert unfloored[noise_top, 1].min() > 2.5
    assert np.isnan(floored("trail", [np.nan, 1.0]))[0] and floored("trail", [1.0])[0] == FLOORS["trail"]
    assert floored("knn_joint", [1.0])[0] == 1.0
