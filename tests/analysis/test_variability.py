"""Variability statistics of light curves, checked against independent computations and against curves whose
behaviour is known; and the feature-space outlier score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from explorer.analysis.variability import STATISTICS, feature_outliers, variability_features
from explorer.errors import DataError


def _curve(object_id, mag, band="r", err=0.02, seed=0):
    rng = np.random.default_rng(seed)
    time = np.sort(rng.uniform(58000, 59000, len(mag)))
    return pd.DataFrame({"id": object_id, "time": time, "mag": mag, "err": err, "band": band})


def _noise(n, seed, sd=0.02):
    return 16 + np.random.default_rng(seed).normal(0, sd, n)


def test_statistics_match_scipy_and_numpy_on_random_curves():
    rng = np.random.default_rng(1)
    frames = [_curve(f"s{i}", rng.gamma(2.0, 0.1, 60 + 7 * i) + 15, band=b, seed=i)
              for i in range(5) for b in ("g", "r")]
    df = pd.concat(frames).sample(frac=1.0, random_state=0)  # rows in any order
    F = variability_features(df)
    assert list(F.columns) == [f"{s}_{b}" for s in STATISTICS for b in ("g", "r")]
    assert list(F.index) == list(pd.unique(df["id"]))
    for (oid, band), g in df.groupby(["id", "band"]):
        g = g.sort_values("time")
        d = g["mag"].to_numpy() - np.median(g["mag"])
        z = d / g["err"].to_numpy()
        row = F.loc[oid]
        q05, q95 = np.quantile(d, [0.05, 0.95])
        assert row[f"amplitude_{band}"] == pytest.approx(np.log10((q95 - q05) / 2))
        assert row[f"chi2_{band}"] == pytest.approx(np.log10(np.mean(z**2)))
        assert row[f"skew_{band}"] == pytest.approx(stats.skew(d))
        assert row[f"kurtosis_{band}"] == pytest.approx(np.arcsinh(stats.kurtosis(d)))
        assert row[f"eta_{band}"] == pytest.approx(np.log10(np.mean(np.diff(d) ** 2) / np.var(d)))


def test_dips_flares_and_slow_trends_read_as_an_astronomer_expects():
    n = 200
    dips = _noise(n, 1)
    dips[[20, 21, 90, 150, 151]] += 0.8  # fainter by 0.8 mag
    flares = _noise(n, 2)
    flares[[40, 120, 121]] -= 1.0
    trend = 16 + 0.5 * np.sin(np.linspace(0, 2 * np.pi, n)) + _noise(n, 3) - 16
    df = pd.concat([_curve("flat", _noise(n, 0)), _curve("dipper", dips), _curve("flare", flares),
                    _curve("trend", trend)])
    F = variability_features(df)
    assert abs(F.loc["flat", "chi2_r"]) < 0.15  # reduced chi-square ~1: the errors explain it
    assert F.loc["flat", "eta_r"] == pytest.approx(np.log10(2), abs=0.1)  # white noise
    assert F.loc["dipper", "skew_r"] > 3 and F.loc["flare", "skew_r"] < -3
    assert F.loc["trend", "eta_r"] < -1  # slow compared with the cadence
    # fluxes: fainter is lower flux, so the signs follow the astronomy, not the column
    flux = df.assign(flux=10 ** (-0.4 * (df["mag"] - 25))).drop(columns="mag")
    flux["err"] = 0.4 * np.log(10) * 0.02 * 10 ** (-0.4 * (16 - 25))  # 0.02 mag at the median brightness
    G = variability_features(flux)
    assert G.loc["dipper", "skew_r"] > 2 and G.loc["flare", "skew_r"] < -2
    np.testing.assert_allclose(G["eta_r"], F["eta_r"], atol=0.05)  # the same curves, in other units


def test_short_or_missing_bands_give_nan_and_bad_tables_a_clear_error():
    df = pd.concat([_curve("a", _noise(30, 0)), _curve("b", _noise(3, 1)), _curve("a", _noise(30, 2), band="g")])
    F = variability_features(df, bands=["g", "r", "i"])
    assert F.loc["a", ["amplitude_g", "amplitude_r"]].notna().all()
    assert F.loc["a", "amplitude_i"] != F.loc["a", "amplitude_i"]  # no i band: NaN
    assert F.loc["b"].isna().all()  # 3 points: too few to say anything
    no_err = variability_features(df.drop(columns="err"))
    assert no_err.loc["a", "chi2_r"] != no_err.loc["a", "chi2_r"] and np.isfinite(no_err.loc["a", "skew_r"])
    with pytest.raises(DataError, match="time"):
        variability_features(df.drop(columns="time"))


def test_feature_outliers_puts_the_odd_row_first_and_ignores_constant_and_empty_columns():
    rng = np.random.default_rng(0)
    F = rng.normal(0, 1, (400, 5))
    F[:, 3] = 7.0  # constant: no information
    F[:, 4] = np.nan  # never measured
    F[123, :3] = [6, -6, 6]
    F[7] = np.nan  # nothing measured for this object
    s = feature_outliers(F)
    assert np.argmax(np.nan_to_num(s, nan=-1)) == 123
    assert np.isnan(s[7]) and np.isfinite(np.delete(s, 7)).all()
    np.testing.assert_array_equal(s, feature_outliers(F))  # seeded
    assert np.isnan(feature_outliers(F[:5])).all()  # too few rows to have neighbours
    with pytest.raises(DataError):
        feature_outliers(F[0])
