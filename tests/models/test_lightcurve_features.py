"""Tests of the classic light-curve features (summary statistics, Lomb-Scargle period)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.errors import DataError
from explorer.models.lightcurve_features import lomb_scargle_features, summary_features


def pulsator(object_id: str, period: float, amp: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for band, mean in (("g", 17.3), ("r", 17.0)):
        t = 57000 + np.sort(rng.uniform(0, 600, 80))
        mag = mean + amp * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.02, 80)
        frames.append(pd.DataFrame({"id": object_id, "time": t, "mag": mag, "err": 0.02, "band": band}))
    return pd.concat(frames, ignore_index=True)


def test_summary_features_colours_and_amplitudes():
    df = pd.concat([pulsator("a", 0.3, 0.1, 0), pulsator("b", 0.6, 0.5, 1)])
    f = summary_features(df, ids=["b", "a"])
    assert list(f.index) == ["b", "a"]
    assert list(f.columns) == ["g-r", "log_amp_g", "log_amp_r", "log_amp"]
    assert f.loc["a", "g-r"] == pytest.approx(0.3, abs=0.05)
    assert f.loc["b", "log_amp"] > f.loc["a", "log_amp"] + 0.5


def test_lomb_scargle_recovers_periods():
    df = pd.concat([pulsator("a", 0.37, 0.3, 2), pulsator("b", 0.61, 0.5, 3)])
    f = lomb_scargle_features(df, progress=False)
    assert 10 ** f.loc["a", "log_period"] == pytest.approx(0.37, rel=0.01)
    assert 10 ** f.loc["b", "log_period"] == pytest.approx(0.61, rel=0.01)
    assert (f["power"] > 0.5).all()


def test_lomb_scargle_short_curve_and_missing_id():
    short = pd.DataFrame({"id": "s", "time": [1.0, 2.0], "mag": [17.0, 17.5], "err": 0.1, "band": "g"})
    f = lomb_scargle_features(short, progress=False)
    assert np.isnan(f.loc["s", "log_period"]) and np.isfinite(f.loc["s", "log_amp"])
    with pytest.raises(DataError, match="'nope'"):
        lomb_scargle_features(short, ids=["nope"], progress=False)
