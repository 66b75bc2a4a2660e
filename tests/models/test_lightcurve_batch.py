"""Tests of light-curve preparation and collation: validation, normalisation, subsampling, epoch masking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.errors import DataError
from explorer.models.lightcurve_batch import (
    UNKNOWN_BAND,
    collate,
    drop_epochs,
    epoch_mask,
    order_bands,
    prepare_lightcurves,
    summary_names,
)

BANDS = ["u", "g", "r", "i", "z"]


def sdss_like(n_epochs: int = 30, object_id: str = "a", seed: int = 0, period: float = 0.5) -> pd.DataFrame:
    """Five bands within ~4 minutes per epoch, epochs days apart (like SDSS Stripe 82)."""
    rng = np.random.default_rng(seed)
    t_epoch = 51000 + np.sort(rng.uniform(0, 2000, n_epochs))
    rows = []
    for k, band in enumerate(BANDS):
        t = t_epoch + k * 0.0008
        mag = 17 + 0.3 * k + 0.4 * np.sin(2 * np.pi * t / period)
        rows.append(pd.DataFrame({"id": object_id, "time": t, "mag": mag, "err": 0.02, "band": band}))
    return pd.concat(rows, ignore_index=True).sample(frac=1, random_state=seed)  # any row order


def test_prepare_sorts_normalises_and_summarises():
    df = pd.concat([sdss_like(object_id="a"), sdss_like(object_id="b", seed=1)])
    p = prepare_lightcurves(df, BANDS, ids=["b", "a"])
    assert list(p.ids) == ["b", "a"]
    assert list(p.counts) == [150, 150]
    for s, c in zip(p.starts, p.counts, strict=True):
        assert np.all(np.diff(p.dt[s : s + c]) >= 0) and p.dt[s] == 0
    assert np.abs(p.value).max() <= 8 and np.isfinite(p.value).all()
    assert p.summary.shape == (2, len(summary_names(BANDS)))
    # colour u-g = 17.0 - 17.3 from the per-band medians
    assert p.summary[0, 0] == pytest.approx(-0.3, abs=0.05)


def test_nan_points_dropped_with_warning_and_empty_curve_named():
    df = sdss_like(object_id="a")
    df.loc[df.index[:3], "mag"] = np.nan
    with pytest.warns(UserWarning, match="dropped 3"):
        p = prepare_lightcurves(df, BANDS)
    assert p.counts[0] == 147
    bad = pd.DataFrame(
        {"id": ["x", "x"], "time": [1.0, 2.0], "mag": [np.nan, np.nan], "err": 0.1, "band": "g"}
    )
    with pytest.warns(UserWarning), pytest.raises(DataError, match="'x'"):
        prepare_lightcurves(pd.concat([df, bad]), BANDS)
    with pytest.raises(DataError, match="'missing'"):
        prepare_lightcurves(df, BANDS, ids=["a", "missing"])


def test_missing_column_is_a_data_error():
    with pytest.raises(DataError, match="band"):
        prepare_lightcurves(pd.DataFrame({"id": ["a"], "time": [1.0], "mag": [1.0]}), BANDS)


def test_unknown_band_gets_the_unknown_token_with_a_warning():
    df = sdss_like()
    df["band"] = df["band"].replace({"z": "Y_hsc"})
    with pytest.warns(UserWarning, match="Y_hsc"):
        p = prepare_lightcurves(df, BANDS)
    assert (p.band == UNKNOWN_BAND).sum() == 30
    assert np.isnan(p.summary[0, 3])  # colour i-z unknown


def test_single_point_duplicate_times_and_flux():
    one = pd.DataFrame({"id": ["one"], "time": [5.0], "mag": [18.0], "err": [0.1], "band": ["g"]})
    dup = pd.DataFrame(
        {"id": "dup", "time": [1.0, 1.0, 1.0, 2.0], "mag": [18.0, 18.1, 18.0, 18.2], "err": 0.1, "band": "g"}
    )
    p = prepare_lightcurves(pd.concat([one, dup]), ["g", "r"])
    assert list(p.counts) == [1, 4] and np.isfinite(p.value).all()
    assert list(p.epoch[1:]) == [0, 0, 0, 1]
    flux = pd.DataFrame(
        {"id": "f", "time": np.arange(5.0), "flux": [-1.0, 0.0, 5.0, 50.0, 500.0], "err": 1.0, "band": "r"}
    )
    pf = prepare_lightcurves(flux, ["r"])
    assert np.isfinite(pf.value).all() and np.isfinite(pf.summary[:, 1:]).all()


def test_collate_pads_and_subsamples_deterministically_or_randomly():
    long = pd.DataFrame({"id": "long", "time": np.arange(3000.0), "mag": 18.0, "err": 0.1, "band": "g"})
    short = pd.DataFrame({"id": "short", "time": [0.0], "mag": [17.0], "err": [0.1], "band": ["r"]})
    p = prepare_lightcurves(pd.concat([long, short]), ["g", "r"])
    b = collate(p, max_len=100)
    assert b.value.shape == (2, 100) and b.dt.dtype.is_floating_point
    assert b.mask[0].all() and b.mask[1].sum() == 1
    assert b.dt[0, 0] == 0 and b.dt[0, -1] == 2999  # evenly spaced keeps both ends
    assert np.allclose(np.diff(b.dt[0].numpy()), 2999 / 99, atol=1)
    again = collate(p, max_len=100)
    assert (again.dt == b.dt).all()
    r1 = collate(p, max_len=100, rng=np.random.default_rng(1))
    r2 = collate(p, max_len=100, rng=np.random.default_rng(2))
    assert not (r1.dt[0] == r2.dt[0]).all()
    assert (np.diff(r1.dt[0].numpy()) > 0).all()  # random subsets stay in time order


def test_epoch_mask_hides_every_band_of_an_epoch():
    df = pd.concat([sdss_like(object_id=str(i), seed=i, n_epochs=12) for i in range(8)])
    p = prepare_lightcurves(df, BANDS)
    assert p.epoch.max() == 11
    b = collate(p, max_len=256)
    hidden = epoch_mask(b, 0.3, np.random.default_rng(0)).numpy()
    epoch = b.epoch.numpy()
    for row in range(len(epoch)):
        for e in range(12):
            flags = hidden[row][epoch[row] == e]
            assert len(flags) == 5 and (flags.all() or not flags.any())  # all 5 bands or none
        assert 0 < hidden[row].sum() < b.mask[row].sum()
    assert 0.1 < hidden.mean() < 0.5
    assert not hidden[~b.mask.numpy()].any()


def test_single_epoch_curve_hides_nothing():
    one_epoch = sdss_like(n_epochs=1)
    b = collate(prepare_lightcurves(one_epoch, BANDS))
    assert not epoch_mask(b, 0.9, np.random.default_rng(0)).any()


def test_order_bands_by_wavelength():
    assert order_bands(["z", "g", "R", "u", "r", "y", "g"]) == ["u", "g", "r", "z", "y", "R"]


def test_drop_epochs_drops_whole_epochs_and_keeps_one():
    df = pd.DataFrame(
        {
            "id": np.repeat(["a", "b"], [10, 2]),
            "time": np.r_[np.repeat(np.arange(5.0), 2) + np.tile([0, 0.001], 5), 1.0, 1.001],
            "mag": 18.0 + np.arange(12) * 0.01,
            "err": 0.01,
            "band": ["g", "r"] * 6,
        }
    )
    batch = collate(prepare_lightcurves(df, ["g", "r"]), max_len=16)
    rng = np.random.default_rng(0)
    for _ in range(20):
        view = drop_epochs(batch, 0.7, rng)
        for row in range(2):
            kept = set(batch.epoch[row][view.mask[row]].tolist())
            assert kept, "every curve keeps an epoch"
            for e in set(batch.epoch[row][batch.mask[row]].tolist()):
                points = (batch.epoch[row] == e) & batch.mask[row]
                assert view.mask[row][points].all() or not view.mask[row][points].any()
        assert not (view.mask & ~batch.mask).any()
