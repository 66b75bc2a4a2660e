"""Fixtures for the dashboard tests: a small workspace (FIRST images when installed, synthetic 3-band cutouts and
light curves), fake embeddings / map / scores, and a served app with a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.app.browser_probes import CHROMIUM, CHROMIUM_ARGS

N_SYNTHETIC = 1700
N_FIRST = 300
DIM = 16
SYN_CLASSES = ("galaxy", "star", "quasar")


def _blob_images(n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """``(n, 3, size, size)`` Gaussian sources with band-dependent brightness and a little noise."""
    yy, xx = np.mgrid[:size, :size]
    x0 = rng.uniform(12, 20, n)[:, None, None]
    y0 = rng.uniform(12, 20, n)[:, None, None]
    sigma = rng.uniform(1.5, 5, n)[:, None, None]
    base = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    colours = rng.uniform(0.3, 1.5, (n, 3))
    out = base[:, None] * colours[:, :, None, None] + rng.normal(0, 0.02, (n, 3, size, size))
    return out.astype(np.float32)


def _lightcurves(ids: list[str], rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for oid in ids:
        period = rng.uniform(0.3, 5)
        t = np.sort(rng.uniform(58000, 58200, 60))
        for band, offset in (("g", 0.3), ("r", 0.0)):
            mag = 17 + offset + 0.4 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.03, len(t))
            rows.append(pd.DataFrame({"id": oid, "time": t, "mag": mag, "err": 0.03, "band": band}))
    return pd.concat(rows, ignore_index=True)


def build_workspace(
    path: Path,
    n_synthetic: int = N_SYNTHETIC,
    n_first: int = N_FIRST,
    seed: int = 0,
    products: bool = True,
    lightcurves: bool = True,
    **product_kw,
):
    """A workspace with FIRST images (if installed) and synthetic objects, plus random embeddings, map, scores.

    Embeddings are cluster centres per class plus noise (so neighbours are meaningful); the map is the first
    two embedding dimensions; scores are the distance from the class centre.
    """
    from explorer.data.ingest import add_objects
    from explorer.data.readers_images import ImageInput
    from explorer.workspace import Workspace

    rng = np.random.default_rng(seed)
    ws = Workspace.create(path)
    if n_first:
        try:
            from explorer.data.defaults import add_first

            add_first(ws, limit=n_first, progress=False)
        except Exception:  # noqa: BLE001 - the FIRST wheel is optional here: synthetic data suffices
            n_synthetic += n_first
    ids = [f"SIM{i:05d}" for i in range(n_synthetic)]
    table = pd.DataFrame(
        {
            "id": ids,
            "ra": rng.uniform(150, 160, n_synthetic),
            "dec": rng.uniform(0, 10, n_synthetic),
            "class": rng.choice(SYN_CLASSES, n_synthetic),
            "mag_r": rng.uniform(15, 21, n_synthetic),
            "is_oddity": rng.random(n_synthetic) < 0.03,
        }
    )
    n_img = int(n_synthetic * 0.6)
    images = _blob_images(n_img, rng)
    inp = ImageInput(ids[:n_img], (3, 32, 32), ("g", "r", "i"), lambda a, b: images[a:b], "synthetic", n_img)
    lc_ids = ids[n_img // 2 :]
    if not lightcurves:
        table = table.iloc[:n_img]
    add_objects(
        ws,
        table,
        source="synthetic",
        images=inp,
        lightcurves=_lightcurves(lc_ids, rng) if lightcurves else None,
        image_set="synthetic",
        progress=False,
    )
    if products:
        add_products(ws, seed=seed, **product_kw)
    return ws


def add_products(ws, seed: int = 0, map_: bool = True, scores: bool = True, embeddings: bool = True) -> None:
    """Fake embeddings (class clusters + noise), a map (first two dims) and scores (distance from the centre)."""
    rng = np.random.default_rng(seed + 1)
    table = ws.catalog.table
    ids = table["id"].to_numpy(dtype=object)
    classes = pd.Categorical(table["class"].astype(str))
    centres = rng.normal(0, 3, (len(classes.categories), DIM))
    X = centres[classes.codes] + rng.normal(0, 1, (len(ids), DIM))
    if embeddings:
        ws.save_embeddings({"joint": (ids, X.astype(np.float32))}, meta={"model": "random-test"})
    if map_:
        ws.save_product(
            "maps",
            tables={
                "coords": pd.DataFrame(
                    {"id": ids, "x": X[:, 0].astype(np.float32), "y": X[:, 1].astype(np.float32)}
                )
            },
            meta={"method": "test", "embeddings": ws.current("embeddings")},
        )
    if scores:
        dist = np.linalg.norm(X - centres[classes.codes], axis=1)
        ws.save_product(
            "scores",
            tables={"scores": pd.DataFrame({"id": ids, "score": dist.astype(np.float32)})},
            meta={"method": "test", "embeddings": ws.current("embeddings")},
        )


@pytest.fixture(scope="session")
def app_workspace(tmp_path_factory) -> Path:
    """A ~2,000-object workspace with embeddings, map and scores (built once per test run)."""
    path = tmp_path_factory.mktemp("app") / "ws"
    build_workspace(path)
    return path


@pytest.fixture(scope="session")
def small_workspaces(tmp_path_factory) -> dict[str, Path]:
    """Small variants: complete, no map, images only (no light curves, no scores), no products at all."""
    root = tmp_path_factory.mktemp("variants")
    out = {}
    for name, kw in {
        "full": {},
        "no_map": {"map_": False},
        "images_only": {"lightcurves": False, "scores": False},
        "bare": {"products": False},
    }.items():
        out[name] = root / name
        build_workspace(out[name], n_synthetic=150, n_first=0, seed=3, **kw)
    return out


@pytest.fixture
def fresh_workspace(tmp_path, app_workspace) -> Path:
    """A private copy of :func:`app_workspace` (its own label store), for tests that write labels."""
    dest = tmp_path / "ws"
    shutil.copytree(app_workspace, dest, ignore=shutil.ignore_patterns("labels.sqlite*", ".lock"))
    return dest


# ---------------------------------------------------------------------------------------------- served app
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedProcess:
    """A running ``explorer serve`` subprocess on a free port of 127.0.0.1 (output in ``server.log`` beside it).

    Parameters
    ----------
    ws : Path
        The workspace to serve.
    *extra : str
        More ``explorer serve`` options (``--basic-auth users.json`` ...).
    log : Path, optional
        Where the server's output goes (default: ``server.log`` beside the workspace).
    timeout : float
        Seconds to wait for the first page.
    """

    def __init__(self, ws: Path, *extra: str, log: Path | None = None, timeout: float = 90) -> None:
        self.ws = Path(ws)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log or self.ws.parent / "server.log"
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "explorer.cli",
                "serve",
                str(self.ws),
                "--port",
                str(self.port),
                "--no-show",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TQDM_DISABLE": "1"},
        )
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"explorer serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=10) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"explorer serve did not answer within {timeout:.0f} s")
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL the server (no clean-up of any kind), and wait for it to be gone."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop in 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def served_app(tmp_path_factory, app_workspace):
    """``explorer serve`` on a copy of the workspace, on a free port of 127.0.0.1: yields (url, workspace path)."""
    ws = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(app_workspace, ws, ignore=shutil.ignore_patterns("labels.sqlite*", ".lock"))
    server = ServedProcess(ws)
    try:
        yield server.url, ws
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (skipped when Chromium or Playwright is missing)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need playwright (pip install)"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(
        viewport={"width": 1200, "height": 900}, device_scale_factor=1, accept_downloads=True
    )
    page = context.new_page()
    yield page
    context.close()
