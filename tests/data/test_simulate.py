"""The simulated survey: reproducible catalogues drawn in pieces, deterministic renders, and physics that holds up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from explorer.data import simulate
from explorer.data.simulate import (
    CLASS_MIX,
    FOOTPRINT,
    IMAGE_BANDS,
    LC_BANDS,
    ODDITY_MIX,
    render_cutouts,
    render_lightcurves,
    simulate_parameters,
)
from explorer.data.simulate_images import GAIN, READ_NOISE
from explorer.errors import DataError


@pytest.fixture(scope="module")
def params() -> pd.DataFrame:
    return simulate_parameters(400, seed=3, oddity_rate=0.1)


@pytest.fixture(scope="module")
def cutouts(params) -> tuple[pd.DataFrame, np.ndarray]:
    rows = params[params["has_image"]]
    return rows, render_cutouts(rows, seed=5)


@pytest.fixture(scope="module")
def lightcurves(params) -> pd.DataFrame:
    return render_lightcurves(params, seed=5)


# --- catalogue -------------------------------------------------------------------------------------------


def test_catalogue_has_ground_truth_ids_positions_and_parameters(params):
    assert len(params) == 400
    assert params["id"].str.fullmatch(r"SIM\d{10}").all() and params["id"].is_unique
    assert params["id"].iloc[42] == "SIM0000000042"
    ra_lo, ra_hi, dec_lo, dec_hi = FOOTPRINT
    assert params["ra"].between(ra_lo, ra_hi).all() and params["dec"].between(dec_lo, dec_hi).all()
    assert set(params["class"].astype(str)) <= set(CLASS_MIX) | set(ODDITY_MIX)
    assert (params["source"] == "simulated").all()
    p_cols = [c for c in params.columns if c.startswith("p_")]
    assert len(p_cols) > 50
    for c in p_cols:
        assert params[c].dtype in (np.float32, np.int8, np.int16, np.int64), c
    assert (params["has_image"] | params["has_lightcurve"]).all()
    galaxies = params["class"].isin(["elliptical", "disk", "spiral"])
    assert not params.loc[galaxies, "has_lightcurve"].any()
    assert params.loc[params["class"].isin(["rrlyrae", "lpv", "flare"]), "has_image"].all()


def test_same_seed_same_catalogue_other_seed_other(params):
    pd.testing.assert_frame_equal(simulate_parameters(400, seed=3, oddity_rate=0.1), params)
    other = simulate_parameters(400, seed=4, oddity_rate=0.1)
    assert not np.allclose(other["ra"], params["ra"])
    assert (other["class"] != params["class"]).mean() > 0.3


def test_a_survey_drawn_in_pieces_equals_one_drawn_at_once(monkeypatch):
    whole = simulate_parameters(300, seed=7)
    pd.testing.assert_frame_equal(simulate_parameters(100, seed=7), whole.iloc[:100])
    tail = simulate_parameters(50, seed=7, start=250)
    pd.testing.assert_frame_equal(tail, whole.iloc[250:].reset_index(drop=True))
    assert tail["id"].iloc[0] == "SIM0000000250"
    monkeypatch.setattr(simulate, "_CHUNK", 7)  # internal chunking must not change any row
    pd.testing.assert_frame_equal(simulate_parameters(300, seed=7), whole)


def test_oddity_rate_and_class_mix_are_as_asked():
    big = simulate_parameters(20_000, seed=1)  # default oddity_rate = 0.005: 100 expected, sigma 10
    assert 60 <= big["is_oddity"].sum() <= 140
    assert big.loc[big["is_oddity"], "class"].isin(list(ODDITY_MIX)).all()
    assert not big.loc[~big["is_oddity"], "class"].isin(list(ODDITY_MIX)).any()
    share = big.loc[~big["is_oddity"], "class"].astype(str).value_counts(normalize=True)
    for cls, expected in CLASS_MIX.items():
        assert abs(share[cls] - expected) < 0.02, cls
    many = simulate_parameters(5_000, seed=1, oddity_rate=0.2)
    assert 0.17 < many["is_oddity"].mean() < 0.23
    assert not simulate_parameters(2_000, seed=1, oddity_rate=0.0)["is_oddity"].any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"n": 2.5},
        {"n": 10, "seed": -3},
        {"n": 10, "start": -1},
        {"n": 10, "start": 10**10 - 5},
        {"n": 10, "oddity_rate": 1.5},
    ],
)
def test_bad_arguments_raise_data_error(kwargs):
    with pytest.raises(DataError):
        simulate_parameters(**kwargs)


# --- cutouts ----------------------------------------------------------------------------------------------


def test_cutouts_shape_dtype_and_finite(cutouts):
    rows, images = cutouts
    assert images.shape == (len(rows), len(IMAGE_BANDS), 64, 64)
    assert images.dtype == np.float32 and np.isfinite(images).all()
    small = render_cutouts(rows.iloc[:3], size=32)
    assert small.shape == (3, 3, 32, 32)


def test_cutouts_are_the_same_alone_in_any_batch_and_seeded(cutouts):
    rows, images = cutouts
    pick = [0, 7, len(rows) - 1, 65]
    np.testing.assert_array_equal(render_cutouts(rows.iloc[pick], seed=5), images[pick])
    np.testing.assert_array_equal(render_cutouts(rows.iloc[[65]], seed=5)[0], images[65])
    other = render_cutouts(rows.iloc[pick], seed=6)
    assert not np.array_equal(other, images[pick])
    # another noise realisation of the same scene: the same object, different pixels
    assert np.corrcoef(other[:, 1].ravel(), images[pick, 1].ravel())[0, 1] > 0.9


def test_cutout_of_an_object_without_image_is_refused():
    params = simulate_parameters(2000, seed=0)
    no_image = params[~params["has_image"]]
    assert len(no_image) > 0  # supernovae without a host cutout
    with pytest.raises(DataError, match=no_image["id"].iloc[0]):
        render_cutouts(params.iloc[: no_image.index[0] + 1])


def test_sky_noise_and_star_fluxes_are_calibrated(cutouts):
    rows, images = cutouts
    # background noise: robust pixel scatter of each band equals sqrt(sky / gain) (+ read noise)
    expected = np.sqrt(rows[["p_sky_g", "p_sky_r", "p_sky_i"]].to_numpy() / GAIN + READ_NOISE**2)
    mad = 1.4826 * np.median(np.abs(images - np.median(images, axis=(2, 3), keepdims=True)), axis=(2, 3))
    stars = rows["class"].isin(["flat", "eclipsing_binary"]).to_numpy()
    np.testing.assert_allclose(np.median(mad[stars] / expected[stars], axis=0), 1.0, atol=0.1)
    # bright stars: the flux inside 12 px matches the catalogue magnitude
    bright = stars & (rows["p_star_mag_r"] < 17.5).to_numpy()
    assert bright.sum() >= 3
    yy, xx = np.mgrid[:64, :64] - 31.5
    aperture = np.hypot(xx, yy) < 12
    measured = images[bright, 1][:, aperture].sum(axis=1)
    expected_flux = 10 ** (-0.4 * (rows.loc[bright, "p_star_mag_r"].to_numpy() - 22.5))
    assert 0.93 < np.median(measured / expected_flux) < 1.07


def test_sersic_index_sets_concentration():
    params = simulate_parameters(3000, seed=5)
    gal = params[
        params["class"].isin(["elliptical", "disk"])
        & params["p_gal_re"].between(3, 9)
        & (params["p_gal_mag_r"] < 18.5)
    ].iloc[:40]
    r_band = render_cutouts(gal)[:, 1]
    yy, xx = np.mgrid[:64, :64] - 31.5
    radius = np.hypot(xx, yy)
    radii = np.arange(1, 31)
    growth = np.stack([(r_band * (radius < k)).sum(axis=(1, 2)) for k in radii], axis=1)
    growth /= growth[:, -1:]
    r50 = np.array([np.interp(0.5, g, radii) for g in growth])
    r90 = np.array([np.interp(0.9, g, radii) for g in growth])
    # SDSS-style concentration: 2.3 for an exponential disc, 3.3 for de Vaucouleurs (before the PSF)
    concentration = r90 / r50
    assert stats.spearmanr(gal["p_gal_n"], concentration).statistic > 0.35
    ellipticals = (gal["class"] == "elliptical").to_numpy()
    assert np.median(concentration[ellipticals]) > np.median(concentration[~ellipticals])


# --- light curves -------------------------------------------------------------------------------------------


def test_lightcurves_are_long_form_sorted_with_both_bands(params, lightcurves):
    lc = lightcurves
    assert list(lc.columns) == ["id", "time", "mag", "err", "band"]
    assert lc["time"].dtype == np.float64 and lc["mag"].dtype == np.float32 and lc["err"].dtype == np.float32
    assert set(lc["band"]) == set(LC_BANDS)
    assert (lc["err"] > 0).all() and np.isfinite(lc["mag"]).all()
    assert lc["id"].is_monotonic_increasing
    same = lc["id"].to_numpy()[1:] == lc["id"].to_numpy()[:-1]
    assert (np.diff(lc["time"].to_numpy())[same] >= 0).all()
    with_lc = params[params["has_lightcurve"]].set_index("id")
    assert set(lc["id"]) == set(with_lc.index)
    counts = lc.groupby(["id", "band"]).size().unstack()
    np.testing.assert_array_equal(counts["g"], with_lc.loc[counts.index, "p_n_g"])
    np.testing.assert_array_equal(counts["r"], with_lc.loc[counts.index, "p_n_r"])
    assert counts.min().min() >= 20 and counts.max().max() <= 400
    span = lc.groupby("id")["time"].agg(np.ptp)
    periodic = with_lc.index[with_lc["class"].isin(["flat", "rrlyrae", "lpv"])]
    assert (span[periodic] > 365).all()  # multi-season baselines


def test_lightcurves_are_the_same_alone_in_any_batch_and_seeded(params, lightcurves):
    some = params[params["has_lightcurve"]].iloc[[4, 1, 9]]
    alone = render_lightcurves(some, seed=5)
    expected = lightcurves[lightcurves["id"].isin(some["id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, expected)
    other = render_lightcurves(some, seed=6)
    np.testing.assert_array_equal(other["time"], alone["time"])  # same cadence, new noise
    assert not np.array_equal(other["mag"], alone["mag"])
    assert render_lightcurves(params[~params["has_lightcurve"]]).empty


def test_rrlyrae_periods_are_recoverable():
    from astropy.timeseries import LombScargle

    params = simulate_parameters(1500, seed=11)
    rr = params[(params["class"] == "rrlyrae") & (params["p_n_r"] >= 60)].iloc[:5]
    lc = render_lightcurves(rr)
    found = 0
    for _, row in rr.iterrows():
        d = lc[(lc["id"] == row["id"]) & (lc["band"] == "r")]
        freq, power = LombScargle(d["time"], d["mag"], d["err"]).autopower(
            minimum_frequency=0.5, maximum_frequency=5.0, samples_per_peak=5
        )
        found += abs(1 / freq[np.argmax(power)] - row["p_period"]) < 0.01 * row["p_period"]
    assert len(rr) == 5 and found >= 4


def test_variability_separates_the_classes():
    params = simulate_parameters(3000, seed=2, oddity_rate=0.05)
    lc = render_lightcurves(params[params["has_lightcurve"]])
    r = lc[lc["band"] == "r"]
    scatter = (r.groupby("id")["mag"].std() / r.groupby("id")["err"].median()).rename("scatter")
    cls = params.set_index("id")["class"].astype(str)
    typical = scatter.groupby(cls.loc[scatter.index]).median()
    assert typical["flat"] < 1.5  # constant stars scatter by their errors only
    for variable in ("rrlyrae", "cepheid", "eclipsing_binary", "lpv", "supernova", "microlensing", "dipper"):
        assert typical[variable] > 2 * typical["flat"], variable
    assert typical["lpv"] > typical["rrlyrae"]
    # flares: a few points far brighter than the quiescent level, mostly in g
    g = lc[lc["band"] == "g"]
    flares = cls.index[cls == "flare"]
    jump = (g.groupby("id")["mag"].median() - g.groupby("id")["mag"].min()) / g.groupby("id")["err"].median()
    assert np.median(jump[flares]) > 3 * np.median(jump[cls.index[cls == "flat"].intersection(jump.index)])
