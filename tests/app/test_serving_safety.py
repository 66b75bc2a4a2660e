"""Serving safely: with ``--basic-auth`` the page is refused without a login and each label records the logged-in
user; ids and catalogue strings that are HTML (``<img onerror>``, ``<script>``) show as text everywhere, inject no
element and fire no dialog; names with ``../`` cannot write outside their folder."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely


def _load(name: str, path: Path):
    """This folder's helpers (served app, map geometry, lasso), shared rather than copied."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


APP = _load("explorer_tests_app_conftest", Path(__file__).with_name("conftest.py"))
UI = _load("explorer_tests_app_browser", Path(__file__).with_name("test_browser.py"))

USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
N = 48


def hostile_id(i: int) -> str:
    """Ids that are HTML, script, a path and quotes, in turn."""
    return [
        f"<img src=x onerror=alert({i})>",
        f"<script>alert({i})</script>",
        f"../../escaped{i}",
        f"a&b\"'<i>{i}",
    ][i % 4]


def build_hostile_workspace(path: Path) -> None:
    """``N`` objects whose ids and catalogue strings are hostile, with cutouts, embeddings, map and scores."""
    from explorer.data.ingest import add_objects
    from explorer.data.readers_images import ImageInput
    from explorer.workspace import Workspace

    rng = np.random.default_rng(6)
    ws = Workspace.create(path)
    ids = [hostile_id(i) for i in range(N)]
    table = pd.DataFrame(
        {
            "id": ids,
            "ra": rng.uniform(150, 160, N),
            "dec": rng.uniform(0, 10, N),
            "class": rng.choice(["<b>galaxy</b>", "star<img src=x onerror=alert('class')>"], N),
            "note": "<img src=x onerror=alert('note')><script>alert('note')</script>",
        }
    )
    images = APP._blob_images(N, rng)
    inp = ImageInput(ids, (3, 32, 32), ("g", "r", "i"), lambda a, b: images[a:b], "synthetic", N)
    add_objects(ws, table, source="<i>hostile</i>", images=inp, image_set="synthetic", progress=False)
    APP.add_products(ws, seed=6)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """``explorer serve`` of the hostile workspace with ``--basic-auth`` (two users from a JSON file)."""
    root = tmp_path_factory.mktemp("safe")
    ws = root / "ws"
    build_hostile_workspace(ws)
    users = root / "users.json"
    users.write_text(json.dumps(USERS))
    server = APP.ServedProcess(ws, "--basic-auth", str(users), "--cookie-secret", "s3cret-for-tests-only")
    try:
        yield server
    finally:
        server.stop()


# JS: every element of the page, shadow roots included, that an injected string could have made.
INJECTED = """() => {
  const found = [];
  const walk = (root) => {
    for (const e of root.querySelectorAll('*')) {
      const tag = e.tagName.toLowerCase();
      if (tag === 'img' && e.getAttribute('src') === 'x') { found.push(e.outerHTML); }
      if (e.hasAttribute('onerror')) { found.push(e.outerHTML); }
      if (tag === 'script' && e.textContent.includes('alert(')) { found.push(e.outerHTML); }
      if (e.shadowRoot) { walk(e.shadowRoot); }
    }
  };
  walk(document);
  return found;
}"""
MESSAGE = """() => {
  const find = (root) => {
    const el = root.querySelector('.hdr .msg');
    if (el) { return el; }
    for (const e of root.querySelectorAll('*')) {
      if (e.shadowRoot) { const f = find(e.shadowRoot); if (f) { return f; } }
    }
    return null;
  };
  const el = find(document);
  return el ? el.textContent.trim() : '';
}"""


def wait_message(page, pattern: str, timeout: float = 60) -> str:
    """Wait until the header notice matches the JS regex ``pattern``; returns it."""
    js = f"() => {{ const t = ({MESSAGE})(); return new RegExp({pattern!r}).test(t) ? t : null; }}"
    return page.wait_for_function(js, polling=100, timeout=timeout * 1000).json_value()


def login(browser, url: str, user: str, password: str):
    """A new browser context logged in through Panel's login form; returns (context, page)."""
    context = browser.new_context(
        viewport={"width": 1200, "height": 900}, device_scale_factor=1, accept_downloads=True
    )
    page = context.new_page()
    page.goto(url)
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.locator("input[name=password]").press("Enter")
    page.wait_for_function(UI.READY, timeout=90_000)
    return context, page, UI.MapGeometry(page.evaluate(UI.GEOMETRY))


def users_of(ws: Path, oid: str) -> list[tuple[str, str]]:
    """(label, user) of every label event of ``oid``, oldest first."""
    with sqlite3.connect(ws / "labels.sqlite") as conn:
        return conn.execute(
            "SELECT label, user FROM events WHERE object_id = ? ORDER BY id", (oid,)
        ).fetchall()


def select_everything(page, g, ws: Path) -> set[str]:
    """Lasso the whole data area; returns the ids inside the drawn polygon once the page shows that many
    selected."""
    m = 4
    visited = UI.draw_lasso(
        page,
        [
            (int(g.left + m), int(g.top + m)),
            (int(g.left + g.width - m), int(g.top + m)),
            (int(g.left + g.width - m), int(g.top + g.height - m)),
            (int(g.left + m), int(g.top + g.height - m)),
        ],
    )
    polygon = shapely.Polygon([g.to_data(*p) for p in visited])
    coords = UI.map_coords(ws)
    inside = shapely.contains_xy(polygon, coords["x"].to_numpy(np.float64), coords["y"].to_numpy(np.float64))
    expected = set(coords["id"][inside].astype(str))
    assert len(expected) > N // 2
    UI.wait_selected(page, len(expected), timeout=60_000)
    return expected


def focus_next(page) -> str:
    """Press ``j`` (focus the next gallery object: the first when none is focused) and wait for the gallery to
    mark the new focus, which the server sends back; returns its id."""
    focused = page.locator(".card.focused")
    before = focused.first.get_attribute("data-id") if focused.count() else None
    page.keyboard.press("j")
    deadline = time.monotonic() + 60
    while (oid := page_focus(page)) == before:
        assert time.monotonic() < deadline, "pressing j did not move the focus"
        time.sleep(0.1)
    return oid


def press_and_confirm(page, key: str, oid: str, label: str) -> None:
    page.keyboard.press(key)
    assert wait_message(page, "^Saved: ") == f"Saved: {oid} → {label}."


# ---------------------------------------------------------------------------------------------- login
def test_a_mistyped_or_broken_users_file_is_an_error_not_a_password(tmp_path):
    from explorer.cli.serve_cmd import check_basic_auth
    from explorer.errors import ExplorerError

    good = tmp_path / "users.json"
    good.write_text(json.dumps(USERS))
    assert check_basic_auth(str(good)) == str(good.resolve())
    assert check_basic_auth("one shared password") == "one shared password"
    assert check_basic_auth(None) is None
    with pytest.raises(ExplorerError, match="usres.json: no such users file"):
        check_basic_auth(str(tmp_path / "usres.json"))
    for bad in ("{not json", "[]", '{"alice": 3}', "{}"):
        good.write_text(bad)
        with pytest.raises(ExplorerError, match="users.json"):
            check_basic_auth(str(good))


def test_without_credentials_the_page_is_refused(auth_server):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(auth_server.url, timeout=30)
    assert err.value.code in (302, 303, 401, 403)
    assert "/login" in (err.value.headers.get("Location") or "/login")

    # following the redirect ends on the login form, with no dashboard in it
    with urllib.request.urlopen(auth_server.url, timeout=30) as resp:
        body = resp.read().decode("utf-8", "replace")
        assert "/login" in resp.url
    assert "password" in body.lower() and "explorer-map" not in body and "Astro Embedding" not in body

    # a wrong password does not let anyone in
    data = urllib.parse.urlencode({"username": "alice", "password": "wrong"}).encode()
    with urllib.request.urlopen(auth_server.url + "login", data=data, timeout=30) as resp:
        assert "/login" in resp.url and "error" in resp.url


@pytest.mark.slow
@pytest.mark.browser
def test_each_label_records_the_logged_in_user(auth_server, browser):
    # a browser that does not log in sees only the login form
    context = browser.new_context()
    page = context.new_page()
    page.goto(auth_server.url)
    page.locator("input[name=password]").wait_for(timeout=30_000)
    assert "/login" in page.url
    time.sleep(1)
    assert page.evaluate("() => window.Bokeh === undefined || Bokeh.documents.length === 0")
    context.close()

    for user, key, label in (("alice", "a", "anomaly"), ("bob", "x", "artefact")):
        context, page, g = login(browser, auth_server.url, user, USERS[user])
        try:
            page.get_by_text(f"user {user}", exact=False).first.wait_for(timeout=30_000)
            select_everything(page, g, auth_server.ws)
            oid = focus_next(page)
            press_and_confirm(page, key, oid, label)
        finally:
            context.close()
        assert users_of(auth_server.ws, oid)[-1] == (label, user)
    with sqlite3.connect(auth_server.ws / "labels.sqlite") as conn:
        users = {u for (u,) in conn.execute("SELECT DISTINCT user FROM events")}
    assert users == {"alice", "bob"}


# ---------------------------------------------------------------------------------------------- escaping
@pytest.mark.slow
@pytest.mark.browser
def test_html_in_ids_and_catalogue_shows_as_text(auth_server, browser, tmp_path):
    dialogs: list[str] = []
    context, page, g = login(browser, auth_server.url, "alice", USERS["alice"])
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        selected = select_everything(page, g, auth_server.ws)
        cards = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
        assert cards and set(cards) <= selected
        oid = focus_next(page)
        for text in (oid, "<img src=x onerror=alert('note')><script>alert('note')</script>"):
            page.get_by_text(text, exact=False).first.wait_for(timeout=30_000)
        press_and_confirm(page, "a", oid, "anomaly")

        # a class of one's own named like an element
        name = "<img src=x onerror=alert(99)>"
        target = page_focus(page)  # the labeller moved the focus on after the last label
        page.get_by_placeholder("new class…").fill(name)
        page.get_by_placeholder("new class…").press("Tab")
        time.sleep(1)
        page.get_by_role("button", name="+ class").click()
        assert wait_message(page, "^Saved: .* → <img") == f"Saved: {target} → {name}."
        page.get_by_role("button", name=name).first.wait_for(timeout=30_000)

        # find similar fills the gallery with more hostile ids
        page.get_by_role("button", name="Similar to focused").click()
        wait_message(page, "similar to")

        # the downloaded file's name is the server's own, with no path in it
        path = UI.download(page, "selection", "CSV", tmp_path)
        time.sleep(0.5)
        injected = page.evaluate(INJECTED)
    finally:
        context.close()
    assert dialogs == []
    assert injected == []
    assert "/" not in path.name and ".." not in path.name and path.parent == tmp_path
    assert set(pd.read_csv(path, comment="#")["id"]) == selected
    assert users_of(auth_server.ws, oid)[-1] == ("anomaly", "alice")
    assert users_of(auth_server.ws, target)[-1] == (name, "alice")


def page_focus(page) -> str:
    """The focused id, as the gallery marks it."""
    return page.locator(".card.focused").first.get_attribute("data-id", timeout=30_000)


# ---------------------------------------------------------------------------------------------- paths
@pytest.mark.slow  # a workspace and a CLI run: ~5 s on a loaded machine
def test_names_with_dot_dot_cannot_write_outside_the_workspace(tmp_path):
    from explorer.errors import DataError
    from explorer.workspace import Workspace

    ws_path = tmp_path / "ws"
    APP.build_workspace(ws_path, n_synthetic=60, n_first=0, lightcurves=False)
    ws = Workspace.open(ws_path)
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock")
    for bad in ("../evil", "../../evil", "a/../../evil", "/tmp/evil", "..", ""):
        with pytest.raises(DataError):
            ws.selection_path(bad)
        with pytest.raises(DataError):
            ws.checkpoint_dir(bad)
    with pytest.raises(DataError):
        ws.inside("../outside.txt")

    # the command line refuses such a name with exit code 2 and writes nothing anywhere
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "explorer.cli",
            "select",
            str(ws_path),
            "--polygon",
            "-99,-99 99,-99 99,99",
            "--save",
            "../../evil",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "evil" in result.stderr and "Traceback" not in result.stderr
    after = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock")
    assert after == before


def test_a_training_set_of_path_like_ids_stays_in_its_folder(tmp_path):
    from explorer.export_training import export_training_set

    ws_path = tmp_path / "ws"
    build_hostile_workspace(ws_path)
    out = tmp_path / "out" / "train"
    out.parent.mkdir()
    export_training_set(ws_path, out, ids=[hostile_id(i) for i in range(N)], progress=False)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    outside = [p for p in written if not (p.is_relative_to(out) or p.is_relative_to(ws_path))]
    assert outside == []
    images = sorted((out / "images").iterdir())
    assert len(images) == N and all(p.parent == out / "images" for p in images)
    assert not (tmp_path / "escaped2").exists() and not list(tmp_path.glob("escaped*"))


def test_num_procs_serves_from_several_processes_that_go_with_the_server(tmp_path, app_workspace):
    import psutil

    ws = tmp_path / "ws"
    shutil.copytree(app_workspace, ws, ignore=shutil.ignore_patterns("labels.sqlite*", ".lock"))
    server = APP.ServedProcess(ws, "--num-procs", "2", timeout=180)
    try:
        children = psutil.Process(server.proc.pid).children()
        assert len(children) == 2
        for _ in range(4):  # whichever process answers, it serves the dashboard
            with urllib.request.urlopen(server.url, timeout=30) as resp:
                assert resp.status == 200 and b"Astro Embedding Explorer" in resp.read()
    finally:
        server.stop()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, "forked servers outlived `explorer serve`"


def test_num_procs_must_be_a_count(tmp_path, app_workspace):
    result = subprocess.run(
        [sys.executable, "-m", "explorer.cli", "serve", str(app_workspace), "--num-procs", "-1", "--no-show"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--num-procs -1" in result.stderr
