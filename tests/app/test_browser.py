"""The served app in a real headless Chromium: lasso, box and tap select what the test computes itself; a keyboard
label lands in the SQLite label store; find-similar shows the exact nearest neighbours; export downloads a file
astropy reads back."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
import shapely

from explorer.app.browser_probes import GEOMETRY, IS_MAP, READY

pytestmark = [pytest.mark.slow, pytest.mark.browser]

STEPS = 8


class MapGeometry:
    """Where the map's data area is on the page (CSS pixels) and the data ranges it shows."""

    def __init__(self, g: dict):
        self.__dict__.update(g)

    def to_data(self, px: float, py: float) -> tuple[float, float]:
        x = self.x0 + (px - self.left) / self.width * (self.x1 - self.x0)
        y = self.y1 - (py - self.top) / self.height * (self.y1 - self.y0)
        return x, y

    def to_page(self, x: float, y: float) -> tuple[float, float]:
        return (
            self.left + (x - self.x0) / (self.x1 - self.x0) * self.width,
            self.top + (self.y1 - y) / (self.y1 - self.y0) * self.height,
        )


def open_app(page, url: str) -> MapGeometry:
    page.goto(url)
    page.wait_for_function(READY, timeout=90_000)
    return MapGeometry(page.evaluate(GEOMETRY))


def wait_selected(page, n: int, timeout: float = 40_000) -> None:
    page.get_by_text(f"{n:,} selected", exact=True).first.wait_for(timeout=timeout)


def draw_lasso(page, vertices: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Drag through ``vertices`` (and back to the first) in STEPS moves each; returns every position visited."""
    visited = [vertices[0]]
    page.mouse.move(*vertices[0])
    page.mouse.down()
    for a, b in zip(vertices, [*vertices[1:], vertices[0]], strict=True):
        page.mouse.move(*b, steps=STEPS)
        visited += [
            (a[0] + (b[0] - a[0]) * i / STEPS, a[1] + (b[1] - a[1]) * i / STEPS) for i in range(1, STEPS + 1)
        ]
    page.mouse.up()
    return visited


def map_coords(ws_path) -> pd.DataFrame:
    from explorer.workspace import Workspace

    return Workspace.open(ws_path).map()[0]


def labels_in_sqlite(ws_path) -> dict[str, str]:
    with sqlite3.connect(ws_path / "labels.sqlite") as conn:
        return dict(
            conn.execute("SELECT object_id, label FROM current_labels WHERE label IS NOT NULL").fetchall()
        )


def download(page, what: str, fmt_label: str, tmp_path):
    page.locator("select").filter(has_text="similar results").first.select_option(what)
    page.locator("select").filter(has_text="VOTable").first.select_option(label=fmt_label)
    button = page.get_by_role("button", name="Download")
    button.wait_for()
    time.sleep(2)  # let the server receive the choices before the click asks it for the file
    with page.expect_download(timeout=60_000) as info:
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_lasso_selects_the_drawn_polygon_and_exports_it(served_app, page, tmp_path):
    from astropy.table import Table

    url, ws = served_app
    g = open_app(page, url)
    cx, cy = int(g.left + g.width / 2), int(g.top + g.height / 2)
    r = 8 * 20  # a multiple of STEPS keeps every intermediate mouse position on a whole pixel
    vertices = [
        (cx - r, cy - r),
        (cx + r, cy - 2 * STEPS * 5),
        (cx + r + 40, cy + r),
        (cx - r + 40, cy + r + 40),
    ]
    visited = draw_lasso(page, vertices)
    polygon = shapely.Polygon([g.to_data(*p) for p in visited])
    coords = map_coords(ws)
    inside = shapely.contains_xy(polygon, coords["x"].to_numpy(np.float64), coords["y"].to_numpy(np.float64))
    expected = set(coords["id"][inside].astype(str))
    assert 50 < len(expected) < len(coords)
    wait_selected(page, len(expected))

    path = download(page, "selection", "VOTable", tmp_path)
    assert path.suffix in (".xml", ".vot", ".votable"), path.name
    table = Table.read(path, format="votable")
    assert set(np.asarray(table["id"]).astype(str)) == expected


def test_box_select_and_tap_focus(served_app, page):
    url, ws = served_app
    g = open_app(page, url)
    page.locator('[title="Box Select"]').first.click()
    page.wait_for_function(
        f"() => Bokeh.index.query_one({IS_MAP}).model.toolbar.tools"
        ".some(t => t.type == 'BoxSelectTool' && t.active)"
    )
    x0, y0 = int(g.left + g.width * 0.3), int(g.top + g.height * 0.3)
    x1, y1 = int(g.left + g.width * 0.6), int(g.top + g.height * 0.7)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()
    coords = map_coords(ws)
    (ax, ay), (bx, by) = g.to_data(x0, y0), g.to_data(x1, y1)
    in_box = coords["x"].between(min(ax, bx), max(ax, bx)) & coords["y"].between(min(ay, by), max(ay, by))
    wait_selected(page, int(in_box.sum()))

    # tap an isolated object: it becomes the selection and the focus (its id appears in the detail view)
    xy = coords[["x", "y"]].to_numpy(np.float64)
    px = np.column_stack(g.to_page(xy[:, 0], xy[:, 1]))
    onscreen = (
        (px[:, 0] > g.left + 20)
        & (px[:, 0] < g.left + g.width - 20)
        & (px[:, 1] > g.top + 20)
        & (px[:, 1] < g.top + g.height - 20)
    )
    d = np.sqrt(((px[:, None, :] - px[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    lonely = np.flatnonzero(onscreen & (d.min(axis=1) > 25))
    assert len(lonely), "no isolated object to tap"
    target = lonely[0]
    page.mouse.click(float(px[target, 0]), float(px[target, 1]))
    wait_selected(page, 1)
    oid = str(coords["id"].iloc[target])
    page.get_by_text(oid, exact=True).first.wait_for(timeout=30_000)


def test_keyboard_label_lands_in_the_store_and_find_similar(served_app, page):
    url, ws = served_app
    g = open_app(page, url)
    coords = map_coords(ws)
    # focus the object nearest the centre with a click, then label it with the keyboard
    cx, cy = g.to_data(g.left + g.width / 2, g.top + g.height / 2)
    nearest = int(np.argmin((coords["x"] - cx) ** 2 + (coords["y"] - cy) ** 2))
    oid = str(coords["id"].iloc[nearest])
    page.mouse.click(*g.to_page(float(coords["x"].iloc[nearest]), float(coords["y"].iloc[nearest])))
    wait_selected(page, 1)
    page.get_by_text(oid, exact=True).first.wait_for(timeout=30_000)
    page.keyboard.press("a")
    deadline = time.monotonic() + 30
    while labels_in_sqlite(ws).get(oid) != "anomaly":
        assert time.monotonic() < deadline, f"label of {oid} never reached labels.sqlite"
        time.sleep(0.1)

    # find similar to the focused object: the gallery shows the exact cosine neighbours, best first
    from explorer.workspace import Workspace

    emb = Workspace.open(ws).embeddings()
    X = np.asarray(emb.vectors, dtype=np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    q = int(np.flatnonzero(emb.ids == oid)[0])
    sims = X @ X[q]
    sims[q] = -np.inf
    expected = [str(i) for i in emb.ids[np.argsort(-sims, kind="stable")[:12]]]  # the first gallery page
    page.get_by_role("button", name="Similar to focused").click()
    deadline = time.monotonic() + 30
    while page.locator(".card").first.get_attribute("data-id") != expected[0]:
        assert time.monotonic() < deadline, "find-similar results never reached the gallery"
        time.sleep(0.1)
    shown = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert shown == expected
