"""A served app killed with SIGKILL while a browser labels by keyboard loses no label it confirmed on screen: every
"Saved: ID → LABEL." the page showed is in the store, the database passes ``PRAGMA integrity_check``, and a
restarted server shows the same counts."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL"),
]

APP_TESTS = Path(__file__).resolve().parents[1] / "app"


def _load(name: str, path: Path):
    """The dashboard tests' helpers (served app, browser, map geometry), shared rather than copied."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


APP = _load("explorer_tests_app_conftest", APP_TESTS / "conftest.py")
UI = _load("explorer_tests_app_browser", APP_TESTS / "test_browser.py")
browser = APP.browser  # the headless-Chromium fixture of tests/app

KEYS = {"a": "anomaly", "n": "normal", "x": "artefact"}
SAVED = re.compile(r"^Saved: (.+) → (\w+)\.$")
LABEL_FOR = 12.0  # seconds of labelling before the server is killed
COUNTS = re.compile(r"labelled: (.*?)\s+\|")


# The header's notice text (inside Panel's shadow roots), or null before the page has drawn it.
MESSAGE_JS = """() => {
  const find = (root) => {
    const el = root.querySelector('.hdr .msg');
    if (el) { return el; }
    for (const e of root.querySelectorAll('*')) {
      if (e.shadowRoot) { const f = find(e.shadowRoot); if (f) { return f; } }
    }
    return null;
  };
  const el = find(document);
  return el ? el.textContent.trim() : null;
}"""


def header_message(page) -> str:
    """The latest notice in the page header (where the labeller confirms each saved label)."""
    return page.evaluate(MESSAGE_JS) or ""


def wait_message(page, previous: str, pattern: str, timeout: float = 60) -> str:
    """Wait until the header shows a notice matching the JS regex ``pattern`` other than ``previous``."""
    handle = page.wait_for_function(
        f"""prev => {{ const t = ({MESSAGE_JS})(); return t && t !== prev && new RegExp({pattern!r}).test(t) ? t : null; }}""",
        arg=previous,
        polling=50,
        timeout=timeout * 1000,
    )
    return handle.json_value()


def lasso_half_the_map(page, g, ws) -> set[str]:
    """Lasso the left half of the data area; returns the ids inside the polygon drawn (what the server must
    select), once the page shows that many selected."""
    m = 12
    visited = UI.draw_lasso(
        page,
        [
            (int(g.left + m), int(g.top + m)),
            (int(g.left + g.width / 2), int(g.top + m)),
            (int(g.left + g.width / 2), int(g.top + g.height - m)),
            (int(g.left + m), int(g.top + g.height - m)),
        ],
    )
    polygon = shapely.Polygon([g.to_data(*p) for p in visited])
    coords = UI.map_coords(ws)
    inside = shapely.contains_xy(polygon, coords["x"].to_numpy(np.float64), coords["y"].to_numpy(np.float64))
    expected = set(coords["id"][inside].astype(str))
    UI.wait_selected(page, len(expected), timeout=60_000)
    return expected


def label_the_selection(page, ids: set[str]) -> list[tuple[str, str]]:
    """Switch the target to the whole selection, press ``a``, wait for "Saved: N objects"; back to focused."""
    page.get_by_text("whole selection", exact=True).first.click()
    time.sleep(1.5)  # let the server receive the new target before the key asks for it
    previous = header_message(page)
    page.keyboard.press("a")
    text = wait_message(page, previous, "^Saved: ")
    assert text == f"Saved: {len(ids):,} objects → anomaly.", text
    page.get_by_text("focused object", exact=True).first.click()
    time.sleep(1.5)
    return [(oid, "anomaly") for oid in sorted(ids)]


def label_until_killed(page, server, label_for: float) -> tuple[list[tuple[str, str]], int]:
    """Press a / n / x in turn (each labels the focused object, then the focus moves on), waiting for each
    "Saved" notice; SIGKILL the server after ``label_for`` seconds with a key press in flight.

    Returns the (id, label) pairs the page confirmed, and how many keys were pressed.
    """
    confirmed: list[tuple[str, str]] = []
    pressed = 0
    keys = list(KEYS)
    start = time.monotonic()
    previous = header_message(page)
    while True:
        key = keys[pressed % len(keys)]
        page.keyboard.press(key)
        pressed += 1
        if time.monotonic() - start > label_for:
            server.kill()  # this key press is in flight: it may or may not have been saved
            return confirmed, pressed
        text = wait_message(page, previous, "^Saved: ")
        oid, label = SAVED.match(text).groups()
        assert label == KEYS[key], text
        confirmed.append((oid, label))
        previous = text


def counts_shown(page) -> dict[str, int]:
    """The labeller's "labelled: anomaly 3 · normal 2 ..." line, as a dict."""
    text = page.get_by_text(re.compile(r"^labelled: ")).first.text_content(timeout=30_000)
    part = COUNTS.search(text.replace("\xa0", " ")).group(1)
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"(\S+) ([\d,]+)", part)}


def test_labels_confirmed_in_the_browser_survive_a_server_sigkill(tmp_path, browser):
    ws = tmp_path / "ws"
    APP.build_workspace(ws, n_synthetic=400, n_first=0, lightcurves=False)
    server = APP.ServedProcess(ws)
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    try:
        page = context.new_page()
        g = UI.open_app(page, server.url)
        selected = lasso_half_the_map(page, g, ws)
        in_bulk = label_the_selection(page, selected)
        page.keyboard.press("j")  # focus the first object of the gallery
        time.sleep(1.0)
        one_by_one, pressed = label_until_killed(page, server, LABEL_FOR)
    finally:
        context.close()
        server.stop()
    assert server.proc.returncode == -9, "the server was not killed by SIGKILL"
    assert len(one_by_one) >= 2, f"only {len(one_by_one)} labels confirmed one by one in {LABEL_FOR} s"
    confirmed = in_bulk + one_by_one

    db = ws / "labels.sqlite"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        events = conn.execute("SELECT object_id, label FROM events").fetchall()
        n_batches = conn.execute("SELECT count(*) FROM batches WHERE kind = 'add'").fetchone()[0]
        current = dict(conn.execute("SELECT object_id, label FROM current_labels").fetchall())
    lost = set(confirmed) - set(events)
    assert not lost, f"{len(lost)} confirmed labels lost: {sorted(lost)[:5]}"
    # one batch per key press: the confirmed ones, plus at most the one in flight at the kill
    assert 1 + len(one_by_one) <= n_batches <= 2 + len(one_by_one), (len(one_by_one), n_batches, pressed)
    last = dict(confirmed)
    stale = {oid for oid, label in last.items() if current.get(oid) != label}
    assert len(stale) <= 1, f"current labels differ from the last confirmed for {sorted(stale)}"

    restarted = APP.ServedProcess(ws)
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    try:
        page = context.new_page()
        UI.open_app(page, restarted.url)
        expected: dict[str, int] = {}
        for label in current.values():
            expected[label] = expected.get(label, 0) + 1
        shown = counts_shown(page)
    finally:
        context.close()
        restarted.stop()
    assert shown == expected
    print(
        f"\nserved-kill: {len(in_bulk)} labels in one selection batch + {len(one_by_one)} one by one "
        f"({pressed} keys pressed) confirmed on screen = {len(confirmed)}; {n_batches} batches and "
        f"{len(events)} events saved; {len(lost)} lost; integrity ok; restarted server shows {shown}"
    )
