"""Benchmark the dashboard: lasso -> ids -> gallery update latency, page-ready time, server memory.

Usage::

    python benchmarks/bench_app.py                          # 100k and 1M objects, Python-side only
    python benchmarks/bench_app.py --browser                # also page-ready time in headless Chromium
    python benchmarks/bench_app.py --sizes 100000 --json out.json

For each size a synthetic workspace is built in a temporary folder (catalogue, 5,000 one-band 32x32 cutouts,
random 32-d embeddings, a Gaussian-mixture map, random scores). Then, in this process:

- ``load``: reading the workspace data the app shares (``load_app_data``: map, scores, embeddings, point index);
- ``first render``: building one session's Explorer and all its Bokeh models (what a new browser tab costs;
  includes Datashader's first compile on the first size);
- ``lasso -> ids``: resolving a lasso drawn over ~10% of the map to ids on the server (PointIndex);
- ``lasso -> gallery``: the whole update one lasso causes, as the served app does it (ids, highlight raster,
  gallery thumbnails, detail, sky plot; Bokeh models updated in one batch);
- ``map re-raster``: re-aggregating the whole map coloured by class (what every zoom or pan costs).

With ``--browser``, ``explorer serve`` runs on the workspace and Chromium measures the time from navigation to
the map being drawn (the RECIPES ready check) and, in one page, from the mouse-up that ends a lasso drawn with the
mouse to the page showing "N selected" and the first gallery card; the server's resident memory (RSS) is read
after that. Medians of warm runs, wall-clock seconds; the load average is printed before and after (the machine
is shared: run it under ``flock /tmp/explorer-bench.lock``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")

ROWS: list[dict] = []
N_IMAGES = 5_000
DIM = 32


def build(path: Path, n: int, seed: int = 0) -> None:
    """A synthetic workspace of ``n`` objects (see the module docstring)."""
    from explorer.data.ingest import add_objects
    from explorer.data.readers_images import ImageInput
    from explorer.workspace import Workspace

    rng = np.random.default_rng(seed)
    ws = Workspace.create(path)
    ids = np.array([f"B{i:08d}" for i in range(n)], dtype=object)
    k = rng.integers(0, 8, n)
    table = pd.DataFrame(
        {
            "id": ids,
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-60, 60, n),
            "class": np.array(["a", "b", "c", "d", "e", "f", "g", "h"])[k],
            "mag": rng.uniform(15, 23, n),
        }
    )
    yy, xx = np.mgrid[:32, :32]
    blob = np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 18.0).astype(np.float32)
    images = (
        blob[None, None] * rng.uniform(0.5, 2, (N_IMAGES, 1, 1, 1))
        + rng.normal(0, 0.05, (N_IMAGES, 1, 32, 32))
    ).astype(np.float32)
    inp = ImageInput(list(ids[:N_IMAGES]), (1, 32, 32), ("r",), lambda a, b: images[a:b], "bench", N_IMAGES)
    add_objects(ws, table.iloc[:N_IMAGES], source="bench", images=inp, image_set="bench", progress=False)
    add_objects(ws, table.iloc[N_IMAGES:], source="bench-catalogue", progress=False)  # catalogue rows only
    centres = rng.normal(0, 6, (8, 2))
    xy = (centres[k] + rng.normal(0, 1, (n, 2))).astype(np.float32)
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    ws.save_embeddings({"joint": (ids, X)}, meta={"model": "bench-random"})
    ws.save_product(
        "maps",
        tables={"coords": pd.DataFrame({"id": ids, "x": xy[:, 0], "y": xy[:, 1]})},
        meta={"method": "bench"},
    )
    ws.save_product(
        "scores",
        tables={"scores": pd.DataFrame({"id": ids, "score": rng.random(n).astype("f4")})},
        meta={"method": "bench"},
    )


def record(n: int, what: str, seconds: list[float], note: str = "") -> None:
    ROWS.append(
        {
            "objects": n,
            "measure": what,
            "median_s": statistics.median(seconds),
            "runs": len(seconds),
            "note": note,
        }
    )
    print(f"  {what:<26} {statistics.median(seconds):8.3f} s  {note}", flush=True)


def lasso_polygon(frame: pd.DataFrame, fraction: float = 0.1) -> np.ndarray:
    """A 12-gon around the map's centre covering about ``fraction`` of the objects."""
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    cx, cy = np.median(x), np.median(y)
    r = np.quantile(np.hypot(x - cx, y - cy), fraction)
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    return np.column_stack([cx + r * np.cos(t) * (1 + 0.2 * np.sin(3 * t)), cy + r * np.sin(t)])


def bench_python(path: Path, n: int, repeats: int) -> None:
    from bokeh.document import Document

    from explorer.analysis.selection import Selection
    from explorer.app.background import batched
    from explorer.app.data import load_app_data
    from explorer.app.explorer import Explorer

    t = time.perf_counter()
    data = load_app_data(path)
    record(n, "load", [time.perf_counter() - t], f"{len(data.frame):,} map rows")
    times = []
    app = None
    for _ in range(2):
        t = time.perf_counter()
        app = Explorer(path, user="bench", background=False)
        doc = Document()
        doc.add_root(app.__panel__().get_root(doc))
        times.append(time.perf_counter() - t)
    record(n, "first render", times[1:], f"cold {times[0]:.2f} s")
    poly = lasso_polygon(data.frame)
    sel = Selection.lasso(poly, data.map_version)
    ids_t, all_t = [], []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        ids = sel.resolve(data.index)
        ids_t.append(time.perf_counter() - t)
        app.session.clear()
        t = time.perf_counter()
        with batched(doc):
            app.session.select(sel)
        all_t.append(time.perf_counter() - t)
        assert len(app.session.selected_ids) == len(ids)
    record(n, "lasso -> ids", ids_t[1:], f"{len(ids):,} selected")
    record(n, "lasso -> gallery", all_t[1:], f"cold {all_t[0]:.2f} s")
    from explorer.app.plots import map_plot

    spec = data.colour_options()["class"]
    pts = map_plot.points_element(
        data.frame, data.colour_values(spec), spec, with_ids=n <= map_plot.HOVER_SELECTOR_MAX
    )
    zoom_t = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        map_plot.base_layer(
            pts, spec, hover=n <= map_plot.HOVER_SELECTOR_MAX, dynamic=False, width=700, height=600
        )
        zoom_t.append(time.perf_counter() - t)
    record(
        n,
        "map re-raster",
        zoom_t[1:],
        "700x600, by class" + (", with hover ids" if n <= map_plot.HOVER_SELECTOR_MAX else ""),
    )


MAP_BOX = """() => {
  const v = Bokeh.index.query_one(v => v.model && v.model.name === 'explorer-map');
  const r = v.canvas_view.events_el.getBoundingClientRect();
  const fb = v.frame.bbox;
  return [r.x + fb.left, r.y + fb.top, fb.width, fb.height];
}"""


def browser_lasso(page, repeats: int) -> tuple[list[float], str]:
    """Draw a lasso over the middle of the map with the mouse; seconds from mouse-up until the page shows
    "N selected" and the gallery's first card (what the user waits for), each after clearing the selection."""
    import re

    left, top, width, height = page.evaluate(MAP_BOX)
    cx, cy, r = left + width / 2, top + height / 2, min(width, height) / 5
    ring = [(cx + r * np.cos(t), cy + r * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    counted = page.get_by_text(re.compile(r"^[1-9][\d,]* selected$")).first
    times, first = [], ""
    for _ in range(repeats):
        page.get_by_role("button", name="Clear").click()
        page.get_by_text("0 selected", exact=True).first.wait_for(timeout=60_000)
        page.locator(".gallery.is-empty").first.wait_for(timeout=60_000)
        page.mouse.move(*ring[0])
        page.mouse.down()
        for p in [*ring[1:], ring[0]]:
            page.mouse.move(*p, steps=3)
        t = time.perf_counter()
        page.mouse.up()
        counted.wait_for(timeout=60_000)
        page.locator(".gallery .card").first.wait_for(timeout=60_000)
        times.append(time.perf_counter() - t)
        first = counted.inner_text()
    return times, first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_browser(path: Path, n: int, repeats: int) -> None:
    import psutil
    from playwright.sync_api import sync_playwright

    from explorer.app.browser_probes import CHROMIUM, CHROMIUM_ARGS, READY

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "serve", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=120):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("explorer serve exited") from None
                time.sleep(0.5)
        record(n, "server start", [time.perf_counter() - t0], "imports, load, warm-up, first GET")
        times = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_function(READY, timeout=300_000)
                times.append(time.perf_counter() - t)
                page.close()
            record(n, "page ready", times, "navigation to map drawn (RECIPES ready check)")
            page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
            page.goto(url)
            page.wait_for_function(READY, timeout=300_000)
            lasso_t, first = browser_lasso(page, repeats + 1)
            record(
                n,
                "browser lasso -> gallery",
                lasso_t[1:],
                f"mouse-up to count + first card; page's first lasso {lasso_t[0]:.3f} s; {first}",
            )
            browser.close()
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        ROWS.append(
            {"objects": n, "measure": "server RSS", "median_s": None, "runs": 1, "note": f"{rss:.0f} MiB"}
        )
        print(f"  {'server RSS':<26} {rss:8.0f} MiB", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also measure page-ready time and server RSS")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the workspaces (kept)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-app-"))
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    try:
        for n in args.sizes:
            path = root / f"ws-{n}"
            if not (path / "manifest.json").exists():
                t = time.perf_counter()
                build(path, n)
                print(f"built {n:,}-object workspace in {time.perf_counter() - t:.1f} s", flush=True)
            print(f"{n:,} objects", flush=True)
            bench_python(path, n, args.repeats)
            if args.browser:
                bench_browser(path, n, args.repeats)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print("\n| objects | measure | median | runs | note |\n|---:|---|---:|---:|---|")
    for r in ROWS:
        value = "" if r["median_s"] is None else f"{r['median_s']:.3f} s"
        print(f"| {r['objects']:,} | {r['measure']} | {value} | {r['runs']} | {r['note']} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": ROWS,
                    "cpus": os.cpu_count(),
                    "loadavg_before": load_before,
                    "loadavg_after": load_after,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
