"""Shared fixtures: small real files (FITS, PNG, HDF5, CSV) written with astropy/PIL/h5py, and workspaces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RRLYRAE = SHARED_DATA / "sdss_rrlyrae_ztf_snia_lightcurves" / "RRLyrae"

os.environ.setdefault("TQDM_DISABLE", "1")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``explorer`` command in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "explorer.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "TQDM_DISABLE": "1"})


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time, to prove nothing changed."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def gaussian_blob(size: int, x0: float, y0: float, sigma: float, amp: float = 1.0) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return (amp * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))).astype(np.float32)


@pytest.fixture
def catalog_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"id": [f"obj{i}" for i in range(6)], "ra": rng.uniform(0, 360, 6),
                         "dec": rng.uniform(-30, 30, 6), "mag_r": rng.uniform(15, 20, 6),
                         "class": ["a", "b", "a", "b", "a", "b"]})


@pytest.fixture
def fits_folder(tmp_path, catalog_frame) -> Path:
    """One 2-D FITS image per object, named <id>.fits."""
    from astropy.io import fits

    folder = tmp_path / "fits"
    folder.mkdir()
    for i, oid in enumerate(catalog_frame["id"]):
        fits.PrimaryHDU(gaussian_blob(32, 16, 16, 2 + i)).writeto(folder / f"{oid}.fits")
    return folder


@pytest.fixture
def catalog_csv(tmp_path, catalog_frame) -> Path:
    path = tmp_path / "catalog.csv"
    catalog_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def lightcurve_frame(catalog_frame) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for oid in catalog_frame["id"]:
        t = np.sort(rng.uniform(58000, 58300, 40))
        for band in ("g", "r"):
            rows.append(pd.DataFrame({"id": oid, "time": t, "mag": 18 + 0.3 * np.sin(t / 3) + (band == "g") * 0.4,
                                      "err": 0.02, "band": band}))
    return pd.concat(rows, ignore_index=True)
