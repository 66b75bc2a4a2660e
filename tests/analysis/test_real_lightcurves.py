"""The default score on real light curves (``../shared/data``): SDSS Stripe 82 RR Lyrae with a few ZTF SNe Ia
mixed in, through the same commands a user runs. Skipped where the shared data folder is absent."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from explorer.workspace import Workspace
from tests.conftest import RRLYRAE, SHARED_DATA, run_cli

SNIA = SHARED_DATA / "sdss_rrlyrae_ztf_snia_lightcurves" / "SNIa"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (RRLYRAE / "light-curves").is_dir() or not (SNIA / "light-curves").is_dir(),
                       reason=f"real light curves not found under {SHARED_DATA} (shared data folder absent)"),
]


def test_supernovae_among_rr_lyrae_rank_at_the_top_and_placeholder_points_are_dropped(tmp_path):
    folder = tmp_path / "lcs"
    folder.mkdir()
    stars = sorted((RRLYRAE / "light-curves").glob("*.csv"))[:200]
    supernovae = sorted((SNIA / "light-curves").glob("*.csv"))[:5]
    for f in stars + supernovae:
        shutil.copy(f, folder / f.name)
    catalog = pd.DataFrame({"id": [f.stem for f in stars + supernovae],
                            "class": ["RR Lyrae"] * len(stars) + ["SN Ia"] * len(supernovae)})
    catalog.to_csv(tmp_path / "cat.csv", index=False)
    ws_path = tmp_path / "ws"
    res = run_cli("ingest", ws_path, "--catalog", tmp_path / "cat.csv", "--lightcurves", folder)
    assert res.returncode == 0, res.stderr
    assert "SDSS's 99.99" in res.stderr  # Stripe 82 writes 99.99 where there is no measurement
    for command in ("embed", "score"):
        res = run_cli(command, ws_path)
        assert res.returncode == 0, res.stderr
    assert "variability" in res.stdout
    ws = Workspace.open(ws_path)
    assert ws.catalog.lightcurves.table["mag"].max() < 50
    scores, meta = ws.scores()
    assert meta["detectors"] == ["knn_joint", "variability"] and scores["score"].notna().all()
    ranked = scores.sort_values("score", ascending=False)["id"].tolist()
    positions = sorted(ranked.index(f.stem) for f in supernovae)
    assert positions[-1] < 15, positions  # all five within the top 15 of 205 (at random: ~5 %)
