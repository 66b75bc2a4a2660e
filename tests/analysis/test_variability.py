"""Variability statistics of light curves, checked against independent computations and against curves whose
behaviour is known; and the feature-space outlier score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from explorer.analysis.variability import (
    CURVE_STATISTICS,
    EPISODE_DAYS,
    STATISTICS,
    feature_outliers,
    variability_features,
)
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
    assert list(F.columns) == [f"{s}_{b}" for s in STATISTICS for b in ("g", "r")] + list(CURVE_STATISTICS)
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


def _episode_by_hand(g: pd.DataFrame, days: float) -> float:
    """The brightening-episode statistic of one curve, window by window (the definition, written plainly)."""
    g = g.assign(e=(g.groupby("band")["mag"].transform("median") - g["mag"]) / g["err"]).sort_values("time")
    t, e = g["time"].to_numpy(), g["e"].to_numpy()
    best = -np.inf
    for i in range(len(t)):
        j = np.searchsorted(t, t[i] + days, side="right")
        if j - i < 3 or i < 5 or len(t) - j < 5 or t[i] - t[0] < days or t[-1] - t[j - 1] < days:
            continue
        before, after = e[:i], e[j:]
        level = max(before.mean(), after.mean())
        best = max(best, (e[i:j].mean() - level) / max(1.0, before.std(), after.std()))
    return np.arcsinh(best) if np.isfinite(best) else np.nan


def _bump(time, t0, te, u0=0.1):
    """Magnitudes by which a Paczyński microlensing event brightens a star."""
    u = np.sqrt(u0**2 + ((time - t0) / te) ** 2)
    return -2.5 * np.log10((u**2 + 2) / (u * np.sqrt(u**2 + 4)))


def test_a_brightening_episode_on_a_quiet_curve_stands_out_and_matches_the_definition():
    rng = np.random.default_rng(4)
    n = 300
    frames = []
    for k in range(6):  # quiet stars, with random errors and gaps
        frames.append(_curve(f"flat{k}", _noise(n, 10 + k), band="gr"[k % 2], seed=k))
    event = _curve("event", _noise(n, 20), seed=20)
    event["mag"] += _bump(event["time"].to_numpy(), 58500.0, 20.0)
    periodic = _curve("rrlyrae", _noise(n, 21), seed=21)
    periodic["mag"] += 0.4 * np.sin(2 * np.pi * periodic["time"].to_numpy() / 0.57)
    # a supernova's curve covers only its weeks of light: no quiet curve before and after it
    sn_time = np.sort(rng.uniform(58500, 58560, 40))
    supernova = pd.DataFrame({"id": "sn", "time": sn_time, "mag": 18 + 0.03 * (sn_time - 58500), "err": 0.02,
                              "band": "r"})
    df = pd.concat([*frames, event, periodic, supernova])
    F = variability_features(df)
    for days in EPISODE_DAYS:
        column = f"episode_{days}d"
        assert F[column].idxmax() == "event"
        assert F.loc["event", column] > 2 and F.loc["rrlyrae", column] < 1.5  # periodic: as bright outside
        assert np.isnan(F.loc["sn", column])
        for oid in ("event", "rrlyrae", "flat0", "flat1"):
            # the points' brightening is read on a grid of 2^-10 error units (exact running sums)
            assert F.loc[oid, column] == pytest.approx(_episode_by_hand(df[df["id"] == oid], days), abs=1e-3)
    # a curve's statistics do not depend on the other curves in its table (Dask parts give the same values)
    parts = pd.concat([variability_features(df[df["id"].isin(ids)], bands=["g", "r"])
                       for ids in (["event", "sn"], ["rrlyrae", "flat1"])])
    pd.testing.assert_frame_equal(parts, F.loc[parts.index])
    # in fluxes (brighter is more flux) the same event is found
    flux = event.assign(flux=10 ** (-0.4 * (event["mag"] - 25)), err=0.02 * 10 ** (-0.4 * (16 - 25))).drop(
        columns="mag")
    assert variability_features(flux)["episode_60d"].iloc[0] > 2
    # without errors, the band's own scatter is the unit
    assert variability_features(event.drop(columns="err"))["episode_60d"].iloc[0] > 2


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
